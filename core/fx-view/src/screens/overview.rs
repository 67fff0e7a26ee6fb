//! Overview: the run, the current epoch (Lock/Release, trainable groups), progress gauges with
//! ETAs, the loss sparkline and throughput, and the latest metrics table.

use super::{bar, block, fit, opt_value, pad, sparkline};
use crate::screens::View;
use fx_run::facts;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

pub fn draw(f: &mut Frame, area: Rect, v: &View) {
    let [top, progress, metrics] =
        Layout::vertical([Constraint::Length(6), Constraint::Length(7), Constraint::Min(3)]).areas(area);
    let [run_a, epoch_a] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(top);
    run_box(f, run_a, v);
    epoch_box(f, epoch_a, v);
    progress_box(f, progress, v);
    metrics_box(f, metrics, v);
}

fn kv<'a>(k: &str, v: impl Into<String>) -> Line<'a> {
    Line::from(vec![Span::raw(format!("{k:<9}")), Span::raw(v.into())])
}

fn run_box(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let s = v.store;
    let mut lines = Vec::new();
    let title = s.experiment.as_ref().map(|e| e.name.clone()).filter(|n| !n.is_empty()).unwrap_or_else(|| "run".into());
    if let Some(e) = &s.experiment {
        let mut m = e.arch.clone();
        if let Some(px) = e.image_size {
            m.push_str(&format!(" {px}px"));
        }
        if let Some(b) = e.batch_size {
            m.push_str(&format!(" batch {b}"));
        }
        lines.push(kv("model", m));
    }
    match &s.run {
        None => lines.push(kv("status", "waiting for trainer (no run.json)")),
        Some(r) => {
            let mut st =
                vec![Span::raw(format!("{:<9}", "status")), Span::styled(r.status.clone(), t.status_style(&r.status))];
            if let Some(age) = facts::heartbeat_age(s, v.now) {
                st.push(Span::raw(format!("  heartbeat {age} ago")));
            }
            lines.push(Line::from(st));
            let mut dev = r.device.clone();
            if r.pid != 0 {
                dev.push_str(&format!("  pid {}", r.pid));
            }
            if !r.host.is_empty() {
                dev.push_str(&format!(" on {}", r.host));
            }
            lines.push(kv("device", dev));
            match &r.error {
                Some(e) => lines.push(Line::from(Span::styled(format!("error    {e}"), t.status_style("failed")))),
                None => lines.push(kv("started", r.started.replace('T', " ").chars().take(19).collect::<String>())),
            }
        }
    }
    let w = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = lines.into_iter().map(|l| fit_line(l, w)).collect();
    f.render_widget(Paragraph::new(lines).block(block(title, t)), area);
}

fn epoch_box(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let s = v.store;
    let mut lines = Vec::new();
    let cur = facts::current_epoch(s);
    lines.push(Line::from(crate::screens::epoch_line(s, t)));
    match cur.and_then(|e| facts::plan_of(s, e)) {
        Some(p) => {
            let verb = if facts::is_running(s) { "training" } else { "trained" };
            lines.push(Line::from(vec![
                Span::raw(format!("{verb} {} {} ", p.dataset, p.task)),
                Span::styled(p.mode.clone(), t.title()),
                Span::raw(if p.fraction < 1.0 { format!(" {:.0}%", p.fraction * 100.0) } else { String::new() }),
            ]));
            let tr = p.trainable.trained();
            let fr = p.trainable.frozen();
            lines.push(kv("train", if tr.is_empty() { "-".into() } else { tr.join(" ") }));
            lines.push(kv("frozen", if fr.is_empty() { "-".into() } else { fr.join(" ") }));
        }
        None => lines.push(Line::from(if s.plan.is_empty() { "no plan.json yet" } else { "not started" })),
    }
    let w = area.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = lines.into_iter().map(|l| fit_line(l, w)).collect();
    f.render_widget(Paragraph::new(lines).block(block("epoch", t)), area);
}

fn progress_box(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let s = v.store;
    let inner_w = area.width.saturating_sub(2) as usize;
    let gw = inner_w.saturating_sub(7 + 24).clamp(4, 40);
    let running = facts::is_running(s);
    let cur = facts::current_epoch(s);
    let total = facts::epochs_total(s);
    let done = facts::epochs_done(s);
    // The progress file only describes the epoch under way.
    let prog = s.progress.as_ref().filter(|p| running && Some(p.epoch) == cur && p.steps > 0);
    let step_frac = prog.map_or(0.0, |p| p.step as f64 / p.steps as f64);
    let mut lines = Vec::new();
    let gauge = |label: &str, frac: f64, text: String| Line::from(format!("{label:<6} {} {text}", bar(frac, gw, t)));
    match prog {
        Some(p) => lines.push(gauge(
            "step",
            step_frac,
            format!("{}/{}  ETA {}", p.step, p.steps, p.eta_epoch_s.map_or("-".into(), facts::fmt_eta)),
        )),
        None if running => lines.push(Line::from(format!("{:<6} waiting for trainer", "step"))),
        None => lines.push(Line::from(format!("{:<6} - (trainer not running)", "step"))),
    }
    // Epoch within its cycle, counting the current one as partly done when running.
    match cur.and_then(|e| facts::epoch_in_cycle(s, e).map(|x| (e, x))) {
        Some((_, (pos, n))) => {
            let finished = if running { pos - 1 } else { pos } as f64 + if running { step_frac } else { 0.0 };
            lines.push(gauge("epoch", finished / n as f64, format!("{pos}/{n} of the cycle")));
        }
        None => lines.push(Line::from(format!("{:<6} -", "epoch"))),
    }
    let cycles = facts::cycles_total(s);
    match cur.and_then(|e| facts::plan_of(s, e)) {
        Some(p) if cycles > 0 => {
            let in_cycle = facts::epoch_in_cycle(s, p.epoch).map_or(0.0, |(pos, n)| {
                ((if running { pos - 1 } else { pos }) as f64 + if running { step_frac } else { 0.0 }) / n as f64
            });
            let frac = ((p.cycle - 1) as f64 + in_cycle) / cycles as f64;
            lines.push(gauge("cycle", frac, format!("{}/{}", p.cycle, cycles)));
        }
        _ => lines.push(Line::from(format!("{:<6} -", "cycle"))),
    }
    if total > 0 {
        let frac = (done as f64 + if running { step_frac } else { 0.0 }) / total as f64;
        let eta = prog.and_then(|p| p.eta_run_s).map_or(String::new(), |e| format!("  ETA {}", facts::fmt_eta(e)));
        lines.push(gauge("run", frac, format!("{done}/{total} epochs{eta}")));
    } else {
        lines.push(Line::from(format!("{:<6} -", "run")));
    }
    // Loss and throughput.
    match s.progress.as_ref().filter(|_| running) {
        Some(p) => {
            let mut text = format!("{:<6} {}", "loss", p.loss.map_or("-".into(), |l| format!("{l:.4}")));
            if let Some(ips) = p.img_per_s {
                text.push_str(&format!("  {ips:.1} img/s"));
            }
            if !p.rank_img_per_s.is_empty() {
                // A data-parallel job: the world size and each rank's share, so a slow rank shows.
                let each: Vec<String> = p.rank_img_per_s.iter().map(|r| format!("{r:.1}")).collect();
                text.push_str(&format!(" ({} ranks: {})", each.len(), each.join(" ")));
            }
            let room = inner_w.saturating_sub(text.chars().count() + 2);
            if !p.loss_history.is_empty() && room >= 4 {
                text.push_str("  ");
                text.push_str(&sparkline(&p.loss_history, room, t));
            }
            lines.push(Line::from(text));
        }
        None => lines.push(Line::from(format!("{:<6} -", "loss"))),
    }
    let lines: Vec<Line> = lines.into_iter().map(|l| fit_line(l, inner_w)).collect();
    f.render_widget(Paragraph::new(lines).block(block("progress", t)), area);
}

fn metrics_box(f: &mut Frame, area: Rect, v: &View) {
    let t = v.theme;
    let (epoch, rows) = facts::latest(v.store);
    let title = match epoch {
        Some(e) => format!("metrics after epoch {e}  ({} focused, best: best focused so far)", t.focused),
        None => "metrics".into(),
    };
    let inner_w = area.width.saturating_sub(2) as usize;
    // The hot-add queue takes the box's last line while it has files.
    let q = &v.store.queue;
    let queue_line = (!q.is_empty()).then(|| {
        let waiting = if q.pending.is_empty() { String::new() } else { format!(" ({})", q.pending.join(", ")) };
        format!(
            "hot-add: {} waiting{waiting} {} {} added {} {} refused (see Log)",
            q.pending.len(),
            t.sep,
            q.added.len(),
            t.sep,
            q.refused.len()
        )
    });
    let rows_room = (area.height.saturating_sub(3) as usize).saturating_sub(queue_line.is_some() as usize);
    let dw = inner_w.saturating_sub(2 + 5 + 7 + 4 * 9).clamp(8, 20);
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "  {} {:<5}{:<7}{:>9}{:>9}{:>9}{:>9}",
            pad("dataset", dw),
            "task",
            "metric",
            "teacher",
            "student",
            "best T",
            "best S"
        ),
        t.dim(),
    ))];
    if rows.is_empty() {
        lines.push(Line::from("  no evaluation yet"));
    }
    let shown = if rows.len() > rows_room { rows_room.saturating_sub(1) } else { rows.len() };
    for r in rows.iter().take(shown) {
        let mark = if r.focused { t.focused.to_string() } else { " ".into() };
        let line = format!(
            "{mark} {} {:<5}{:<7}{:>9}{:>9}{:>9}{:>9}",
            pad(&r.dataset, dw),
            fit(&r.task, 4),
            fit(&r.metric, 6),
            opt_value(r.teacher),
            opt_value(r.student),
            opt_value(r.best_teacher),
            opt_value(r.best_student)
        );
        lines.push(if r.focused { Line::styled(line, t.focused_style()) } else { Line::from(line) });
    }
    if shown < rows.len() {
        lines.push(Line::from(format!("  ... {} more (see Charts)", rows.len() - shown)));
    }
    if let Some(q) = queue_line {
        lines.push(Line::styled(fit(&q, inner_w), t.dim()));
    }
    f.render_widget(Paragraph::new(lines).block(block(title, t)), area);
}

/// Cuts a line's spans to `w` characters.
fn fit_line(line: Line<'static>, w: usize) -> Line<'static> {
    let mut left = w;
    let mut spans = Vec::new();
    for sp in line.spans {
        if left == 0 {
            break;
        }
        let n = sp.content.chars().count();
        if n <= left {
            left -= n;
            spans.push(sp);
        } else {
            spans.push(Span::styled(fit(&sp.content, left), sp.style));
            left = 0;
        }
    }
    Line::from(spans).style(line.style)
}
