//! One table, three formats: CSV (exact values, for scripts), Markdown and LaTeX with booktabs
//! (two decimals, for reading and for papers).

use std::fmt::Write;

/// One column. `group` spans adjacent columns in LaTeX (`\multicolumn` + `\cmidrule`); Markdown
/// joins it with `name`; CSV uses `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub group: String,
    pub name: String,
    pub key: String,
    pub numeric: bool,
}

impl Column {
    pub fn text(group: &str, name: &str, key: &str) -> Column {
        Column { group: group.into(), name: name.into(), key: key.into(), numeric: false }
    }
    pub fn num(group: &str, name: &str, key: &str) -> Column {
        Column { group: group.into(), name: name.into(), key: key.into(), numeric: true }
    }
    fn flat(&self) -> String {
        if self.group.is_empty() {
            self.name.clone()
        } else {
            format!("{} {}", self.group, self.name)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    Text(String),
    /// A metric value; `None` = not measured.
    Num(Option<f64>),
    /// An epoch; `None` = none.
    Int(Option<usize>),
    /// Mean and sample standard deviation over a seed group (`None` std: a single run); CSV
    /// writes them as two columns `<key>_mean`, `<key>_std`.
    Stat(Option<(f64, Option<f64>)>),
}

impl Cell {
    fn num(&self) -> Option<f64> {
        match self {
            Cell::Num(v) => *v,
            Cell::Stat(v) => v.map(|(m, _)| m),
            _ => None,
        }
    }
}

/// Mean and sample standard deviation (n − 1 in the denominator, numpy's `std(ddof=1)`).
pub fn mean_std(v: &[f64]) -> Option<(f64, Option<f64>)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.len() > 1).then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some((mean, std))
}

#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub caption: String,
    /// The LaTeX `\label`.
    pub label: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
    /// (row, column) cells shown in bold (Markdown, LaTeX).
    pub bold: Vec<(usize, usize)>,
}

/// Shown for a missing value in Markdown and LaTeX (CSV leaves the field empty).
const MISSING: &str = "-";

impl Table {
    pub fn new(caption: String, label: &str, columns: Vec<Column>) -> Table {
        Table { caption, label: label.into(), columns, rows: Vec::new(), bold: Vec::new() }
    }

    /// Marks the largest value of column `c` bold (every cell showing it, when tied), when the
    /// column has at least two values to compare.
    pub fn bold_max(&mut self, c: usize) {
        let vals: Vec<f64> = self.rows.iter().filter_map(|r| r.get(c)?.num()).filter(|v| v.is_finite()).collect();
        if vals.len() < 2 {
            return;
        }
        let max = vals.into_iter().reduce(f64::max);
        if let Some(max) = max {
            for (i, r) in self.rows.iter().enumerate() {
                if r.get(c).and_then(Cell::num).is_some_and(|v| format!("{v:.2}") == format!("{max:.2}")) {
                    self.bold.push((i, c));
                }
            }
        }
    }

    fn is_bold(&self, r: usize, c: usize) -> bool {
        self.bold.contains(&(r, c))
    }

    /// RFC 4180; numbers in Rust's shortest round-trip form, so they parse back to the exact
    /// values of metrics.jsonl; missing values are empty fields.
    pub fn csv(&self) -> String {
        let mut s = String::new();
        // A column of mean ± std cells becomes two CSV columns.
        let stat = |c: usize| self.rows.iter().any(|r| matches!(r.get(c), Some(Cell::Stat(_))));
        let header: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if stat(i) {
                    format!("{},{}", csv_field(&format!("{}_mean", c.key)), csv_field(&format!("{}_std", c.key)))
                } else {
                    csv_field(&c.key)
                }
            })
            .collect();
        s.push_str(&header.join(","));
        s.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    Cell::Text(t) => csv_field(t),
                    Cell::Num(v) => v.map(|v| format!("{v}")).unwrap_or_default(),
                    Cell::Int(v) => v.map(|v| v.to_string()).unwrap_or_default(),
                    Cell::Stat(v) => match v {
                        Some((m, s)) => format!("{m},{}", s.map(|s| s.to_string()).unwrap_or_default()),
                        None => ",".into(),
                    },
                })
                .collect();
            s.push_str(&fields.join(","));
            s.push('\n');
        }
        s
    }

    fn shown(&self, r: usize, c: usize) -> String {
        match &self.rows[r][c] {
            Cell::Text(t) => t.clone(),
            Cell::Num(v) => v.map(|v| format!("{v:.2}")).unwrap_or_else(|| MISSING.into()),
            Cell::Int(v) => v.map(|v| v.to_string()).unwrap_or_else(|| MISSING.into()),
            Cell::Stat(Some((m, Some(s)))) => format!("{m:.2} ± {s:.2}"),
            Cell::Stat(Some((m, None))) => format!("{m:.2}"),
            Cell::Stat(None) => MISSING.into(),
        }
    }

    /// A GitHub-flavoured pipe table after a caption line; numbers right-aligned.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}\n", md_escape(&self.caption));
        let header: Vec<String> = self.columns.iter().map(|c| md_escape(&c.flat())).collect();
        let _ = writeln!(s, "| {} |", header.join(" | "));
        let align: Vec<&str> = self.columns.iter().map(|c| if c.numeric { "---:" } else { "---" }).collect();
        let _ = writeln!(s, "|{}|", align.join("|"));
        for r in 0..self.rows.len() {
            let cells: Vec<String> = (0..self.columns.len())
                .map(|c| {
                    let t = md_escape(&self.shown(r, c));
                    if self.is_bold(r, c) {
                        format!("**{t}**")
                    } else {
                        t
                    }
                })
                .collect();
            let _ = writeln!(s, "| {} |", cells.join(" | "));
        }
        s
    }

    /// A `table` float with a booktabs `tabular` (`\usepackage{booktabs}`); column groups become
    /// spanning headers with `\cmidrule`s.
    pub fn latex(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "% Generated by fx-export. Needs \\usepackage{{booktabs}}.");
        let _ = writeln!(s, "\\begin{{table}}[t]");
        let _ = writeln!(s, "\\centering");
        let _ = writeln!(s, "\\caption{{{}}}", tex_escape(&self.caption));
        let _ = writeln!(s, "\\label{{{}}}", self.label);
        let spec: String = self.columns.iter().map(|c| if c.numeric { 'r' } else { 'l' }).collect();
        let _ = writeln!(s, "\\begin{{tabular}}{{{spec}}}");
        let _ = writeln!(s, "\\toprule");
        if self.columns.iter().any(|c| !c.group.is_empty()) {
            // Runs of adjacent columns with the same group.
            let mut spans: Vec<(String, usize, usize)> = Vec::new();
            for (i, c) in self.columns.iter().enumerate() {
                match spans.last_mut() {
                    Some((g, _, end)) if *g == c.group && !g.is_empty() => *end = i,
                    _ => spans.push((c.group.clone(), i, i)),
                }
            }
            let cells: Vec<String> = spans
                .iter()
                .map(|(g, a, b)| {
                    if g.is_empty() {
                        String::new()
                    } else {
                        format!("\\multicolumn{{{}}}{{c}}{{{}}}", b - a + 1, tex_escape(g))
                    }
                })
                .collect();
            let _ = writeln!(s, "{} \\\\", cells.join(" & "));
            let rules: Vec<String> = spans
                .iter()
                .filter(|(g, _, _)| !g.is_empty())
                .map(|(_, a, b)| format!("\\cmidrule(lr){{{}-{}}}", a + 1, b + 1))
                .collect();
            let _ = writeln!(s, "{}", rules.join(" "));
        }
        let header: Vec<String> = self.columns.iter().map(|c| tex_escape(&c.name)).collect();
        let _ = writeln!(s, "{} \\\\", header.join(" & "));
        let _ = writeln!(s, "\\midrule");
        for r in 0..self.rows.len() {
            let cells: Vec<String> = (0..self.columns.len())
                .map(|c| {
                    let t = match &self.rows[r][c] {
                        Cell::Stat(Some((m, Some(s)))) if self.is_bold(r, c) => {
                            format!("$\\mathbf{{{m:.2} \\pm {s:.2}}}$")
                        }
                        Cell::Stat(Some((m, Some(s)))) => format!("${m:.2} \\pm {s:.2}$"),
                        _ => tex_escape(&self.shown(r, c)),
                    };
                    if self.is_bold(r, c) && !t.starts_with('$') {
                        format!("\\textbf{{{t}}}")
                    } else {
                        t
                    }
                })
                .collect();
            let _ = writeln!(s, "{} \\\\", cells.join(" & "));
        }
        let _ = writeln!(s, "\\bottomrule");
        let _ = writeln!(s, "\\end{{tabular}}");
        let _ = writeln!(s, "\\end{{table}}");
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn md_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace('\n', " ")
}

fn tex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            '|' => out.push_str("\\textbar{}"),
            '\n' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(
            "a | b_c".into(),
            "tab:x",
            vec![Column::text("", "name", "name"), Column::num("g", "x", "g_x"), Column::num("g", "y", "g_y")],
        );
        t.rows.push(vec![Cell::Text("a,\"b\"".into()), Cell::Num(Some(1.0 / 3.0)), Cell::Int(None)]);
        t.rows.push(vec![Cell::Text("50%_x".into()), Cell::Num(Some(0.25)), Cell::Int(Some(4))]);
        t.bold_max(1);
        t
    }

    #[test]
    fn csv_is_exact_and_quoted() {
        let csv = sample().csv();
        assert_eq!(csv, "name,g_x,g_y\n\"a,\"\"b\"\"\",0.3333333333333333,\n50%_x,0.25,4\n");
        let v: f64 = "0.3333333333333333".parse().unwrap();
        assert_eq!(v, 1.0 / 3.0);
    }

    #[test]
    fn markdown_escapes_and_bolds() {
        let md = sample().markdown();
        assert!(md.starts_with("a \\| b_c\n\n| name | g x | g y |\n|---|---:|---:|\n"), "{md}");
        assert!(md.contains("| a,\"b\" | **0.33** | - |"), "{md}");
        assert!(md.contains("| 50%_x | 0.25 | 4 |"), "{md}");
    }

    #[test]
    fn latex_groups_and_escapes() {
        let tex = sample().latex();
        assert!(tex.contains("\\caption{a \\textbar{} b\\_c}"), "{tex}");
        assert!(tex.contains("\\begin{tabular}{lrr}"), "{tex}");
        assert!(tex.contains(" & \\multicolumn{2}{c}{g} \\\\\n\\cmidrule(lr){2-3}\n"), "{tex}");
        assert!(tex.contains("50\\%\\_x & 0.25 & 4 \\\\"), "{tex}");
        assert!(tex.contains("\\textbf{0.33}"), "{tex}");
        assert!(tex.contains("\\toprule") && tex.contains("\\midrule") && tex.contains("\\bottomrule"));
    }
}
