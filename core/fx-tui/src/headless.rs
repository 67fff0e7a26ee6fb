//! Headless progress: one line per window of steps and a metrics table per epoch. Used for batch
//! jobs, CI and whenever stdout is not a terminal. Write errors (a closed SSH pipe) are ignored:
//! losing the terminal must never stop training.

use fx::config::Experiment;
use fx::store::MetricRow;
use fx::train::Progress;
use std::io::Write;

pub struct Printer {
    datasets: Vec<String>,
    cycles: usize,
}

pub fn clock(s: f64) -> String {
    if !s.is_finite() {
        return "--:--".into();
    }
    let s = s.round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

impl Printer {
    pub fn new(exp: &Experiment, datasets: Vec<String>) -> Printer {
        Printer { datasets, cycles: exp.train.cycles }
    }

    pub fn line(&mut self, s: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }

    pub fn on(&mut self, p: Progress) {
        match p {
            Progress::Started { run_dir, device, params, first_epoch, epochs } => self.line(&format!(
                "fx: run {} | device {device} | {:.2} M parameters | epochs {first_epoch}..{epochs}",
                run_dir.display(),
                params as f64 / 1e6
            )),
            Progress::Step(s) => self.line(&format!(
                "[cycle {}/{} epoch {}/{} {} {} {}] step {}/{} loss {:.4} | {:.1} img/s{} | ETA epoch {} run {}",
                s.plan.cycle,
                self.cycles,
                s.plan.epoch,
                s.epochs,
                s.plan.dataset,
                s.plan.task,
                s.plan.mode.as_str(),
                s.step,
                s.steps,
                s.loss,
                s.img_per_s,
                if s.rank_img_per_s.is_empty() {
                    String::new()
                } else {
                    let each: Vec<String> = s.rank_img_per_s.iter().map(|r| format!("{r:.1}")).collect();
                    format!(" ({} ranks: {})", each.len(), each.join(" "))
                },
                clock(s.eta_epoch_s),
                clock(s.eta_run_s)
            )),
            Progress::Epoch { plan, rows, train_s, eval_s, reuse, skipped } => {
                let mut t = format!(
                    "epoch {} (cycle {}) trained {}/{} {} in {:.1} s, evaluated in {:.1} s{}{}\n",
                    plan.epoch,
                    plan.cycle,
                    plan.dataset,
                    plan.task,
                    plan.mode.as_str(),
                    train_s,
                    eval_s,
                    // A Lock epoch leaves most student paths as they were: their scores stand.
                    if reuse.reused > 0 {
                        format!(" ({} of {} unchanged since their last evaluation)", reuse.reused, reuse.evaluations)
                    } else {
                        String::new()
                    },
                    if skipped > 0 { format!(", {skipped} bad samples skipped") } else { String::new() }
                );
                t.push_str(&table(&self.datasets, rows));
                self.line(t.trim_end());
            }
            Progress::Warning(w) => self.line(&format!("warning: {w}")),
            Progress::Finished { status, wall_s } => self.line(&format!("fx: run {status} after {}", clock(wall_s))),
        }
    }
}

/// The latest metrics: one line per (dataset, task), teacher and student side by side; `*` marks
/// the focused row (the dataset and task just trained).
pub fn table(datasets: &[String], rows: &[MetricRow]) -> String {
    let w = datasets.iter().map(|d| d.len()).max().unwrap_or(7).max(7);
    let mut out = format!("  {:w$}  task  metric  teacher  student  focused\n", "dataset");
    for d in datasets {
        for task in ["cls", "loc", "seg"] {
            // The paper's metric of the task (auc, map40, dice); secondary metrics stay in metrics.jsonl.
            let primary = fx_plugin::Task::parse(task).map(|t| t.metric()).unwrap_or("");
            let sel: Vec<&MetricRow> =
                rows.iter().filter(|r| r.eval.dataset == d && r.eval.task == task && r.metric == primary).collect();
            if sel.is_empty() {
                continue;
            }
            let val = |m: &str| {
                sel.iter()
                    .find(|r| r.model == m)
                    .map(|r| format!("{:7.2}", r.value))
                    .unwrap_or_else(|| "      -".into())
            };
            out.push_str(&format!(
                "  {d:w$}  {task:4}  {:6}  {}  {}  {}\n",
                sel[0].metric,
                val("teacher"),
                val("student"),
                if sel[0].focused { "*" } else { "" }
            ));
        }
    }
    out
}
