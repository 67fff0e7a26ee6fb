//! Training from the command line: `fx-tui EXPERIMENT` and `--resume RUN`, in a terminal (the
//! trainer detached, the viewer attached), headless, as `--nproc-per-node` workers, or as one rank
//! of a torchrun/Slurm job.

use crate::cli::{Cli, TrainArgs};
use crate::process::{install_signal_handlers, process_control, registry, spawn_detached};
use crate::{control, headless, launch, view};
use anyhow::Result;
use fx::config::Experiment;
use fx::registry::Registry;
use fx::train::{resolve_device, Trainer};
use std::io::IsTerminal;
use std::path::Path;

fn interactive(args: &TrainArgs) -> bool {
    !args.headless && std::io::stdout().is_terminal() && std::io::stdin().is_terminal()
}

/// Two trainers on one run directory would interleave their rows: refuse a run whose trainer lives.
/// (The trainer itself takes the run's lock; this check only gives the viewer's parent the same
/// answer before it spawns anything.)
fn ensure_no_live_trainer(run_dir: &Path) -> Result<()> {
    let store = fx::store::RunStore::open(run_dir)?;
    let info: Option<fx::store::RunInfo> = store.read_json("run.json").ok();
    if let Some(i) = info {
        if store.is_locked() {
            anyhow::bail!(
                "{} is being trained by pid {} (status {}); attach to it with: fx-tui attach {}",
                run_dir.display(),
                i.pid,
                i.status,
                run_dir.display()
            );
        }
    }
    Ok(())
}

/// The run to train: `--resume RUN`, or a new run directory prepared from the experiment file.
fn run_dir(cli: &Cli, registry: &Registry) -> Result<std::path::PathBuf> {
    match (&cli.train.resume, &cli.experiment) {
        (Some(run), _) => Ok(fx::store::RunStore::open(run)?.dir),
        (None, Some(path)) => {
            let exp = Experiment::load(path, &cli.train.set)?;
            Ok(Trainer::prepare(&exp, &path.display().to_string(), registry)?.dir)
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
    }
}

pub fn train(cli: &Cli) -> Result<()> {
    let args = &cli.train;
    let registry = registry();
    let rendezvous = fx::dist::Rendezvous::from_env()?;
    if args.nproc_per_node == 0 {
        anyhow::bail!("--nproc-per-node must be at least 1");
    }
    if args.nproc_per_node > 1 && rendezvous.is_some() {
        anyhow::bail!(
            "--nproc-per-node starts its own workers, but this process is already a rank of a job (RANK/WORLD_SIZE or \
             SLURM_NTASKS are set): leave --nproc-per-node out under torchrun or srun"
        );
    }
    // Rank 0 of a job takes the run's lock; the other ranks only read the run.
    if let Some(run) = args.resume.as_ref().filter(|_| rendezvous.as_ref().is_none_or(|r| r.rank == 0)) {
        ensure_no_live_trainer(run)?;
    }
    let device_override = args.device.as_deref().map(resolve_device).transpose()?;
    if let Some(r) = &rendezvous {
        return train_rank(cli, r, device_override, &registry);
    }
    if args.nproc_per_node > 1 && !interactive(args) {
        let run_dir = run_dir(cli, &registry)?;
        // The workers stop on Ctrl-C themselves (same process group); the launcher waits for them.
        install_signal_handlers();
        return launch::run(&run_dir, &launch::Workers { count: args.nproc_per_node, device: args.device.as_deref() });
    }
    if interactive(args) {
        // The trainer gets its own process and session: closing this terminal, losing the SSH
        // link or quitting the viewer never touches it.
        let run_dir = run_dir(cli, &registry)?;
        let pid = spawn_trainer(&run_dir, args.device.as_deref(), args.nproc_per_node)?;
        eprintln!("fx: trainer pid {pid}, run {} (log: trainer.log)", run_dir.display());
        return view::view(&run_dir, args.ascii);
    }
    let mut trainer = match (&args.resume, &cli.experiment) {
        (Some(run), _) => Trainer::resume(run, &registry, device_override)?,
        (None, Some(path)) => {
            let exp = Experiment::load(path, &args.set)?;
            let device = match device_override {
                Some(d) => d,
                None => resolve_device(&exp.device)?,
            };
            Trainer::create(exp, &path.display().to_string(), &registry, device)?
        }
        (None, None) => anyhow::bail!("give an experiment file or --resume RUN (see --help)"),
    };
    install_signal_handlers();
    trainer.set_control(process_control());
    if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
        // Training works without it; viewers then cannot pause or stop this run.
        let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
    }
    let mut printer = headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
    let status = trainer.run(&mut |p| printer.on(p))?;
    let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
    if status == "stopped" {
        printer.line(&format!("stopped; continue with: fx-tui --resume {}", trainer.run_dir().display()));
    }
    Ok(())
}

/// One rank of a data-parallel job (started by `--nproc-per-node`, torchrun or srun): joins the
/// c10d group; rank 0 creates the run (or takes the --resume one) and tells the others where it
/// is; every rank trains its slice; rank 0 prints and writes.
fn train_rank(
    cli: &Cli,
    r: &fx::dist::Rendezvous,
    device_override: Option<tch::Device>,
    registry: &Registry,
) -> Result<()> {
    let world = fx::dist::World::join(r)?;
    let mine = if world.rank == 0 { Some(run_dir(cli, registry)?) } else { None };
    let run_dir = world.share_run_dir(mine.as_deref())?;
    let rank = world.rank;
    let mut trainer = Trainer::resume_in(&run_dir, registry, device_override, Some(world))?;
    install_signal_handlers();
    trainer.set_control(process_control());
    if rank == 0 {
        if let Err(e) = control::serve(&trainer.run_dir(), trainer.control()) {
            let _ = trainer.run.event("warn", "control_socket", format!("{e:#}"), serde_json::Value::Null);
        }
    }
    let mut printer = headless::Printer::new(&trainer.exp, trainer.datasets.iter().map(|d| d.name.clone()).collect());
    let status = trainer.run(&mut |p| printer.on(p))?;
    if rank == 0 {
        let _ = std::fs::remove_file(control::socket_path(&trainer.run_dir()));
        if status == "stopped" {
            printer.line(&format!(
                "stopped; continue with: fx-tui --resume {} --nproc-per-node N",
                trainer.run_dir().display()
            ));
        }
    }
    Ok(())
}

/// Starts `fx-tui --resume RUN --headless` detached, its output in RUN/trainer.log (with
/// `--nproc-per-node N`, the launcher of N workers).
fn spawn_trainer(run_dir: &Path, device: Option<&str>, nproc_per_node: usize) -> Result<u32> {
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("--resume").arg(run_dir).arg("--headless");
    if nproc_per_node > 1 {
        cmd.arg("--nproc-per-node").arg(nproc_per_node.to_string());
    }
    if let Some(d) = device {
        cmd.arg("--device").arg(d);
    }
    Ok(spawn_detached(cmd, &run_dir.join("trainer.log"), "trainer")?.pid)
}
