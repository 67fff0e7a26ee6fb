//! Facts derived from the store that several screens share: the current epoch, the datasets in
//! order, the series of each chart, the latest metric table. Pure functions of the store.

use crate::store::Store;
use crate::{EpochPlan, MetricRow};

/// The epoch the screens point at: the one training (running) or the last one finished.
pub fn current_epoch(store: &Store) -> Option<usize> {
    let total = store.plan.len().max(store.run.as_ref().map_or(0, |r| r.epochs_total));
    let done = match &store.run {
        Some(r) => r.epochs_done,
        None => store.metrics.iter().map(|m| m.epoch).max().unwrap_or(0),
    };
    if is_running(store) {
        let e = store.progress.as_ref().map(|p| p.epoch).filter(|&e| e > done).unwrap_or(done + 1);
        Some(if total > 0 { e.min(total) } else { e })
    } else if done > 0 {
        Some(done)
    } else {
        None
    }
}

/// A trainer owns the run: training, or paused and waiting for "resume".
pub fn is_running(store: &Store) -> bool {
    store.run.as_ref().is_some_and(|r| r.status == "running" || r.status == "paused")
}

pub fn epochs_done(store: &Store) -> usize {
    match &store.run {
        Some(r) => r.epochs_done,
        None => store.metrics.iter().map(|m| m.epoch).max().unwrap_or(0),
    }
}

pub fn epochs_total(store: &Store) -> usize {
    store.plan.len().max(store.run.as_ref().map_or(0, |r| r.epochs_total))
}

pub fn plan_of(store: &Store, epoch: usize) -> Option<&EpochPlan> {
    store.plan.iter().find(|p| p.epoch == epoch)
}

pub fn cycles_total(store: &Store) -> usize {
    store
        .plan
        .iter()
        .map(|p| p.cycle)
        .max()
        .or_else(|| store.experiment.as_ref().and_then(|e| e.cycles).map(|c| c.max(0) as usize))
        .unwrap_or(0)
}

/// (position of `epoch` within its cycle, epochs in that cycle), both 1-based positions.
pub fn epoch_in_cycle(store: &Store, epoch: usize) -> Option<(usize, usize)> {
    let cycle = plan_of(store, epoch)?.cycle;
    let in_cycle: Vec<usize> = store.plan.iter().filter(|p| p.cycle == cycle).map(|p| p.epoch).collect();
    let pos = in_cycle.iter().position(|&e| e == epoch)? + 1;
    Some((pos, in_cycle.len()))
}

/// Datasets in the order of the experiment, then any others the plan or metrics name.
pub fn datasets(store: &Store) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |d: &str| {
        if !d.is_empty() && !out.iter().any(|x| x == d) {
            out.push(d.to_string());
        }
    };
    if let Some(e) = &store.experiment {
        for d in &e.datasets {
            add(&d.name);
        }
    }
    for p in &store.plan {
        add(&p.dataset);
    }
    for m in &store.metrics {
        add(&m.eval.dataset);
    }
    out
}

/// The (dataset, task) pairs evaluated or planned, datasets in [`datasets`] order, tasks cls/loc/seg.
pub fn pairs(store: &Store) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for d in datasets(store) {
        for t in ["cls", "loc", "seg"] {
            let seen = store.plan.iter().any(|p| p.dataset == d && p.task == t)
                || store.metrics.iter().any(|m| m.eval.dataset == d && m.eval.task == t);
            if seen {
                out.push((d.clone(), t.to_string()));
            }
        }
    }
    // Tasks outside cls/loc/seg, should a trainer ever write them.
    for m in &store.metrics {
        if !out.iter().any(|(d, t)| m.eval.dataset == *d && m.eval.task == *t) {
            out.push((m.eval.dataset.to_string(), m.eval.task.to_string()));
        }
    }
    out
}

/// One point of a metric chart.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    pub epoch: usize,
    pub value: f64,
    pub focused: bool,
}

/// One (dataset, task) series for one model.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub dataset: String,
    pub task: String,
    pub metric: String,
    pub points: Vec<Point>,
}

impl Series {
    pub fn best_focused(&self) -> Option<f64> {
        self.points
            .iter()
            .filter(|p| p.focused)
            .map(|p| p.value)
            .fold(None, |a, v| Some(a.map_or(v, |a: f64| a.max(v))))
    }
}

/// Every chart's series for `model`, in [`pairs`] order; a pair without rows yet has no points.
pub fn series(store: &Store, model: &str) -> Vec<Series> {
    pairs(store)
        .into_iter()
        .map(|(d, t)| {
            // Each task's chart shows the paper's metric (auc, map40, dice); secondary metrics such as
            // dice_global stay in metrics.jsonl and the exports.
            let metric = default_metric(&t).to_string();
            let rows: Vec<&MetricRow> = store
                .metrics
                .iter()
                .filter(|m| m.model == model && m.eval.dataset == d && m.eval.task == t && m.metric == metric)
                .collect();
            let mut points: Vec<Point> =
                rows.iter().map(|r| Point { epoch: r.epoch, value: r.value, focused: r.focused }).collect();
            points.sort_by_key(|p| p.epoch);
            points.dedup_by_key(|p| p.epoch);
            Series { dataset: d, task: t, metric, points }
        })
        .collect()
}

pub fn default_metric(task: &str) -> &'static str {
    match task {
        "loc" => "map40",
        "seg" => "dice",
        _ => "auc",
    }
}

/// One line of the latest-metrics table.
#[derive(Clone, Debug, PartialEq)]
pub struct LatestRow {
    pub dataset: String,
    pub task: String,
    pub metric: String,
    pub teacher: Option<f64>,
    pub student: Option<f64>,
    pub focused: bool,
    /// Best focused value so far (up to this epoch) of the teacher and of the student.
    pub best_teacher: Option<f64>,
    pub best_student: Option<f64>,
}

/// The metrics of the last evaluated epoch, one line per (dataset, task).
pub fn latest(store: &Store) -> (Option<usize>, Vec<LatestRow>) {
    let Some(epoch) = store.metrics.iter().map(|m| m.epoch).max() else {
        return (None, Vec::new());
    };
    let mut out: Vec<LatestRow> = Vec::new();
    for (d, t) in pairs(store) {
        let metric = default_metric(&t);
        let rows: Vec<&MetricRow> = store
            .metrics
            .iter()
            .filter(|m| m.epoch == epoch && m.eval.dataset == d && m.eval.task == t && m.metric == metric)
            .collect();
        if rows.is_empty() {
            continue;
        }
        let get = |model: &str| rows.iter().rev().find(|r| r.model == model).map(|r| r.value);
        let best = |model: &str| {
            store
                .metrics
                .iter()
                .filter(|m| {
                    m.focused && m.model == model && m.eval.dataset == d && m.eval.task == t && m.metric == metric
                })
                .map(|m| m.value)
                .fold(None, |a: Option<f64>, v| Some(a.map_or(v, |a| a.max(v))))
        };
        let (best_teacher, best_student) = (best("teacher"), best("student"));
        out.push(LatestRow {
            metric: rows[0].metric.to_string(),
            teacher: get("teacher"),
            student: get("student"),
            focused: rows.iter().any(|r| r.focused),
            best_teacher,
            best_student,
            dataset: d,
            task: t,
        });
    }
    (Some(epoch), out)
}

/// Label names of a (dataset, task), from the latest metric row that lists them.
pub fn labels(store: &Store, dataset: &str, task: &str) -> Option<Vec<String>> {
    store
        .metrics
        .iter()
        .rev()
        .find(|m| m.eval.dataset == dataset && m.eval.task == task && !m.per_label.is_empty())
        .map(|m| m.per_label.keys().map(|k| k.to_string()).collect())
}

/// Each label's points of a chart's series (the per-label values of its metric rows for `model`),
/// by label name.
pub fn label_series(store: &Store, s: &Series, model: &str) -> Vec<(String, Vec<Point>)> {
    let mut out: Vec<(String, Vec<Point>)> = Vec::new();
    for m in store
        .metrics
        .iter()
        .filter(|m| m.model == model && m.eval.dataset == s.dataset && m.eval.task == s.task && m.metric == s.metric)
    {
        for (label, v) in m.per_label.iter() {
            let i = match out.iter().position(|(l, _)| *l == *label) {
                Some(i) => i,
                None => {
                    out.push((label.to_string(), Vec::new()));
                    out.len() - 1
                }
            };
            out[i].1.push(Point { epoch: m.epoch, value: *v, focused: m.focused });
        }
    }
    for (_, pts) in &mut out {
        pts.sort_by_key(|p| p.epoch);
        pts.dedup_by_key(|p| p.epoch);
    }
    out
}

/// Seconds since the Unix epoch of an RFC 3339 time such as `2026-11-27T19:22:47+01:00`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(r) = rest.strip_prefix('.') {
        rest = r.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    let offset = match rest {
        "Z" | "z" | "" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let oh = rest.get(1..3)?.parse::<i64>().ok()?;
            let om = rest.get(4..6).and_then(|m| m.parse::<i64>().ok()).unwrap_or(0);
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + h * 3600 + mi * 60 + se - offset)
}

/// "4s", "3m", "2h05m", "3d".
pub fn fmt_age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86400 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else {
        format!("{}d", s / 86400)
    }
}

/// The heartbeat age shown, coarsened so that an idle viewer redraws rarely: whole seconds under
/// 10 s would change every second, so ages count in 10 s steps below a minute, then minutes.
pub fn heartbeat_age(store: &Store, now: Option<i64>) -> Option<String> {
    let hb = parse_rfc3339(&store.run.as_ref()?.heartbeat)?;
    let age = now? - hb;
    Some(if age < 10 {
        "<10s".to_string()
    } else if age < 60 {
        format!("{}s", age / 10 * 10)
    } else {
        fmt_age(age)
    })
}

/// "1:05", "1:02:03".
pub fn fmt_eta(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    let s = secs.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00Z"), Some(951868800));
        assert_eq!(parse_rfc3339("2026-11-27T19:22:47.123-00:30"), Some(1795807367 + 1800));
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
