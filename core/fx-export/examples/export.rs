//! `cargo run -p fx-export --example export -- RUN_DIR OUT_DIR [--student]`
//! `cargo run -p fx-export --example export -- --report OUT_DIR RUN_DIR...`

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--report") {
        let out = PathBuf::from(args.get(1).ok_or_else(|| anyhow::anyhow!("--report OUT RUN..."))?);
        let runs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
        let s = fx_export::report(&runs, &out)?;
        println!("differing: {:?}", s.differing);
        for f in &s.files {
            println!("{}", f.display());
        }
        return Ok(());
    }
    let [run, out, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: export RUN_DIR OUT_DIR [--student]");
    };
    let mut opts = fx_export::ExportOptions::default();
    if rest.iter().any(|a| a == "--student") {
        opts = opts.with_student();
    }
    let s = fx_export::export(run.as_ref(), out.as_ref(), &opts)?;
    for f in &s.files {
        println!("{}", f.display());
    }
    for w in &s.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}
