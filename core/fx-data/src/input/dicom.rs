//! DICOM through dicom-rs: the transfer syntaxes of its `native` decoders (implicit/explicit VR
//! little endian, explicit big endian, deflated, RLE Lossless, JPEG baseline/extended/lossless)
//! and pure-Rust JPEG 2000. The LUT steps follow PS3.3 C.11 and are done here, on the stored
//! values, so they are exactly what pydicom's `apply_modality_lut` / `apply_voi_lut` compute:
//!
//! 1. stored values: BitsStored bits, sign-extended when PixelRepresentation is 1;
//! 2. Modality LUT: value × RescaleSlope + RescaleIntercept;
//! 3. VOI: the VOI LUT Sequence's first LUT when present, else the first WindowCenter/Width pair
//!    with the LINEAR function (C.11.2.1.2.1), else the min–max of the image — or the dataset's
//!    `window` choice (`minmax`, `percentile`, `full` = the BitsStored range);
//! 4. MONOCHROME1 is inverted, so bone is bright as in MONOCHROME2.
//!
//! Multi-frame files use their first frame, with a warning.

use super::{minmax, percentile, Gray, Window};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use std::path::Path;

fn open(path: &Path, header_only: bool) -> Result<DefaultDicomObject, String> {
    let len = std::fs::metadata(path).map_err(|e| format!("cannot open: {e}"))?.len();
    if len == 0 {
        return Err("not a DICOM file: it is empty".into());
    }
    let mut opts = OpenFileOptions::new();
    if header_only {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.open_file(path).map_err(|e| {
        let mut head = [0u8; 132];
        let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
        if n == 132 && &head[128..] == b"DICM" {
            format!("DICOM file cannot be parsed (truncated or damaged): {}", chain(&e))
        } else {
            format!("not a DICOM file (no DICM preamble) or unreadable: {}", chain(&e))
        }
    })
}

/// An error with its sources, on one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn int_of(obj: &DefaultDicomObject, tag: dicom_core::Tag, name: &str) -> Result<i64, String> {
    obj.element(tag)
        .map_err(|_| format!("no {name} element"))?
        .to_int::<i64>()
        .map_err(|e| format!("{name} is not a number: {e}"))
}

fn float_opt(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_multi_float64().ok()).filter(|v| !v.is_empty())
}

pub fn dimensions(path: &Path) -> Result<(usize, usize), String> {
    let obj = open(path, true)?;
    Ok((int_of(&obj, tags::COLUMNS, "Columns")? as usize, int_of(&obj, tags::ROWS, "Rows")? as usize))
}

pub fn decode(path: &Path, window: Window) -> Result<Gray, String> {
    let obj = open(path, false)?;
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    if obj.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err("no PixelData element: not an image".into());
    }
    let (rows, cols) = (int_of(&obj, tags::ROWS, "Rows")? as usize, int_of(&obj, tags::COLUMNS, "Columns")? as usize);
    if rows == 0 || cols == 0 || rows > 65536 || cols > 65536 {
        return Err(format!("Rows × Columns = {rows} × {cols} is not an image size fx reads"));
    }
    let frames =
        obj.element_opt(tags::NUMBER_OF_FRAMES).ok().flatten().and_then(|e| e.to_int::<i64>().ok()).unwrap_or(1);
    // dicom-rs's codecs can panic on damaged data (an RLE segment cut short indexes past its end):
    // a damaged file is an error, never a crash.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| obj.decode_pixel_data_frame(0)));
    let name = dicom_transfer_syntax_name(&ts);
    let pd = match decoded {
        Ok(r) => r.map_err(|e| format!("cannot decode the pixel data of transfer syntax {ts}{name}: {}", chain(&e)))?,
        Err(_) => return Err(format!("damaged or truncated pixel data: the {ts}{name} decoder failed on it")),
    };
    let spp = pd.samples_per_pixel() as usize;
    let bits_allocated = pd.bits_allocated() as usize;
    if !matches!(bits_allocated, 8 | 16 | 32) {
        return Err(format!("BitsAllocated = {bits_allocated} is not read (8, 16 or 32)"));
    }
    let bits_stored = (pd.bits_stored() as u32).clamp(1, bits_allocated as u32);
    // Stored bits end at HighBit (normally BitsStored − 1).
    let shift = (pd.high_bit() as u32 + 1).saturating_sub(bits_stored).min(bits_allocated as u32 - bits_stored);
    let signed = pd.pixel_representation() == dicom_pixeldata::PixelRepresentation::Signed;
    let photometric = pd.photometric_interpretation().to_string();
    let bytes = bits_allocated.div_ceil(8);
    let want = rows * cols * spp * bytes;
    let data = pd.frame_data(0).map_err(|_| {
        format!("truncated pixel data: fewer than the {want} bytes that {cols}×{rows}, {spp} sample(s) of {bits_allocated} bits need")
    })?;
    if data.len() < want {
        return Err(format!("truncated pixel data: {} bytes, {want} expected", data.len()));
    }
    let mut warnings = Vec::new();
    if frames > 1 {
        warnings.push(format!("{}: multi-frame DICOM ({frames} frames): only the first frame is used", path.display()));
    }
    if spp == 3 {
        // Colour (secondary captures, photographed films): luma with ITU-R 601 weights, full range.
        if bytes != 1 {
            return Err(format!("{bits_allocated}-bit colour pixel data is not read (8-bit RGB only)"));
        }
        let pixels = data[..want]
            .chunks_exact(3)
            .map(|p| (299.0 * p[0] as f32 + 587.0 * p[1] as f32 + 114.0 * p[2] as f32) / 1000.0 / 255.0)
            .collect();
        return Ok(Gray { width: cols, height: rows, pixels, warnings });
    }
    if spp != 1 {
        return Err(format!("SamplesPerPixel = {spp}: fx reads grayscale (1) or RGB (3) images"));
    }
    // 1. Stored values: the low BitsStored bits, sign-extended for signed data. The decoded
    // buffer is in native byte order whatever the transfer syntax.
    let mask: u32 = if bits_stored >= 32 { u32::MAX } else { (1u32 << bits_stored) - 1 };
    let stored = |raw: u32| -> f64 {
        let v = (raw >> shift) & mask;
        if signed && bits_stored < 32 && v & (1 << (bits_stored - 1)) != 0 {
            (v as i64 - (1i64 << bits_stored)) as f64
        } else {
            v as f64
        }
    };
    let raw: Vec<f64> = match bytes {
        1 => data[..want].iter().map(|&b| stored(b as u32)).collect(),
        2 => data[..want].chunks_exact(2).map(|c| stored(u16::from_ne_bytes([c[0], c[1]]) as u32)).collect(),
        4 => data[..want].chunks_exact(4).map(|c| stored(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))).collect(),
        _ => return Err(format!("BitsAllocated = {bits_allocated} is not read (8, 16 or 32)")),
    };
    // 2. Modality LUT.
    let slope = float_opt(&obj, tags::RESCALE_SLOPE).map(|v| v[0]).unwrap_or(1.0);
    let intercept = float_opt(&obj, tags::RESCALE_INTERCEPT).map(|v| v[0]).unwrap_or(0.0);
    if !slope.is_finite() || !intercept.is_finite() {
        return Err(format!("RescaleSlope/RescaleIntercept {slope}/{intercept} are not finite numbers"));
    }
    let values: Vec<f64> = raw.iter().map(|v| v * slope + intercept).collect();
    // 3. VOI.
    let mut pixels: Vec<f32> = match window {
        Window::Dicom => match voi_lut(&obj)? {
            Some(lut) => values.iter().map(|&x| lut.apply(x)).collect(),
            None => match (float_opt(&obj, tags::WINDOW_CENTER), float_opt(&obj, tags::WINDOW_WIDTH)) {
                (Some(c), Some(w)) if w[0] >= 1.0 && w[0].is_finite() && c[0].is_finite() => {
                    values.iter().map(|&x| linear_window(x, c[0], w[0])).collect()
                }
                _ => minmax_of(&values),
            },
        },
        Window::Minmax => minmax_of(&values),
        Window::Percentile => {
            let mut v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
            percentile(&mut v);
            v
        }
        Window::Full => {
            let (lo, span) = if signed {
                (-(2f64.powi(bits_stored as i32 - 1)), 2f64.powi(bits_stored as i32) - 1.0)
            } else {
                (0.0, 2f64.powi(bits_stored as i32) - 1.0)
            };
            raw.iter().map(|&v| ((v - lo) / span).clamp(0.0, 1.0) as f32).collect()
        }
    };
    // 4. MONOCHROME1: low values are bright.
    if photometric.trim() == "MONOCHROME1" {
        pixels.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(Gray { width: cols, height: rows, pixels, warnings })
}

fn minmax_of(values: &[f64]) -> Vec<f32> {
    let mut v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
    minmax(&mut v);
    v
}

/// PS3.3 C.11.2.1.2.1, the LINEAR window function, to [0, 1].
fn linear_window(x: f64, c: f64, w: f64) -> f32 {
    if x <= c - 0.5 - (w - 1.0) / 2.0 {
        0.0
    } else if x > c - 0.5 + (w - 1.0) / 2.0 {
        1.0
    } else {
        ((x - (c - 0.5)) / (w - 1.0) + 0.5) as f32
    }
}

/// The first item of the VOI LUT Sequence (0028,3010).
struct Lut {
    first: f64,
    data: Vec<u16>,
    max: f64,
}

impl Lut {
    fn apply(&self, x: f64) -> f32 {
        let i = (x - self.first).clamp(0.0, (self.data.len() - 1) as f64) as usize;
        (self.data[i] as f64 / self.max).clamp(0.0, 1.0) as f32
    }
}

fn voi_lut(obj: &DefaultDicomObject) -> Result<Option<Lut>, String> {
    let Some(seq) = obj.element_opt(tags::VOILUT_SEQUENCE).ok().flatten() else { return Ok(None) };
    let Some(item) = seq.items().and_then(|i| i.first()) else { return Ok(None) };
    let desc: Vec<i64> = item
        .element(tags::LUT_DESCRIPTOR)
        .map_err(|_| "VOI LUT Sequence item without LUTDescriptor".to_string())?
        .to_multi_int::<i64>()
        .map_err(|e| format!("LUTDescriptor is not numeric: {e}"))?;
    let [entries, first, bits] = desc[..] else { return Err(format!("LUTDescriptor {desc:?} must have 3 values")) };
    // PS3.3 C.11.2.1.1: 0 entries means 65536; the descriptor is US or SS (implicit VR reads it
    // as SS once PixelRepresentation is 1), and the first mapped value is signed for signed pixels.
    let entries = match entries as u16 {
        0 => 65536,
        n => n as usize,
    };
    let signed_pixels =
        obj.element_opt(tags::PIXEL_REPRESENTATION).ok().flatten().and_then(|e| e.to_int::<u16>().ok()) == Some(1);
    let first = if signed_pixels { first as u16 as i16 as i64 } else { first as u16 as i64 };
    let bits = bits as u16 as i64;
    let data_el = item.element(tags::LUT_DATA).map_err(|_| "VOI LUT Sequence item without LUTData".to_string())?;
    let data: Vec<u16> = match data_el.uint16_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => data_el
            .to_bytes()
            .map_err(|e| format!("LUTData is not readable: {e}"))?
            .chunks_exact(2)
            .map(|c| u16::from_ne_bytes([c[0], c[1]]))
            .collect(),
    };
    if data.is_empty() || !(1..=16).contains(&bits) {
        return Err(format!("VOI LUT with {} entries and {bits} bits per entry is not usable", data.len()));
    }
    let data = data.into_iter().take(entries).collect();
    Ok(Some(Lut { first: first as f64, data, max: ((1u32 << bits) - 1) as f64 }))
}

/// " (JPEG-LS Lossless)" and the like, for error messages.
fn dicom_transfer_syntax_name(uid: &str) -> String {
    use dicom_encoding::TransferSyntaxIndex;
    dicom_transfer_syntax_registry::TransferSyntaxRegistry
        .get(uid)
        .map(|t| format!(" ({})", t.name()))
        .unwrap_or_default()
}
