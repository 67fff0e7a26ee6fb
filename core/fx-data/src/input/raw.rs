//! Headerless raw images, as the JSRT database ships them: `JPCLN001.IMG` … are 2048 × 2048
//! words of 12 bits, big-endian, with no header at all. Higher values are darker film in JSRT, so
//! fx inverts by default to show bone bright as in every other format.

use super::{minmax, percentile, Gray, Window};
use serde::{Deserialize, Serialize};

/// Geometry of a headerless raw file (a dataset's `options.raw`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawOptions {
    pub width: usize,
    pub height: usize,
    /// Byte order of each 16-bit word.
    pub big_endian: bool,
    /// Significant bits per word (values above 2^bits − 1 are clipped).
    pub bits: u32,
    /// Invert intensities (JSRT stores optical density: high = dark).
    pub invert: bool,
}

impl Default for RawOptions {
    fn default() -> Self {
        RawOptions { width: 2048, height: 2048, big_endian: true, bits: 12, invert: true }
    }
}

impl RawOptions {
    pub fn from_json(v: &serde_json::Value) -> Result<RawOptions, String> {
        let o: RawOptions = serde_json::from_value(v.clone())
            .map_err(|e| format!("options.raw must be {{ width, height, big_endian, bits, invert }}: {e}"))?;
        if o.width == 0 || o.height == 0 || o.width > 65536 || o.height > 65536 {
            return Err(format!("options.raw: width and height must be 1..=65536, got {}×{}", o.width, o.height));
        }
        if !(1..=16).contains(&o.bits) {
            return Err(format!("options.raw.bits must be 1..=16, got {}", o.bits));
        }
        Ok(o)
    }
}

pub fn decode(path: &std::path::Path, o: &RawOptions, window: Window) -> Result<Gray, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open: {e}"))?;
    let want = o.width * o.height * 2;
    if bytes.len() < want {
        return Err(format!(
            "truncated raw image: {} bytes, but {}×{} 16-bit words need {want} (options.raw gives the geometry)",
            bytes.len(),
            o.width,
            o.height
        ));
    }
    if bytes.len() > want {
        return Err(format!(
            "{} bytes is more than {}×{} 16-bit words ({want}): not a raw image of this geometry (options.raw)",
            bytes.len(),
            o.width,
            o.height
        ));
    }
    let max = ((1u32 << o.bits) - 1) as f32;
    let mut pixels: Vec<f32> = bytes
        .chunks_exact(2)
        .map(|c| {
            let w = if o.big_endian { u16::from_be_bytes([c[0], c[1]]) } else { u16::from_le_bytes([c[0], c[1]]) };
            (w as f32).min(max)
        })
        .collect();
    match window {
        Window::Minmax => minmax(&mut pixels),
        Window::Percentile => percentile(&mut pixels),
        Window::Dicom | Window::Full => pixels.iter_mut().for_each(|v| *v /= max),
    }
    if o.invert {
        pixels.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(Gray { width: o.width, height: o.height, pixels, warnings: Vec::new() })
}
