//! Series and tables derived from the metric rows.

use crate::run::Run;
use crate::table::{mean_std, Cell, Column, Table};
use fx_run::facts::{self, Point};
use fx_run::store::Store;
use fx_run::MetricRow;
use std::collections::BTreeMap;

// What the viewer's comparison screen and the exports share: one definition, in fx-view.
pub use fx_run::compare::{best_focused, differing_keys, flatten, keys, matches, points, seed_groups, Best, Key};

/// The models with rows, teacher first, student next, then any others.
pub fn models(rows: &[MetricRow]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in rows {
        if !out.iter().any(|x| *x == m.model) {
            out.push(m.model.to_string());
        }
    }
    out.sort_by_key(|m| match m.as_str() {
        "teacher" => 0,
        "student" => 1,
        _ => 2,
    });
    out
}

/// The charted keys: every (dataset, task) with rows, with its main metric (auc, dice, map40), or
/// the first metric met when the main one has no rows.
pub fn chart_pairs(store: &Store) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for k in keys(store) {
        if !out.iter().any(|o| o.dataset == k.dataset && o.task == k.task) {
            out.push(k);
        }
    }
    out
}

/// The x extent of the charts: the planned epochs (so a running run's charts keep their scale),
/// or the last evaluated one.
pub fn epochs_extent(store: &Store) -> usize {
    facts::epochs_total(store).max(store.metrics.iter().map(|m| m.epoch).max().unwrap_or(0)).max(1)
}

/// The first epoch of every cycle after the first, from the plan.
pub fn cycle_starts(store: &Store) -> Vec<(usize, usize)> {
    let mut plan: Vec<(usize, usize)> = store.plan.iter().map(|p| (p.epoch, p.cycle)).collect();
    plan.sort();
    plan.windows(2).filter(|w| w[1].1 != w[0].1).map(|w| (w[1].0, w[1].1)).collect()
}

/// The best focused value so far at each epoch from the first focused one on, as a step line:
/// (epoch, value) corners, ending at the last point's epoch.
pub fn best_steps(points: &[Point]) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    let mut best: Option<f64> = None;
    for p in points {
        let x = p.epoch as f64;
        if p.focused && p.value.is_finite() && best.is_none_or(|b| p.value > b) {
            if let Some(b) = best {
                out.push((x, b));
            }
            best = Some(p.value);
            out.push((x, p.value));
        }
    }
    if let (Some(b), Some(last)) = (best, points.last()) {
        let x = last.epoch as f64;
        if out.last().is_some_and(|&(lx, _)| lx < x) {
            out.push((x, b));
        }
    }
    out
}

/// A step line cut to the epochs `first..=last`: the corners inside, preceded by the value
/// the line had at `first` (the best reached before the window).
pub fn window_steps(steps: &[(f64, f64)], first: usize, last: usize) -> Vec<(f64, f64)> {
    let (a, b) = (first as f64, last as f64);
    let before = steps.iter().rev().find(|(x, _)| *x < a).map(|&(_, v)| v);
    let mut out: Vec<(f64, f64)> = before.map(|v| vec![(a, v)]).unwrap_or_default();
    out.extend(steps.iter().copied().filter(|(x, _)| *x >= a && *x <= b));
    if let (Some(v), Some(&(lx, _))) = (before, out.last()) {
        // A window without corners of its own: the carried line spans it.
        if out.len() == 1 && lx < b {
            out.push((b, v));
        }
    }
    out
}

/// The last point (by epoch) of a series.
fn last(points: &[Point]) -> Option<&Point> {
    points.last()
}

/// `final.*`: per key, the last epoch's teacher and student values and each one's best focused
/// value with its epoch. Student columns only when the run evaluated the student.
pub fn final_table(run: &Run) -> Table {
    let rows = &run.store.metrics;
    let models = models(rows);
    let with_student = models.iter().any(|m| m == "student");
    let mut columns = vec![
        Column::text("", "dataset", "dataset"),
        Column::text("", "task", "task"),
        Column::text("", "metric", "metric"),
        Column::num("", "epoch", "epoch"),
        Column::num("final", "teacher", "teacher"),
    ];
    if with_student {
        columns.push(Column::num("final", "student", "student"));
    }
    columns.push(Column::num("best focused teacher", "value", "best_teacher"));
    columns.push(Column::num("best focused teacher", "epoch", "best_teacher_epoch"));
    if with_student {
        columns.push(Column::num("best focused student", "value", "best_student"));
        columns.push(Column::num("best focused student", "epoch", "best_student_epoch"));
    }
    let mut table = Table::new(
        format!("{}: final metrics (last epoch) and best focused values, in %", run.name),
        "tab:fx-final",
        columns,
    );
    for key in keys(&run.store) {
        let teacher = points(rows, &key, "teacher");
        let student = points(rows, &key, "student");
        let epoch = [last(&teacher), last(&student)].into_iter().flatten().map(|p| p.epoch).max();
        let mut row = vec![
            Cell::Text(key.dataset.clone()),
            Cell::Text(key.task.clone()),
            Cell::Text(key.metric.clone()),
            Cell::Int(epoch),
            Cell::Num(last(&teacher).map(|p| p.value)),
        ];
        if with_student {
            row.push(Cell::Num(last(&student).map(|p| p.value)));
        }
        let bt = best_focused(&teacher);
        row.push(Cell::Num(bt.map(|b| b.value)));
        row.push(Cell::Int(bt.map(|b| b.epoch)));
        if with_student {
            let bs = best_focused(&student);
            row.push(Cell::Num(bs.map(|b| b.value)));
            row.push(Cell::Int(bs.map(|b| b.epoch)));
        }
        table.rows.push(row);
    }
    table
}

/// `per-label.*`: per key and label, the last epoch's teacher and student values.
pub fn per_label_table(run: &Run) -> Table {
    let rows = &run.store.metrics;
    let with_student = models(rows).iter().any(|m| m == "student");
    let mut columns = vec![
        Column::text("", "dataset", "dataset"),
        Column::text("", "task", "task"),
        Column::text("", "metric", "metric"),
        Column::text("", "label", "label"),
        Column::num("", "epoch", "epoch"),
        Column::num("final", "teacher", "teacher"),
    ];
    if with_student {
        columns.push(Column::num("final", "student", "student"));
    }
    let mut table =
        Table::new(format!("{}: per-label metrics at the last epoch, in %", run.name), "tab:fx-per-label", columns);
    for key in keys(&run.store) {
        // The last row of each model (by epoch) that has per-label values.
        let last_row = |model: &str| {
            rows.iter()
                .filter(|m| m.model == model && matches(m, &key) && !m.per_label.is_empty())
                .fold(None::<&MetricRow>, |a, m| if a.is_none_or(|a| m.epoch > a.epoch) { Some(m) } else { a })
        };
        let (t, s) = (last_row("teacher"), last_row("student"));
        // Labels in the order of the rows (BTreeMap: alphabetical, as the trainer writes them).
        let mut labels: Vec<&fx_run::Sym> = Vec::new();
        for r in [t, s].into_iter().flatten() {
            for l in r.per_label.keys() {
                if !labels.contains(&l) {
                    labels.push(l);
                }
            }
        }
        let epoch = [t, s].into_iter().flatten().map(|r| r.epoch).max();
        for label in labels {
            let mut row = vec![
                Cell::Text(key.dataset.clone()),
                Cell::Text(key.task.clone()),
                Cell::Text(key.metric.clone()),
                Cell::Text(label.to_string()),
                Cell::Int(epoch),
                Cell::Num(t.and_then(|r| r.per_label.get(label).copied())),
            ];
            if with_student {
                row.push(Cell::Num(s.and_then(|r| r.per_label.get(label).copied())));
            }
            table.rows.push(row);
        }
    }
    table
}

/// The ablation table and what it shows.
pub struct Ablation {
    pub table: Table,
    pub labels: Vec<String>,
    pub differing: Vec<String>,
}

pub fn ablation(runs: &[Run]) -> Ablation {
    let configs: Vec<BTreeMap<String, String>> =
        runs.iter().map(|r| r.config.as_ref().map(flatten).unwrap_or_default()).collect();
    let groups = seed_groups(&configs);
    // Seed groups only when some setting was run with several seeds (identical runs stay rows).
    let several_seeds = |g: &Vec<usize>| {
        let mut s: Vec<Option<&String>> = g.iter().map(|&i| configs[i].get("seed")).collect();
        s.sort();
        s.dedup();
        s.len() > 1
    };
    if runs.len() > 1 && groups.iter().any(several_seeds) {
        return ablation_over_seeds(runs, &configs, &groups);
    }
    let differing = if runs.len() > 1 { differing_keys(&configs) } else { Vec::new() };

    // Row labels: the experiment's name, with the directory's name where two runs share a name.
    let labels: Vec<String> = runs
        .iter()
        .map(|r| {
            if runs.iter().filter(|o| o.name == r.name).count() > 1 {
                let dir = r.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                format!("{} ({dir})", r.name)
            } else {
                r.name.clone()
            }
        })
        .collect();

    // Metric columns: the paper's metric (auc, map40, dice) of every run's (dataset, task) pairs,
    // in the order met; the secondary ones (ap50, dice_global, ...) stay in each run's export.
    let mut keys_all: Vec<Key> = Vec::new();
    for r in runs {
        for k in keys(&r.store) {
            if k.metric == facts::default_metric(&k.task) && !keys_all.contains(&k) {
                keys_all.push(k);
            }
        }
    }
    // Each run's final model: the teacher, or the student in a run without one (Table 10's
    // Student-Teacher = off cells).
    let models: Vec<&str> = runs
        .iter()
        .map(|r| if r.store.metrics.iter().any(|m| m.model == "teacher") { "teacher" } else { "student" })
        .collect();
    let finals: Vec<BTreeMap<Key, f64>> = runs
        .iter()
        .zip(&models)
        .map(|(r, model)| {
            keys_all
                .iter()
                .filter_map(|k| points(&r.store.metrics, k, model).last().map(|p| (k.clone(), p.value)))
                .collect()
        })
        .collect();
    // The mean: main metrics of the (dataset, task) pairs that every run has.
    let mean_keys: Vec<&Key> = keys_all
        .iter()
        .filter(|k| k.metric == facts::default_metric(&k.task))
        .filter(|k| finals.iter().all(|f| f.contains_key(*k)))
        .collect();

    let mut columns = vec![Column::text("", "run", "run")];
    for k in &differing {
        columns.push(Column::text("", k, k));
    }
    columns.push(Column::text("", "model", "model"));
    for k in &keys_all {
        columns.push(Column::num(
            &k.dataset,
            &format!("{} {}", k.task, k.metric),
            &format!("{}/{}/{}", k.dataset, k.task, k.metric),
        ));
    }
    columns.push(Column::num("", "mean", "mean"));
    let caption = format!(
        "Metrics of each run's final model (the teacher; the student in a run without one) at its last \
         epoch, in %; mean over the {} (dataset, task) pair(s) every run has; best of each column in bold",
        mean_keys.len()
    );
    let mut table = Table::new(caption, "tab:fx-ablation", columns);

    for (i, _run) in runs.iter().enumerate() {
        let mut row = vec![Cell::Text(labels[i].clone())];
        for k in &differing {
            row.push(Cell::Text(configs[i].get(k).cloned().unwrap_or_else(|| "-".into())));
        }
        row.push(Cell::Text(models[i].to_string()));
        for k in &keys_all {
            row.push(Cell::Num(finals[i].get(k).copied()));
        }
        let mean = if mean_keys.is_empty() {
            None
        } else {
            Some(mean_keys.iter().map(|k| finals[i][*k]).sum::<f64>() / mean_keys.len() as f64)
        };
        row.push(Cell::Num(mean));
        table.rows.push(row);
    }
    if runs.len() > 1 {
        let first_num = 2 + differing.len();
        for c in first_num..table.columns.len() {
            table.bold_max(c);
        }
    }
    Ablation { table, labels, differing }
}

/// The ablation with one row per seed group: each metric as mean ± sample std over the group's
/// runs (and n), the columns the experiment keys other than `seed` in which the groups differ.
fn ablation_over_seeds(runs: &[Run], configs: &[BTreeMap<String, String>], groups: &[Vec<usize>]) -> Ablation {
    let reps: Vec<BTreeMap<String, String>> = groups
        .iter()
        .map(|g| {
            configs[g[0]].iter().filter(|(k, _)| k.as_str() != "seed").map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .collect();
    let differing = if groups.len() > 1 { differing_keys(&reps) } else { Vec::new() };
    let mut keys_all: Vec<Key> = Vec::new();
    for r in runs {
        for k in keys(&r.store) {
            if k.metric == facts::default_metric(&k.task) && !keys_all.contains(&k) {
                keys_all.push(k);
            }
        }
    }
    let model_of = |r: &Run| if r.store.metrics.iter().any(|m| m.model == "teacher") { "teacher" } else { "student" };
    let finals: Vec<BTreeMap<Key, f64>> = runs
        .iter()
        .map(|r| {
            keys_all
                .iter()
                .filter_map(|k| points(&r.store.metrics, k, model_of(r)).last().map(|p| (k.clone(), p.value)))
                .collect()
        })
        .collect();
    let mean_keys: Vec<&Key> = keys_all.iter().filter(|k| finals.iter().all(|f| f.contains_key(*k))).collect();
    let mut columns = vec![Column::text("", "run", "run")];
    for k in &differing {
        columns.push(Column::text("", k, k));
    }
    columns.push(Column::text("", "seeds", "seeds"));
    columns.push(Column::text("", "n", "n"));
    columns.push(Column::text("", "model", "model"));
    for k in &keys_all {
        columns.push(Column::num(
            &k.dataset,
            &format!("{} {}", k.task, k.metric),
            &format!("{}/{}/{}", k.dataset, k.task, k.metric),
        ));
    }
    columns.push(Column::num("", "mean", "mean"));
    let caption = format!(
        "Metrics of each setting's final models at their last epoch, in %: mean ± sample standard deviation over its seeds \
         (n runs); mean over the {} (dataset, task) pair(s) every run has; best mean of each column in bold",
        mean_keys.len()
    );
    let mut table = Table::new(caption, "tab:fx-ablation-seeds", columns);
    let mut labels = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        let first = &runs[g[0]];
        labels.push(first.name.clone());
        let mut row = vec![Cell::Text(first.name.clone())];
        for k in &differing {
            row.push(Cell::Text(reps[gi].get(k).cloned().unwrap_or_else(|| "-".into())));
        }
        let seeds: Vec<String> =
            g.iter().map(|&i| configs[i].get("seed").cloned().unwrap_or_else(|| "0".into())).collect();
        row.push(Cell::Text(seeds.join(" ")));
        row.push(Cell::Text(g.len().to_string()));
        row.push(Cell::Text(model_of(first).to_string()));
        for k in &keys_all {
            let v: Vec<f64> = g.iter().filter_map(|&i| finals[i].get(k).copied()).collect();
            row.push(Cell::Stat(mean_std(&v)));
        }
        let means: Vec<f64> = if mean_keys.is_empty() {
            Vec::new()
        } else {
            g.iter().map(|&i| mean_keys.iter().map(|k| finals[i][*k]).sum::<f64>() / mean_keys.len() as f64).collect()
        };
        row.push(Cell::Stat(mean_std(&means)));
        table.rows.push(row);
    }
    if groups.len() > 1 {
        let first_num = 4 + differing.len();
        for c in first_num..table.columns.len() {
            table.bold_max(c);
        }
    }
    Ablation { table, labels, differing }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(epoch: usize, value: f64, focused: bool) -> Point {
        Point { epoch, value, focused }
    }

    #[test]
    fn best_and_steps() {
        let pts = [
            p(1, 50.0, false),
            p(2, 60.0, true),
            p(3, 55.0, false),
            p(4, 58.0, true),
            p(5, 70.0, true),
            p(6, 65.0, false),
        ];
        assert_eq!(best_focused(&pts), Some(Best { value: 70.0, epoch: 5 }));
        assert_eq!(best_steps(&pts), vec![(2.0, 60.0), (5.0, 60.0), (5.0, 70.0), (6.0, 70.0)]);
        assert_eq!(best_focused(&[p(1, 50.0, false)]), None);
        assert!(best_steps(&[p(1, 50.0, false)]).is_empty());
        // Ties keep the first epoch.
        assert_eq!(best_focused(&[p(1, 60.0, true), p(4, 60.0, true)]), Some(Best { value: 60.0, epoch: 1 }));
    }

    #[test]
    fn flatten_and_differ() {
        let a: toml::Table = toml::from_str(
            "name='a'\noutput_dir='x'\n[student_teacher]\nenabled=true\n[augment]\ncrop_scale=[0.800000011920929,1.0]\n\
             [[datasets]]\nplugin='p'\noptions={train=10}\n",
        )
        .unwrap();
        let b: toml::Table = toml::from_str(
            "name='b'\noutput_dir='y'\n[student_teacher]\nenabled=false\n[augment]\ncrop_scale=[0.8,1.0]\n\
             [[datasets]]\nplugin='p'\noptions={train=20}\n",
        )
        .unwrap();
        let fa = flatten(&a);
        assert_eq!(fa["datasets.0.options.train"], "10");
        assert_eq!(fa["augment.crop_scale"], "[0.8, 1.0]");
        assert_eq!(differing_keys(&[fa, flatten(&b)]), vec!["datasets.0.options.train", "student_teacher.enabled"]);
    }
}
