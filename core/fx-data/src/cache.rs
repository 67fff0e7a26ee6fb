//! The preprocessing cache: each image is decoded once and stored reduced (longest side at most
//! `longest_side`, 16 bit) under the cache folder, so later epochs, runs and `fx-tui prepare`
//! read a few hundred kilobytes instead of decoding a 3000 × 3000 DICOM again.
//!
//! An entry is keyed by the file's identity (absolute path, length, modification time) and the
//! decoding parameters (window, raw geometry, longest side, entry format version): a changed file
//! or parameter gets a new key, so a stale entry is never read. Entries are written to a unique
//! temporary name and renamed into place, so a reader — another loader thread, another run sharing
//! the folder — sees a whole entry or none. A damaged entry is decoded again and replaced.
//!
//! Boxes and masks stay in original pixels: [`Image`] carries both sizes and the loader scales
//! annotations to the stored image.

use crate::input::{self, DecodeOptions};
pub use fx_plugin::CacheSpec;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Bumped whenever the entry layout or the decoders' output changes.
const VERSION: u32 = 1;
const MAGIC: &[u8; 4] = b"FXC1";

/// An image as the loader gets it: original size (the frame of boxes and masks) and the pixels,
/// possibly reduced.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub image_width: usize,
    pub image_height: usize,
    pub pixels: Vec<f32>,
    pub warnings: Vec<String>,
}

impl Image {
    /// (width, height) of `pixels` when they are smaller than the original, for `Sample::image_dims`.
    pub fn reduced(&self) -> Option<(usize, usize)> {
        ((self.image_width, self.image_height) != (self.width, self.height))
            .then_some((self.image_width, self.image_height))
    }
}

/// Decodes `path`, through the cache when there is one.
pub fn read_image(path: &Path, opts: &DecodeOptions, cache: Option<&CacheSpec>) -> Result<Image, String> {
    let Some(cache) = cache else {
        let g = input::decode(path, opts)?;
        return Ok(Image {
            width: g.width,
            height: g.height,
            image_width: g.width,
            image_height: g.height,
            pixels: g.pixels,
            warnings: g.warnings,
        });
    };
    let entry = entry_path(path, opts, cache)?;
    if let Some(img) = read_entry(&entry) {
        return Ok(img);
    }
    let g = input::decode(path, opts)?;
    let (iw, ih) = reduced_size(g.width, g.height, cache.longest_side);
    let pixels =
        if (iw, ih) == (g.width, g.height) { g.pixels } else { resize_area(&g.pixels, g.width, g.height, iw, ih) };
    // Stored as 16 bit: what is returned now must equal what a later read returns.
    let pixels: Vec<f32> = pixels.iter().map(|v| quantize(*v) as f32 / 65535.0).collect();
    let img =
        Image { width: g.width, height: g.height, image_width: iw, image_height: ih, pixels, warnings: g.warnings };
    // A cache that cannot be written (read-only, full) costs speed, not the sample.
    let _ = write_entry(&entry, &img);
    Ok(img)
}

/// Where the entry of this file and these parameters lives (it may not exist yet).
pub fn entry_path(path: &Path, opts: &DecodeOptions, cache: &CacheSpec) -> Result<PathBuf, String> {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let identity = |p: &Path| -> String {
        let m = std::fs::metadata(p).ok();
        let t = m
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("{}:{}:{t}", p.display(), m.map(|m| m.len()).unwrap_or(0))
    };
    // An .mhd header's pixels live in its data file: that file's identity is part of the key.
    let companions: Vec<String> = input::companions(path).iter().map(|p| identity(p)).collect();
    let key = format!(
        "v{VERSION}\0{}\0{}\0{mtime}\0{}\0{}\0{}",
        abs.display(),
        meta.len(),
        serde_json::to_string(opts).unwrap_or_default(),
        cache.longest_side,
        companions.join("\0")
    );
    let h = fnv128(key.as_bytes());
    let hex = format!("{h:032x}");
    Ok(cache.dir.join(&hex[..2]).join(format!("{}.fxc", &hex[2..])))
}

/// The size an image is stored at: longest side at most `longest`, aspect kept, never enlarged.
pub fn reduced_size(w: usize, h: usize, longest: usize) -> (usize, usize) {
    let side = w.max(h);
    if longest == 0 || side <= longest {
        return (w, h);
    }
    let s = longest as f64 / side as f64;
    (((w as f64 * s).round() as usize).max(1), ((h as f64 * s).round() as usize).max(1))
}

/// Area-average downscaling (each output pixel is the mean of the input pixels it covers, with
/// fractional weights at the borders), the anti-aliased reduction a radiograph needs.
pub fn resize_area(src: &[f32], w: usize, h: usize, ow: usize, oh: usize) -> Vec<f32> {
    let weights = |n: usize, on: usize| -> Vec<Vec<(usize, f32)>> {
        let scale = n as f64 / on as f64;
        (0..on)
            .map(|o| {
                let (a, b) = (o as f64 * scale, (o + 1) as f64 * scale);
                let mut v = Vec::new();
                let mut i = a.floor() as usize;
                while (i as f64) < b && i < n {
                    let cover = (b.min(i as f64 + 1.0) - a.max(i as f64)) / scale;
                    if cover > 0.0 {
                        v.push((i, cover as f32));
                    }
                    i += 1;
                }
                v
            })
            .collect()
    };
    let (wx, wy) = (weights(w, ow), weights(h, oh));
    // Rows first into a (h × ow) buffer, then columns.
    let mut tmp = vec![0f32; h * ow];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (ox, ws) in wx.iter().enumerate() {
            tmp[y * ow + ox] = ws.iter().map(|&(i, c)| row[i] * c).sum();
        }
    }
    let mut out = vec![0f32; ow * oh];
    for (oy, ws) in wy.iter().enumerate() {
        for &(y, c) in ws {
            let (src_row, dst) = (&tmp[y * ow..(y + 1) * ow], &mut out[oy * ow..(oy + 1) * ow]);
            for (d, s) in dst.iter_mut().zip(src_row) {
                *d += s * c;
            }
        }
    }
    out
}

fn quantize(v: f32) -> u16 {
    (v.clamp(0.0, 1.0) * 65535.0).round() as u16
}

fn fnv128(bytes: &[u8]) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for &b in bytes {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

fn read_entry(entry: &Path) -> Option<Image> {
    let b = std::fs::read(entry).ok()?;
    let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize);
    if b.get(..4)? != MAGIC {
        return None;
    }
    let (w, h, iw, ih, nw) = (u32_at(4)?, u32_at(8)?, u32_at(12)?, u32_at(16)?, u32_at(20)?);
    let warnings: Vec<String> = serde_json::from_slice(b.get(24..24 + nw)?).ok()?;
    let px = b.get(24 + nw..)?;
    if px.len() != iw.checked_mul(ih)?.checked_mul(2)? || iw == 0 || ih == 0 {
        return None;
    }
    let pixels = px.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as f32 / 65535.0).collect();
    Some(Image { width: w, height: h, image_width: iw, image_height: ih, pixels, warnings })
}

fn write_entry(entry: &Path, img: &Image) -> std::io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = entry.parent().unwrap();
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.{}.tmp",
        entry.file_name().unwrap().to_string_lossy(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let warnings = serde_json::to_vec(&img.warnings).unwrap_or_else(|_| b"[]".to_vec());
    let mut buf = Vec::with_capacity(24 + warnings.len() + img.pixels.len() * 2);
    buf.extend_from_slice(MAGIC);
    for v in [img.width, img.height, img.image_width, img.image_height, warnings.len()] {
        buf.extend_from_slice(&(v as u32).to_le_bytes());
    }
    buf.extend_from_slice(&warnings);
    for v in &img.pixels {
        buf.extend_from_slice(&quantize(*v).to_le_bytes());
    }
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        // No fsync: an entry lost in a crash is decoded again; a torn one fails its length check.
        drop(f);
        std::fs::rename(&tmp, entry)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u16) {
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn area_resize_averages_and_keeps_the_mean() {
        let src: Vec<f32> = (0..16).map(|i| i as f32).collect();
        let out = resize_area(&src, 4, 4, 2, 2);
        assert_eq!(out, vec![2.5, 4.5, 10.5, 12.5]);
        let src: Vec<f32> = (0..30).map(|i| (i % 7) as f32).collect();
        let out = resize_area(&src, 6, 5, 4, 3);
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean(&src) - mean(&out)).abs() < 1e-4);
        assert_eq!(reduced_size(3000, 2000, 448), (448, 299));
        assert_eq!(reduced_size(300, 200, 448), (300, 200));
    }

    #[test]
    fn decodes_once_reduces_and_invalidates_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.png");
        png(&p, 60, 40, |x, y| (x * 1000 + y * 10) as u16);
        let cache = CacheSpec { dir: dir.path().join("cache"), longest_side: 30 };
        let opts = DecodeOptions::default();
        let a = read_image(&p, &opts, Some(&cache)).unwrap();
        assert_eq!((a.width, a.height, a.image_width, a.image_height), (60, 40, 30, 20));
        let entry = entry_path(&p, &opts, &cache).unwrap();
        assert!(entry.is_file());
        // A hit returns exactly what the miss returned.
        let b = read_image(&p, &opts, Some(&cache)).unwrap();
        assert_eq!(a, b);
        // Another window is another entry.
        let minmax = DecodeOptions { window: input::Window::Minmax, ..Default::default() };
        assert_ne!(entry_path(&p, &minmax, &cache).unwrap(), entry);
        // A changed file (content and time) is decoded again.
        png(&p, 60, 40, |_, _| 65535);
        let t = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&p).unwrap().set_modified(t).unwrap();
        assert_ne!(entry_path(&p, &opts, &cache).unwrap(), entry);
        let c = read_image(&p, &opts, Some(&cache)).unwrap();
        assert!(c.pixels.iter().all(|v| *v == 1.0));
        // A damaged entry is replaced, not trusted.
        let e2 = entry_path(&p, &opts, &cache).unwrap();
        std::fs::write(&e2, b"FXC1garbage").unwrap();
        assert_eq!(read_image(&p, &opts, Some(&cache)).unwrap(), c);
        assert!(read_entry(&e2).is_some());
    }

    #[test]
    fn concurrent_writers_never_expose_a_partial_entry() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.png");
        png(&p, 400, 300, |x, y| ((x * 131 + y * 17) % 65536) as u16);
        let cache = CacheSpec { dir: dir.path().join("cache"), longest_side: 200 };
        let opts = DecodeOptions::default();
        let reference = read_image(&p, &opts, None).unwrap();
        let results: Vec<Image> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|_| {
                    s.spawn(|| {
                        // Readers race the writers: every read is a whole entry or a miss.
                        (0..5).map(|_| read_image(&p, &opts, Some(&cache)).unwrap()).next_back().unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in &results {
            assert_eq!(r, &results[0]);
            assert_eq!((r.width, r.height, r.image_width, r.image_height), (400, 300, 200, 150));
        }
        let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
        assert!((mean(&reference.pixels) - mean(&results[0].pixels)).abs() < 1e-3);
        // No temporary file is left behind.
        let leftovers: Vec<_> =
            walk(&cache.dir).into_iter().filter(|f| f.to_string_lossy().ends_with(".tmp")).collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// An .mhd header's pixels live in its data file: changing only that file is a new entry;
    /// a data file outside the header's folder is refused.
    #[test]
    fn mhd_data_files_are_part_of_the_key_and_confined() {
        let dir = tempfile::tempdir().unwrap();
        let hdr = dir.path().join("a.mhd");
        std::fs::write(
            &hdr,
            "ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = a.raw\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("a.raw"), [0u8, 10, 20, 30]).unwrap();
        let cache = CacheSpec { dir: dir.path().join("cache"), longest_side: 8 };
        let opts = DecodeOptions::default();
        let before = entry_path(&hdr, &opts, &cache).unwrap();
        let a = read_image(&hdr, &opts, Some(&cache)).unwrap();
        std::fs::write(dir.path().join("a.raw"), [30u8, 20, 10, 0, 0]).unwrap();
        assert_ne!(entry_path(&hdr, &opts, &cache).unwrap(), before);
        let b = read_image(&hdr, &opts, Some(&cache)).unwrap();
        assert_ne!(a.pixels, b.pixels);
        for bad in ["/etc/passwd", "../a.raw"] {
            std::fs::write(
                &hdr,
                format!(
                    "ObjectType = Image\nNDims = 2\nDimSize = 2 2\nElementType = MET_UCHAR\nElementDataFile = {bad}\n"
                ),
            )
            .unwrap();
            let e = input::decode(&hdr, &opts).unwrap_err();
            assert!(e.contains("must name a file beside the header"), "{e}");
        }
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }
}
