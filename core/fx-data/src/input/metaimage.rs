//! MetaImage (ITK's MetaIO): a text header of `Key = Value` lines ending with `ElementDataFile`,
//! then the data — in the same file (`ElementDataFile = LOCAL`, the `.mha` form) or in a file
//! beside the header (`.mhd` + `.raw`). NODE21 ships its radiographs this way. 2-D images (or 3-D
//! with one slice), one channel, MET_UCHAR/CHAR/USHORT/SHORT/UINT/INT/FLOAT/DOUBLE, optionally
//! zlib-compressed (`CompressedData = True`).

use super::{minmax, percentile, Gray, Window};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The longest header fx accepts: MetaIO headers are a few hundred bytes.
const MAX_HEADER: usize = 64 * 1024;

struct Header {
    fields: HashMap<String, String>,
    /// Where the data starts in the header's own file (for LOCAL).
    data_offset: usize,
}

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    let mut fields = HashMap::new();
    let mut pos = 0;
    while pos < bytes.len().min(MAX_HEADER) {
        let end = bytes[pos..].iter().position(|&b| b == b'\n').map(|i| pos + i).unwrap_or(bytes.len());
        let line = std::str::from_utf8(&bytes[pos..end])
            .map_err(|_| format!("MetaImage header: line at byte {pos} is not text"))?;
        let line = line.trim_end_matches('\r').trim();
        pos = end + 1;
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| format!("MetaImage header: `{line}` is not `Key = Value`"))?;
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        let last = k == "ElementDataFile";
        fields.insert(k, v);
        if last {
            return Ok(Header { fields, data_offset: pos.min(bytes.len()) });
        }
    }
    Err("not a MetaImage: no `ElementDataFile` line ends the header".into())
}

impl Header {
    fn get(&self, k: &str) -> Option<&str> {
        self.fields.get(k).map(|s| s.as_str())
    }

    fn truthy(&self, k: &str) -> bool {
        self.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
    }

    fn dims(&self) -> Result<(usize, usize), String> {
        let ndims: usize =
            self.get("NDims").ok_or("MetaImage header has no NDims")?.parse().map_err(|_| "NDims is not a number")?;
        let sizes: Vec<usize> = self
            .get("DimSize")
            .ok_or("MetaImage header has no DimSize")?
            .split_whitespace()
            .map(|s| s.parse::<usize>().map_err(|_| format!("DimSize value `{s}` is not a number")))
            .collect::<Result<_, _>>()?;
        if sizes.len() != ndims {
            return Err(format!("DimSize has {} values but NDims = {ndims}", sizes.len()));
        }
        match sizes.as_slice() {
            [w, h] | [w, h, 1] if *w > 0 && *h > 0 && *w <= 65536 && *h <= 65536 => Ok((*w, *h)),
            _ => {
                Err(format!("DimSize {sizes:?}: fx reads 2-D images (or 3-D with one slice) up to 65536 pixels a side"))
            }
        }
    }
}

/// The data file of an `.mhd` header: a plain file beside the header (no absolute path, no `..`,
/// no device or pipe), as MetaIO writes it.
pub fn data_file(header: &Path, file: &str) -> Result<std::path::PathBuf, String> {
    if file.starts_with("LIST") || file.contains('%') {
        return Err(format!("ElementDataFile = {file}: file lists and patterns are not read; one data file per image"));
    }
    let rel = Path::new(file);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("ElementDataFile = {file}: must name a file beside the header"));
    }
    let data = header.parent().unwrap_or(Path::new(".")).join(rel);
    if !data.is_file() {
        return Err(format!("its ElementDataFile {} is not a regular file", data.display()));
    }
    Ok(data)
}

/// The separate data file an `.mhd` header names (None for `.mha` and LOCAL data).
pub fn separate_data_file(path: &Path) -> Option<std::path::PathBuf> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut head = Vec::new();
    f.by_ref().take(MAX_HEADER as u64).read_to_end(&mut head).ok()?;
    let h = parse_header(&head).ok()?;
    let file = h.get("ElementDataFile")?;
    if file.eq_ignore_ascii_case("LOCAL") {
        return None;
    }
    data_file(path, file).ok()
}

pub fn dimensions(path: &Path) -> Result<(usize, usize), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let mut head = Vec::new();
    f.by_ref().take(MAX_HEADER as u64).read_to_end(&mut head).map_err(|e| format!("cannot read: {e}"))?;
    parse_header(&head)?.dims()
}

pub fn decode(path: &Path, window: Window) -> Result<Gray, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot open: {e}"))?;
    let h = parse_header(&bytes)?;
    let (w, hh) = h.dims()?;
    let channels: usize = h
        .get("ElementNumberOfChannels")
        .unwrap_or("1")
        .parse()
        .map_err(|_| "ElementNumberOfChannels is not a number")?;
    if channels != 1 {
        return Err(format!("ElementNumberOfChannels = {channels}: fx reads single-channel images"));
    }
    let etype = h.get("ElementType").ok_or("MetaImage header has no ElementType")?;
    let (size, read): (usize, fn(&[u8], bool) -> f32) = match etype {
        "MET_UCHAR" => (1, |b, _| b[0] as f32),
        "MET_CHAR" => (1, |b, _| b[0] as i8 as f32),
        "MET_USHORT" => {
            (2, |b, be| if be { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) } as f32)
        }
        "MET_SHORT" => {
            (2, |b, be| if be { i16::from_be_bytes([b[0], b[1]]) } else { i16::from_le_bytes([b[0], b[1]]) } as f32)
        }
        "MET_UINT" => (4, |b, be| {
            let a = [b[0], b[1], b[2], b[3]];
            (if be { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) }) as f32
        }),
        "MET_INT" => (4, |b, be| {
            let a = [b[0], b[1], b[2], b[3]];
            (if be { i32::from_be_bytes(a) } else { i32::from_le_bytes(a) }) as f32
        }),
        "MET_FLOAT" => (4, |b, be| {
            let a = [b[0], b[1], b[2], b[3]];
            if be {
                f32::from_be_bytes(a)
            } else {
                f32::from_le_bytes(a)
            }
        }),
        "MET_DOUBLE" => (8, |b, be| {
            let a = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
            (if be { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) }) as f32
        }),
        other => {
            return Err(format!(
                "ElementType {other} is not one fx reads (MET_UCHAR/CHAR/USHORT/SHORT/UINT/INT/FLOAT/DOUBLE)"
            ))
        }
    };
    let big_endian = h.truthy("BinaryDataByteOrderMSB") || h.truthy("ElementByteOrderMSB");
    let file = h.get("ElementDataFile").unwrap_or("LOCAL");
    let stored: Vec<u8> = if file.eq_ignore_ascii_case("LOCAL") {
        bytes[h.data_offset..].to_vec()
    } else {
        let data = data_file(path, file)?;
        // At most what the image can use (the compressed size when compressed).
        let limit = if h.truthy("CompressedData") {
            h.get("CompressedDataSize").and_then(|v| v.parse::<u64>().ok()).unwrap_or(1 << 31)
        } else {
            (w * hh * size) as u64
        };
        let mut out = Vec::new();
        std::fs::File::open(&data)
            .and_then(|f| f.take(limit).read_to_end(&mut out))
            .map_err(|e| format!("its ElementDataFile {}: {e}", data.display()))?;
        out
    };
    let want = w * hh * size;
    let data = if h.truthy("CompressedData") {
        // No allocation from the header's word: the stream itself must deliver the bytes.
        let mut out = Vec::new();
        // Bounded: a hostile stream cannot inflate past the declared image.
        flate2::read::ZlibDecoder::new(stored.as_slice())
            .take(want as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("CompressedData: the zlib stream is damaged or truncated: {e}"))?;
        out
    } else {
        stored
    };
    if data.len() < want {
        return Err(format!("truncated MetaImage data: {} bytes, but {w}×{hh} {etype} needs {want}", data.len()));
    }
    let mut pixels: Vec<f32> = data[..want].chunks_exact(size).map(|c| read(c, big_endian)).collect();
    if pixels.iter().any(|v| !v.is_finite()) {
        return Err("the image holds NaN or infinite values".into());
    }
    match window {
        Window::Percentile => percentile(&mut pixels),
        Window::Full if size == 1 => pixels.iter_mut().for_each(|v| *v = (*v / 255.0).clamp(0.0, 1.0)),
        Window::Full if etype == "MET_USHORT" => pixels.iter_mut().for_each(|v| *v /= 65535.0),
        _ => minmax(&mut pixels),
    }
    Ok(Gray { width: w, height: hh, pixels, warnings: Vec::new() })
}
