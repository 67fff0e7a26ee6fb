//! A stand-alone viewer for trying fx-view: `cargo run -p fx-view --example view -- RUN_DIR [--ascii]`.
//! `--panic-after SECS` panics in a thread after SECS seconds, to see the terminal restored.

fn main() -> anyhow::Result<()> {
    let mut dir = None;
    let mut opts = fx_view::ViewOptions { ascii: !fx_view::locale_is_utf8(), ..Default::default() };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--ascii" => opts.ascii = true,
            "--unicode" => opts.ascii = false,
            "--panic-after" => {
                let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(secs));
                    panic!("test panic after {secs} s");
                });
            }
            _ => dir = Some(std::path::PathBuf::from(a)),
        }
    }
    let dir = dir.ok_or_else(|| anyhow::anyhow!("usage: view RUN_DIR [--ascii|--unicode]"))?;
    let exit = fx_view::run(&dir, opts, None)?;
    println!("{exit:?}");
    Ok(())
}
