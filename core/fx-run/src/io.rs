//! Writing run files so that a crash, a kill -9 or a full disk never leaves half a file: whole
//! files are replaced atomically, JSON-lines files grow by whole fsynced lines, and a line torn by
//! a crash is cut off before the next append and ignored by readers.

use anyhow::{anyhow, bail, Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

fn fsync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Writes a file atomically: temp file in the same folder, fsync, rename, fsync the folder. On
/// error nothing is left behind and the previous file (if any) is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    // A temporary name of this process and call: two writers never share one.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.{seq}.tmp", std::process::id()));
    let written = (|| -> Result<()> {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if written.is_err() {
        // Nothing half-written stays behind (a full disk retried would leave one per try).
        let _ = fs::remove_file(&tmp);
    }
    written?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent);
    }
    Ok(())
}

/// Reads a JSON-lines file; a torn (partial) LAST line is dropped, a bad line elsewhere is an
/// error naming the file and line. A missing file is empty.
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    // Bytes, not a string: a line torn inside a multi-byte character must not make the whole
    // file unreadable.
    let bytes = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(anyhow!("{}: {e}", path.display())),
    };
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(v) => out.push(v),
            // The last line without its newline is an append cut short by a crash.
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => bail!("{}:{}: not a valid record: {e}", path.display(), i + 1),
        }
    }
    Ok(out)
}

/// Appends records as JSON lines with one `write`, then fsyncs; a torn tail is cut off first.
pub fn append_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    if items.is_empty() {
        return Ok(());
    }
    let mut buf = String::new();
    for it in items {
        buf.push_str(&serde_json::to_string(it)?);
        buf.push('\n');
    }
    repair_torn_tail(path)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(buf.as_bytes())?;
    f.sync_data()?;
    Ok(())
}

/// A crash in the middle of an append leaves a last line without its newline: cut it off before
/// appending, so the fragment can never end up in the middle of the file.
pub fn repair_torn_tail(path: &Path) -> Result<()> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(anyhow!("{}: {e}", path.display())),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(());
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    let f = OpenOptions::new().write(true).open(path)?;
    f.set_len(keep as u64)?;
    f.sync_all()?;
    Ok(())
}
