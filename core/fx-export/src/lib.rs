//! `fx-export`: report material from fx run directories.
//!
//! [`export`] turns one run directory into the paper's Figure-2 charts (one per dataset and task
//! and model, PNG and SVG, plus a grid of all of them) and tables of the final metrics and of the
//! per-label metrics (CSV, Markdown, LaTeX with booktabs). [`report`] compares several runs in one
//! ablation table whose rows are the runs and whose switch columns are the experiment keys that
//! differ between them.
//!
//! The run directory is read with `fx-view`'s tolerant reader ([`fx_run::store::Store`]); nothing
//! here writes to a run directory. Every output file is written to a temporary name in the output
//! folder, synced and renamed, and only after everything was rendered in memory: an error leaves
//! the files already in the output folder as they were.
//!
//! Text is drawn with DejaVu Sans compiled into the binary (the `dejavu` crate) through plotters'
//! `ab_glyph` backend, so charts look the same on every machine and never look for system fonts.

mod chart;
pub mod cli;
mod compare;
mod data;
pub mod overlay;
mod run;
mod table;
mod text;
mod write;

pub use chart::FONT_FAMILY;
pub use compare::{compare, parse_metric, CompareOptions, CompareSummary};
pub use data::{Best, Key};
pub use run::Run;
pub use table::{Cell, Column, Table};

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// What [`export`] draws.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportOptions {
    /// The models charted, each its own set of charts and grid: `teacher` by default; add
    /// `student` for the student's charts. The tables always show both when the run has them.
    pub models: Vec<String>,
    /// Size of one chart in pixels (the PNG; the SVG has the same user units).
    pub width: u32,
    pub height: u32,
    /// Charts per row of the grid image (0 = choose: up to 3).
    pub grid_columns: usize,
    /// Chart only these cycles: `A-B`, `A` or `last:N` (see [`parse_cycles`]); `None` = the
    /// whole run. The tables always cover the whole run.
    pub cycles: Option<String>,
}

/// Parses `--cycles`: `A-B`, `A` (one cycle) or `last:N` (the last N cycles of `total`).
pub fn parse_cycles(s: &str, total: usize) -> Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("--cycles {s:?}: expected A-B, A or last:N (cycles are numbered 1..{total})");
    let (a, b) = if let Some(n) = s.strip_prefix("last:") {
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        (total.saturating_sub(n.max(1) - 1).max(1), total)
    } else if let Some((a, b)) = s.split_once('-') {
        (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?)
    } else {
        let a: usize = s.trim().parse().map_err(|_| bad())?;
        (a, a)
    };
    if a == 0 || b < a || a > total.max(1) {
        return Err(bad());
    }
    Ok((a, b.min(total.max(a))))
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { models: vec!["teacher".into()], width: 800, height: 500, grid_columns: 0, cycles: None }
    }
}

impl ExportOptions {
    /// Teacher and student charts.
    pub fn with_student(mut self) -> Self {
        if !self.models.iter().any(|m| m == "student") {
            self.models.push("student".into());
        }
        self
    }
}

/// What [`export`] wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExportSummary {
    pub run_dir: PathBuf,
    pub out: PathBuf,
    /// The experiment's name (the directory's name when experiment.toml is unreadable).
    pub name: String,
    /// The last evaluated epoch.
    pub last_epoch: usize,
    /// Charts drawn (one per dataset, task and model; the grids not counted).
    pub charts: usize,
    /// Every file written, in the order written.
    pub files: Vec<PathBuf>,
    /// Things the reader skipped or could not chart (malformed lines, a pair without rows).
    pub warnings: Vec<String>,
}

/// What [`report`] wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportSummary {
    pub out: PathBuf,
    /// The row label of each run, in the order given.
    pub runs: Vec<String>,
    /// The experiment keys whose values differ between the runs (the switch columns).
    pub differing: Vec<String>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
}

/// Writes the charts and tables of the run in `run_dir` into `out` (created when missing):
///
/// - `<dataset>-<task>-<model>.png` and `.svg` for every (dataset, task) and every model of
///   `opts.models`, and `grid-<model>.png` / `.svg` with all of that model's charts;
/// - `final.csv|md|tex`: per (dataset, task, metric) the last epoch's teacher and student values
///   and the best focused value of each with the epoch it was reached;
/// - `per-label.csv|md|tex`: the last epoch's per-label values.
///
/// Fails, naming the path, when `run_dir` is not a run directory, has no metric rows yet, or has
/// rows for none of `opts.models`; a model without rows (a run that evaluated only the teacher)
/// is skipped with a warning.
pub fn export(run_dir: &Path, out: &Path, opts: &ExportOptions) -> Result<ExportSummary> {
    if opts.width < 200 || opts.height < 150 {
        bail!("chart size {}x{} is too small (at least 200x150 pixels)", opts.width, opts.height);
    }
    let run = Run::open(run_dir)?;
    run.require_metrics()?;
    let mut warnings = run.warnings.clone();
    let metrics = &run.store.metrics;
    // A model the run did not evaluate (eval.models) is skipped with a warning; none at all is an error.
    let have = data::models(metrics);
    let models: Vec<&String> = opts.models.iter().filter(|m| have.contains(m)).collect();
    for m in opts.models.iter().filter(|m| !have.contains(m)) {
        warnings.push(format!("no metric rows for model '{m}' (the run has: {}): no {m} charts", have.join(", ")));
    }
    if models.is_empty() && !opts.models.is_empty() {
        bail!(
            "{}: no metric rows for model(s) {} (the run has: {})",
            run_dir.display(),
            opts.models.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", "),
            have.join(", ")
        );
    }

    // Everything is rendered in memory first: a failure writes nothing.
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let pairs = data::chart_pairs(&run.store);
    let mut epochs = data::epochs_extent(&run.store);
    let cycle_starts = data::cycle_starts(&run.store);
    // A window of cycles: its first and last planned epoch.
    let mut first = 1;
    let mut window = String::new();
    if let Some(spec) = &opts.cycles {
        let total = run.store.plan.iter().map(|p| p.cycle).max().unwrap_or(0);
        let (a, b) = parse_cycles(spec, total).map_err(|e| anyhow::anyhow!("{}: {e}", run_dir.display()))?;
        let in_window: Vec<usize> =
            run.store.plan.iter().filter(|p| p.cycle >= a && p.cycle <= b).map(|p| p.epoch).collect();
        let (Some(&lo), Some(&hi)) = (in_window.iter().min(), in_window.iter().max()) else {
            bail!(
                "{}: the plan has no epochs in cycles {a}-{b} (it has {} cycles)",
                run_dir.display(),
                run.store.plan.iter().map(|p| p.cycle).max().unwrap_or(0)
            );
        };
        (first, epochs) = (lo, hi);
        window = if a == b { format!(" · cycle {a}") } else { format!(" · cycles {a}-{b}") };
    }
    let last_epoch = metrics.iter().map(|m| m.epoch).max().unwrap_or(0);
    let mut charts = 0;
    for &model in &models {
        let mut specs = Vec::new();
        for key in &pairs {
            let points = data::points(metrics, key, model);
            if points.is_empty() {
                warnings.push(format!("{} {} ({}): no {model} rows, no chart", key.dataset, key.task, key.metric));
                continue;
            }
            specs.push(chart::ChartSpec {
                key: key.clone(),
                model: model.clone(),
                points,
                epochs,
                first,
                cycle_starts: cycle_starts.clone(),
                band: Vec::new(),
            });
        }
        for spec in &specs {
            let stem = format!("{}-{}-{}", file_part(&spec.key.dataset), file_part(&spec.key.task), file_part(model));
            files.push((format!("{stem}.png"), chart::png(spec, opts.width, opts.height)?));
            files.push((format!("{stem}.svg"), chart::svg(spec, opts.width, opts.height)?.into_bytes()));
            charts += 1;
        }
        if !specs.is_empty() {
            let cols = if opts.grid_columns > 0 { opts.grid_columns } else { specs.len().min(3) };
            let (w, h) = (opts.width * 3 / 4, opts.height * 3 / 4);
            let stem = format!("grid-{}", file_part(model));
            let header =
                format!("{} · {model} · epoch {last_epoch} of {}{window}", run.name, data::epochs_extent(&run.store));
            files.push((format!("{stem}.png"), chart::grid_png(&header, &specs, cols, w, h)?));
            files.push((format!("{stem}.svg"), chart::grid_svg(&header, &specs, cols, w, h)?.into_bytes()));
        }
    }

    let final_table = data::final_table(&run);
    let per_label = data::per_label_table(&run);
    for (stem, t) in [("final", &final_table), ("per-label", &per_label)] {
        files.push((format!("{stem}.csv"), t.csv().into_bytes()));
        files.push((format!("{stem}.md"), t.markdown().into_bytes()));
        files.push((format!("{stem}.tex"), t.latex().into_bytes()));
    }

    let written = write::all(out, &files)?;
    Ok(ExportSummary {
        run_dir: run_dir.to_path_buf(),
        out: out.to_path_buf(),
        name: run.name.clone(),
        last_epoch,
        charts,
        files: written,
        warnings,
    })
}

/// Writes `ablation.csv|md|tex` into `out`: one row per run (named by its experiment name, made
/// unique with the directory name when two runs share it), one column per experiment key whose
/// value differs between the runs (`output_dir` and `name` are never compared), one column per
/// (dataset, task, metric) with the teacher's value at the run's last evaluated epoch, and the
/// mean of the main metric (auc, dice, map40) over the (dataset, task) pairs every run has.
pub fn report(runs: &[PathBuf], out: &Path) -> Result<ReportSummary> {
    if runs.is_empty() {
        bail!("report needs at least one run directory");
    }
    let mut opened = Vec::new();
    for dir in runs {
        let run = Run::open(dir)?;
        run.require_metrics()?;
        opened.push(run);
    }
    let mut warnings = Vec::new();
    for r in &opened {
        for w in &r.warnings {
            warnings.push(format!("{}: {w}", r.dir.display()));
        }
        if r.config.is_none() {
            warnings
                .push(format!("{}: experiment.toml missing or unreadable; its switches show as '-'", r.dir.display()));
        }
    }
    let ablation = data::ablation(&opened);
    let mut files = vec![
        ("ablation.csv".to_string(), ablation.table.csv().into_bytes()),
        ("ablation.md".to_string(), ablation.table.markdown().into_bytes()),
        ("ablation.tex".to_string(), ablation.table.latex().into_bytes()),
    ];
    // Seed groups: the paper's Figure 2 per (dataset, task) with the mean over the seeds and a
    // shaded ± std band, in seeds/<setting>/.
    for (name, spec) in chart::seed_group_charts(&opened) {
        let stem = format!("seeds/{}/{}-{}", file_part(&name), file_part(&spec.key.dataset), file_part(&spec.key.task));
        files.push((format!("{stem}.png"), chart::png(&spec, 800, 500)?));
        files.push((format!("{stem}.svg"), chart::svg(&spec, 800, 500)?.into_bytes()));
    }
    let written = write::all(out, &files).with_context(|| format!("writing the report into {}", out.display()))?;
    Ok(ReportSummary {
        out: out.to_path_buf(),
        runs: ablation.labels,
        differing: ablation.differing,
        files: written,
        warnings,
    })
}

/// A name made safe for a file name: anything but letters, digits, `.`, `_` and `-` becomes `_`.
pub(crate) fn file_part(s: &str) -> String {
    let t: String = s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if t.is_empty() || t.starts_with('.') {
        format!("_{t}")
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_parts() {
        assert_eq!(file_part("phantom-cxp"), "phantom-cxp");
        assert_eq!(file_part("a b/c"), "a_b_c");
        assert_eq!(file_part(".."), "_..");
        assert_eq!(file_part(""), "_");
    }
}
