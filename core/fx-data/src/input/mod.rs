//! Image input: every radiograph fx reads — DICOM, MetaImage (`.mha`, `.mhd` + raw), headerless
//! JSRT raw (`.IMG`), PNG and JPEG (8/16 bit, gray, RGB or palette) — becomes one grayscale image
//! in [0, 1] at its ORIGINAL size. Dataset plugins, `features`, `data --check` and `prepare` all
//! decode through [`decode`]; the preprocessing cache ([`crate::cache`]) sits on top of it.
//!
//! Intensities: DICOM applies the Modality LUT (RescaleSlope/Intercept), then the VOI window
//! (see [`Window`]) and inverts MONOCHROME1 so bone is bright everywhere; MetaImage defaults to the
//! min–max of its values; JSRT raw is inverted (its film density runs the other way); PNG/JPEG are
//! divided by their type's maximum. Errors name the file and what was wrong with it.

mod dicom;
mod metaimage;
mod raw;

use serde::{Deserialize, Serialize};
use std::path::Path;

pub use raw::RawOptions;

/// A decoded grayscale image, row-major, values in [0, 1].
#[derive(Clone, Debug, PartialEq)]
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
    /// Soft problems (a multi-frame file of which only the first frame is used), naming the file.
    pub warnings: Vec<String>,
}

/// How stored values become [0, 1] intensities.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    /// The format's own rule: DICOM's VOI LUT or window (min–max when it has neither), min–max
    /// for MetaImage, the type's full range for PNG/JPEG and raw.
    #[default]
    Dicom,
    /// (v − min) / (max − min) over the image.
    Minmax,
    /// The 0.5th–99.5th percentiles of the image stretched to [0, 1] (numpy's linear
    /// interpolation), clipped: robust to burnt-in text and collimator edges.
    Percentile,
    /// The stored type's full range: v / 255, v / 65535, v / (2^bits − 1).
    Full,
}

impl Window {
    pub fn parse(s: &str) -> Option<Window> {
        match s {
            "dicom" => Some(Window::Dicom),
            "minmax" => Some(Window::Minmax),
            "percentile" => Some(Window::Percentile),
            "full" => Some(Window::Full),
            _ => None,
        }
    }
}

/// Decoding options of a dataset (its `options.window` and `options.raw`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeOptions {
    pub window: Window,
    pub raw: RawOptions,
}

/// The option keys [`DecodeOptions::from_options`] reads, for plugins that list their known keys.
pub const OPTION_KEYS: [&str; 2] = ["window", "raw"];

impl DecodeOptions {
    /// Reads `window = "dicom" | "minmax" | "percentile" | "full"` and
    /// `raw = { width, height, big_endian, bits, invert }` from a dataset's options.
    pub fn from_options(opts: &serde_json::Map<String, serde_json::Value>) -> Result<DecodeOptions, String> {
        let mut out = DecodeOptions::default();
        if let Some(v) = opts.get("window") {
            out.window = v.as_str().and_then(Window::parse).ok_or_else(|| {
                format!("options.window must be \"dicom\", \"minmax\", \"percentile\" or \"full\", got {v}")
            })?;
        }
        if let Some(v) = opts.get("raw") {
            out.raw = RawOptions::from_json(v)?;
        }
        Ok(out)
    }
}

/// The formats fx reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Dicom,
    MetaImage,
    Raw,
    /// PNG, JPEG and whatever else the `image` crate recognises by content.
    Picture,
}

/// The format of a file: by extension, else by content (DICOM's "DICM" at byte 128, a MetaImage
/// header), else a picture.
pub fn format_of(path: &Path) -> Format {
    let ext = path.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "dcm" | "dicom" | "dic" => return Format::Dicom,
        "mha" | "mhd" => return Format::MetaImage,
        "img" | "raw" => return Format::Raw,
        "png" | "jpg" | "jpeg" => return Format::Picture,
        _ => {}
    }
    let mut head = [0u8; 132];
    let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    if n >= 132 && &head[128..132] == b"DICM" {
        Format::Dicom
    } else if head[..n].starts_with(b"ObjectType") || head[..n].starts_with(b"NDims") {
        Format::MetaImage
    } else {
        Format::Picture
    }
}

/// Files besides `path` whose content the decoded image depends on (an `.mhd` header's data file),
/// for cache keys.
pub fn companions(path: &Path) -> Vec<std::path::PathBuf> {
    match format_of(path) {
        Format::MetaImage => metaimage::separate_data_file(path).into_iter().collect(),
        _ => Vec::new(),
    }
}

/// Decodes an image file at its original size.
pub fn decode(path: &Path, opts: &DecodeOptions) -> Result<Gray, String> {
    let named = |e: String| format!("{}: {e}", path.display());
    let g = match format_of(path) {
        Format::Dicom => dicom::decode(path, opts.window),
        Format::MetaImage => metaimage::decode(path, opts.window),
        Format::Raw => raw::decode(path, &opts.raw, opts.window),
        Format::Picture => decode_picture(path, opts.window),
    }
    .map_err(named)?;
    if g.width == 0 || g.height == 0 {
        return Err(format!("{}: empty image ({}×{})", path.display(), g.width, g.height));
    }
    debug_assert_eq!(g.pixels.len(), g.width * g.height);
    Ok(g)
}

/// (width, height) of an image file from its header only, without decoding its pixels.
pub fn dimensions(path: &Path, opts: &DecodeOptions) -> Result<(usize, usize), String> {
    let named = |e: String| format!("{}: {e}", path.display());
    match format_of(path) {
        Format::Dicom => dicom::dimensions(path).map_err(named),
        Format::MetaImage => metaimage::dimensions(path).map_err(named),
        Format::Raw => {
            // No header: the geometry is the option's; the file must hold exactly that many words.
            let len = std::fs::metadata(path).map_err(|e| named(format!("cannot open: {e}")))?.len();
            let want = (opts.raw.width * opts.raw.height * 2) as u64;
            if len != want {
                return Err(named(format!(
                    "{}: {len} bytes, but {}×{} 16-bit words need {want} (options.raw gives the geometry)",
                    if len < want { "truncated raw image" } else { "not a raw image of this geometry" },
                    opts.raw.width,
                    opts.raw.height
                )));
            }
            Ok((opts.raw.width, opts.raw.height))
        }
        Format::Picture => image::image_dimensions(path)
            .map(|(w, h)| (w as usize, h as usize))
            .map_err(|e| named(format!("cannot read the image header: {e}"))),
    }
}

/// PNG and JPEG through the `image` crate. Colour becomes luma with ITU-R 601 weights (as
/// Pillow's `convert("L")`); a file cut short is an error even where the decoder would fill the
/// missing rows in silently.
fn decode_picture(path: &Path, window: Window) -> Result<Gray, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open: {e}"))?;
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    check_complete(&bytes)?;
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?
        .decode()
        .map_err(|e| format!("not a decodable image: {e}"))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let sixteen = matches!(img.color().bytes_per_pixel() / img.color().channel_count(), 2 | 4);
    let scale = if sixteen { 65535.0 } else { 255.0 };
    let mut values: Vec<f32> = if img.color().has_color() {
        let rgb = img.into_rgb16();
        rgb.pixels()
            .map(|p| (299.0 * p[0] as f32 + 587.0 * p[1] as f32 + 114.0 * p[2] as f32) / 1000.0 / 65535.0 * scale)
            .collect()
    } else {
        img.into_luma16().into_raw().into_iter().map(|v| v as f32 / 65535.0 * scale).collect()
    };
    match window {
        Window::Minmax => minmax(&mut values),
        Window::Percentile => percentile(&mut values),
        Window::Dicom | Window::Full => values.iter_mut().for_each(|v| *v = (*v / scale).clamp(0.0, 1.0)),
    }
    Ok(Gray { width: w, height: h, pixels: values, warnings: Vec::new() })
}

/// A JPEG must end with its end-of-image marker and a PNG with its IEND chunk; decoders fill a
/// truncated file's missing rows with grey or black instead of failing.
fn check_complete(bytes: &[u8]) -> Result<(), String> {
    if bytes.starts_with(&[0xFF, 0xD8]) {
        // Entropy-coded data stuffs every 0xFF with 0x00, so FF D9 near the end is the EOI marker;
        // some writers pad after it.
        let tail = &bytes[bytes.len().saturating_sub(4096)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(format!("truncated JPEG: no end-of-image marker in its {} bytes", bytes.len()));
        }
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        if !tail.windows(4).any(|w| w == b"IEND") {
            return Err(format!("truncated PNG: no IEND chunk in its {} bytes", bytes.len()));
        }
    }
    Ok(())
}

/// (v − min) / (max − min); all zeros for a constant image.
pub fn minmax(v: &mut [f32]) {
    let (lo, hi) = v.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    stretch(v, lo, hi);
}

/// Stretches the 0.5th–99.5th percentiles to [0, 1] and clips.
pub fn percentile(v: &mut [f32]) {
    if v.is_empty() {
        return;
    }
    let mut sorted = v.to_vec();
    sorted.sort_unstable_by(|a, b| a.total_cmp(b));
    let (lo, hi) = (quantile(&sorted, 0.005), quantile(&sorted, 0.995));
    stretch(v, lo, hi);
}

/// numpy's default ("linear") quantile of sorted values.
fn quantile(sorted: &[f32], q: f64) -> f32 {
    let pos = q * (sorted.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos - pos.floor());
    let a = sorted[i] as f64;
    let b = sorted[(i + 1).min(sorted.len() - 1)] as f64;
    (a + (b - a) * frac) as f32
}

fn stretch(v: &mut [f32], lo: f32, hi: f32) {
    let range = (hi as f64) - (lo as f64);
    for x in v.iter_mut() {
        *x = if range > 0.0 { (((*x as f64) - lo as f64) / range).clamp(0.0, 1.0) as f32 } else { 0.0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_8_and_16_bit_png_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let p8 = dir.path().join("a.png");
        image::GrayImage::from_fn(4, 3, |x, _| image::Luma([(x * 85) as u8])).save(&p8).unwrap();
        let g = decode(&p8, &DecodeOptions::default()).unwrap();
        assert_eq!((g.width, g.height), (4, 3));
        assert!((g.pixels[3] - 1.0).abs() < 1e-6 && g.pixels[0] == 0.0);
        assert_eq!(dimensions(&p8, &DecodeOptions::default()).unwrap(), (4, 3));
        let p16 = dir.path().join("b.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(2, 2, |x, y| {
            image::Luma([((x + 2 * y) * 20000) as u16])
        })
        .save(&p16)
        .unwrap();
        let g = decode(&p16, &DecodeOptions::default()).unwrap();
        assert!((g.pixels[3] - 60000.0 / 65535.0).abs() < 1e-6);
        let g = decode(&p16, &DecodeOptions { window: Window::Minmax, ..Default::default() }).unwrap();
        assert_eq!(g.pixels, vec![0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0]);
        let bad = dir.path().join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really, IEND").unwrap();
        let e = decode(&bad, &DecodeOptions::default()).err().unwrap();
        assert!(e.contains("bad.png") && e.contains("not a decodable image"), "{e}");
        let e = decode(&dir.path().join("missing.png"), &DecodeOptions::default()).err().unwrap();
        assert!(e.contains("missing.png"), "{e}");
    }

    #[test]
    fn quantile_is_numpys_linear() {
        let s: Vec<f32> = (0..11).map(|i| i as f32).collect();
        assert_eq!(quantile(&s, 0.5), 5.0);
        assert!((quantile(&s, 0.005) - 0.05).abs() < 1e-6);
        assert!((quantile(&s, 0.995) - 9.95).abs() < 1e-5);
    }
}
