//! fx-tui: the Foundation X command line.
//!
//! `fx-tui EXPERIMENT` trains: in a terminal the trainer runs as its own detached process
//! (setsid, output to the run's trainer.log) and the live viewer attaches to its run directory;
//! without a terminal (or with --headless) it trains in this process and prints progress lines.
//! `fx-tui attach` re-attaches, `fx-tui runs` lists runs, `fx-tui ctl` sends pause/resume/stop/
//! export, `fx-tui plan` prints the schedule, `fx-tui features` extracts backbone features.

mod add;
mod bench;
mod cli;
mod control;
mod data;
mod export;
mod features;
mod headless;
mod launch;
mod plan;
mod plugins;
mod predict;
mod process;
mod runs;
mod sweep;
mod train;
mod view;

use clap::Parser;
use cli::{Cli, Command, Format};
use process::{exec_light, registry};
use std::io::IsTerminal;
use std::path::PathBuf;

fn main() {
    // A closed pipe (`fx-tui runs | head -1`) ends a one-shot command quietly, as it does `cat`;
    // training ignores SIGPIPE (install_signal_handlers) and never panics on a closed stdout.
    // SAFETY: restoring a signal's default disposition has no memory effects.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    fx::keep_freed_memory();
    fx::assert_cuda_linked();
    let cli = Cli::parse();
    let tty = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let result = match &cli.command {
        Some(Command::Plan { experiment, format, set }) => {
            plan::print(experiment, set, matches!(format, Format::Json), &registry())
        }
        Some(Command::Features { weights, arch, image_size, device, out, inputs }) => {
            features::run(weights, arch, *image_size, device, out, inputs)
        }
        Some(Command::Bench { task, images, image_size, .. }) if task == "input" => match images {
            Some(dir) => bench::input(dir, (*image_size).max(1) as usize),
            None => Err(anyhow::anyhow!("bench --task input needs --images DIR")),
        },
        Some(Command::Bench {
            arch,
            image_size,
            batch_size,
            steps,
            device,
            task,
            precision,
            activation_checkpointing,
            ..
        }) => bench::run(
            &bench::BenchArgs {
                arch: arch.clone(),
                image_size: *image_size,
                batch_size: *batch_size,
                steps: *steps,
                device: device.clone(),
                task: task.clone(),
                precision: precision.clone(),
                activation_checkpointing: *activation_checkpointing,
            },
            &registry(),
        ),
        Some(Command::Attach { run, runs_dir, ascii }) => view::attach(run.as_deref(), runs_dir, *ascii),
        Some(Command::Runs { dirs, ascii }) if tty => runs::browse(dirs, *ascii),
        Some(Command::Runs { dirs, .. }) => runs::print(dirs),
        // Without libtorch where fx-light is beside this binary; in this process otherwise.
        Some(Command::Compare(a)) => exec_light(&a.to_args()).and_then(|_| a.run()),
        Some(Command::Report(a)) => exec_light(&a.to_args()).and_then(|_| a.run()),
        Some(Command::Export { args, no_gallery: true }) => exec_light(&args.to_args()).and_then(|_| args.run()),
        Some(Command::Export { args, no_gallery: false }) => export::print_export(args, &registry()),
        Some(Command::Sweep { experiment, grid, seeds, set, device, headless, ascii }) => {
            let mut grid = grid.clone();
            if let Some(s) = seeds {
                grid.push(format!("seed={s}"));
            }
            if *headless || !tty {
                sweep::sweep(experiment, &grid, set, device.as_deref())
            } else {
                sweep::sweep_in_viewer(experiment, &grid, set, device.as_deref(), *ascii)
            }
        }
        Some(Command::Plugins { load, experiment }) => plugins::print(load, experiment.as_deref()),
        Some(Command::Add { run, file }) => add::run(run, file),
        Some(Command::Ctl { run, command }) => control::send(run, command).map(|reply| println!("{reply}")),
        Some(Command::Data { experiment, datasets, split, format, check, save_images, limit, set }) => {
            let args = data::DataArgs {
                experiment,
                set,
                datasets,
                split: *split,
                format: *format,
                check: *check,
                save_images: save_images.as_deref(),
                limit: *limit,
            };
            match data::run(&args, &registry()) {
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            }
        }
        Some(Command::Prepare { experiment, set }) => data::prepare(experiment, set, &registry()),
        Some(Command::PluginHost { library }) => fx::dynlib::serve_plugin_host(library),
        Some(Command::Predict {
            model,
            inputs,
            out,
            datasets,
            tasks,
            threshold,
            role,
            device,
            batch_size,
            no_overlays,
        }) => (|| {
            predict::run(&predict::PredictArgs {
                model,
                inputs,
                out,
                datasets,
                tasks,
                threshold: *threshold,
                role: predict::model_role(role)?,
                device: fx::train::resolve_device(device)?,
                batch_size: *batch_size,
                overlays: !no_overlays,
            })
        })(),
        Some(Command::ExportModel { run, out, role }) => {
            predict::model_role(role).and_then(|role| predict::export_model(run, role, out))
        }
        // `fx-tui` alone: the runs browser in a terminal, the usage otherwise.
        None if cli.experiment.is_none() && cli.train.resume.is_none() => {
            if tty {
                runs::browse(&[PathBuf::from("runs")], cli.train.ascii)
            } else {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                std::process::exit(2);
            }
        }
        None => train::train(&cli),
    };
    if let Err(e) = result {
        eprintln!("fx-tui: error: {e:#}");
        std::process::exit(2);
    }
}
