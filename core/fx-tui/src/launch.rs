//! `--nproc-per-node N`: a data-parallel job on this node, as `torchrun --nproc-per-node N` starts
//! one: N worker processes of this binary, each told its place by torchrun's variables (RANK,
//! WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) and meeting at a c10d store on a free local
//! port. Rank 0 writes the run directory and prints to this terminal; rank r > 0 logs to
//! `RUN/rank-r.log`. When a worker fails, the launcher records which one in the run's events,
//! gives the others the time to fail on their own (their next collective errors at once when a
//! peer's connection closes, after the timeout when it hangs), then ends them.

use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the workers are given beside the run.
pub struct Workers<'a> {
    pub count: usize,
    pub device: Option<&'a str>,
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port for the c10d store")?;
    Ok(l.local_addr()?.port())
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    }
}

/// Runs the job on `run_dir` to its end. Fails naming the first worker that failed.
pub fn run(run_dir: &Path, w: &Workers) -> Result<()> {
    let port = free_port()?;
    let exe = std::env::current_exe()?;
    let mut children: Vec<(usize, Child)> = Vec::new();
    for rank in 0..w.count {
        let mut cmd = Command::new(&exe);
        cmd.arg("--resume").arg(run_dir).arg("--headless");
        if let Some(d) = w.device {
            cmd.arg("--device").arg(d);
        }
        cmd.env("WORLD_SIZE", w.count.to_string())
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("LOCAL_WORLD_SIZE", w.count.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .stdin(Stdio::null());
        // N processes on one node share its cores: like torchrun, do not let each run as many
        // threads as there are cores, unless the user chose a number.
        if std::env::var_os("OMP_NUM_THREADS").is_none() {
            cmd.env("OMP_NUM_THREADS", (fx::train::num_cpus() / w.count).max(1).to_string());
        }
        if rank > 0 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(run_dir.join(format!("rank-{rank}.log")))
                .with_context(|| format!("opening {}", run_dir.join(format!("rank-{rank}.log")).display()))?;
            cmd.stdout(log.try_clone()?).stderr(log);
        }
        let child = cmd.spawn().with_context(|| format!("starting worker {rank}"))?;
        children.push((rank, child));
    }
    let mut failed: Option<(usize, String)> = None;
    let mut since: Option<Instant> = None;
    while !children.is_empty() {
        let mut still = Vec::new();
        let mut now_failed = Vec::new();
        for (rank, mut child) in children {
            match child.try_wait()? {
                Some(status) if !status.success() => now_failed.push((rank, status)),
                Some(_) => {}
                None => still.push((rank, child)),
            }
        }
        children = still;
        if failed.is_none() && !now_failed.is_empty() {
            // Seen in the same poll, a worker killed by a signal is the cause and the others
            // (which exit with an error when their collective breaks) the consequence.
            use std::os::unix::process::ExitStatusExt;
            now_failed.sort_by_key(|(rank, s)| (s.signal().is_none(), *rank));
            let (rank, status) = now_failed[0];
            let what = describe(status);
            record_failure(run_dir, rank, w.count, &what);
            failed = Some((rank, what));
            since = Some(Instant::now());
        }
        // The survivors of a failed job normally end by themselves within seconds (their next
        // collective fails, and they name the culprit); a frozen worker is ended after 20 s.
        if since.is_some_and(|t| t.elapsed() > Duration::from_secs(20)) {
            for (_, c) in &mut children {
                let _ = c.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    match failed {
        Some((rank, what)) => bail!(
            "worker {rank} of {} failed ({what}){}; the job stopped. Continue from the last checkpoint with: \
             fx-tui --resume {} --nproc-per-node N",
            w.count,
            if rank > 0 {
                format!(", its log: {}", run_dir.join(format!("rank-{rank}.log")).display())
            } else {
                String::new()
            },
            run_dir.display()
        ),
        None => Ok(()),
    }
}

/// The run's events name the worker that failed first (rank 0 may itself be gone, so the
/// launcher writes it; an event line is one atomic append).
fn record_failure(run_dir: &Path, rank: usize, world: usize, what: &str) {
    if let Ok(store) = fx::store::RunStore::open(run_dir) {
        let _ = store.event(
            "error",
            "rank_failed",
            format!("worker {rank} of {world} failed ({what}); the other workers stop"),
            serde_json::json!({ "rank": rank, "world_size": world, "status": what }),
        );
    }
}
