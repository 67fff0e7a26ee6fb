//! Segmentation mask formats of the chest X-ray datasets: binary and label-map PNGs, SIIM-ACR and
//! CheXmask run-length strings, COCO polygons and uncompressed COCO RLE, and the box of a mask.
//!
//! Every mask is a `Vec<u8>` of 0/1, row-major `height × width` (the `fx_plugin::Sample.masks`
//! convention), whatever order the file format stores its pixels in. Readers and decoders never
//! panic on bad data: they return an error that names the file (or token, count or polygon) and
//! says what was expected, so a plugin can skip-and-count the sample.
//!
//! The three run-length conventions differ in exactly the ways that silently give a transposed or
//! shifted mask, so each is written out below with the source it was checked against.

use std::path::Path;

// ---------------------------------------------------------------------------------------------
// PNG

/// Reads a binary mask PNG (8 or 16 bit, gray, gray+alpha, RGB or RGBA): a pixel is 1 when any
/// colour channel is nonzero. Alpha is ignored, because exporters often write an opaque alpha
/// everywhere and that must not turn the whole mask on. Palette PNGs are expanded to their colours
/// by the decoder, so a palette whose entry 0 is not black reads as foreground.
pub fn read_mask_png(path: &Path, width: usize, height: usize) -> Result<Vec<u8>, String> {
    let img = decode_png(path, width, height)?;
    use image::DynamicImage as D;
    let mask = match img {
        D::ImageLuma8(b) => b.into_raw().into_iter().map(|v| (v != 0) as u8).collect(),
        D::ImageLuma16(b) => b.into_raw().into_iter().map(|v| (v != 0) as u8).collect(),
        D::ImageLumaA8(b) => b.into_raw().chunks_exact(2).map(|p| (p[0] != 0) as u8).collect(),
        D::ImageLumaA16(b) => b.into_raw().chunks_exact(2).map(|p| (p[0] != 0) as u8).collect(),
        D::ImageRgba8(b) => b.into_raw().chunks_exact(4).map(|p| (p[..3] != [0, 0, 0]) as u8).collect(),
        D::ImageRgba16(b) => b.into_raw().chunks_exact(4).map(|p| (p[..3] != [0, 0, 0]) as u8).collect(),
        other => other.into_rgb16().into_raw().chunks_exact(3).map(|p| (p != [0, 0, 0]) as u8).collect(),
    };
    Ok(mask)
}

/// Reads a label-map PNG (8- or 16-bit grayscale; an alpha channel is ignored) and returns one
/// binary mask per entry of `labels`, in that order: pixel = 1 where the map equals the label.
/// A label that is absent from the image gives an empty mask; a label above 255 asked of an 8-bit
/// map is an error, since it can never occur and is almost surely a configuration mistake.
/// Colour and palette PNGs are refused: the decoder expands a palette to colours, so the stored
/// indices cannot be recovered.
pub fn read_label_png(path: &Path, width: usize, height: usize, labels: &[u16]) -> Result<Vec<Vec<u8>>, String> {
    let img = decode_png(path, width, height)?;
    use image::DynamicImage as D;
    let (values, bits): (Vec<u16>, u32) = match img {
        D::ImageLuma8(b) => (b.into_raw().into_iter().map(u16::from).collect(), 8),
        D::ImageLumaA8(b) => (b.into_raw().chunks_exact(2).map(|p| u16::from(p[0])).collect(), 8),
        D::ImageLuma16(b) => (b.into_raw(), 16),
        D::ImageLumaA16(b) => (b.into_raw().chunks_exact(2).map(|p| p[0]).collect(), 16),
        other => {
            return Err(format!(
                "{}: a label map must be an 8- or 16-bit grayscale PNG, found {:?} (a palette PNG \
                 is expanded to colours when decoded, so its indices cannot be read as labels)",
                path.display(),
                other.color()
            ))
        }
    };
    if let Some(&big) = labels.iter().find(|&&l| bits == 8 && l > 255) {
        return Err(format!(
            "{}: label {big} was asked of an 8-bit label map, whose values are 0..=255",
            path.display()
        ));
    }
    Ok(labels.iter().map(|&l| values.iter().map(|&v| (v == l) as u8).collect()).collect())
}

/// Writes a mask as an 8-bit grayscale PNG, 0 → 0 and nonzero → 255 (viewable as is; reads back
/// through [`read_mask_png`]).
pub fn write_mask_png(path: &Path, mask: &[u8], width: usize, height: usize) -> Result<(), String> {
    if mask.len() != pixel_count(width, height)? {
        return Err(format!(
            "{}: mask has {} values, expected width × height = {width} × {height}",
            path.display(),
            mask.len()
        ));
    }
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(format!("{}: {width} × {height} is too large for a PNG", path.display()));
    };
    let buf = image::GrayImage::from_raw(w, h, mask.iter().map(|&v| if v != 0 { 255 } else { 0 }).collect())
        .ok_or_else(|| format!("{}: cannot build a {width} × {height} image", path.display()))?;
    buf.save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| format!("{}: cannot write PNG: {e}", path.display()))
}

fn decode_png(path: &Path, width: usize, height: usize) -> Result<image::DynamicImage, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("{}: cannot open mask: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: cannot read mask: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: not a decodable mask image: {e}", path.display()))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if (w, h) != (width, height) {
        return Err(format!(
            "{}: mask is {w} × {h} (width × height) but its image is {width} × {height}",
            path.display()
        ));
    }
    Ok(img)
}

fn pixel_count(width: usize, height: usize) -> Result<usize, String> {
    width.checked_mul(height).ok_or_else(|| format!("mask size {width} × {height} overflows"))
}

fn parse_tokens(rle: &str, what: &str) -> Result<Vec<u64>, String> {
    rle.split_whitespace()
        .enumerate()
        .map(|(i, t)| {
            t.parse::<u64>().map_err(|_| format!("{what}: token {i} ('{}') is not a non-negative integer", clip(t)))
        })
        .collect()
}

/// Keeps error messages short when a whole corrupted line lands in one token.
fn clip(t: &str) -> String {
    if t.chars().count() > 24 {
        format!("{}…", t.chars().take(24).collect::<String>())
    } else {
        t.to_string()
    }
}

// ---------------------------------------------------------------------------------------------
// SIIM-ACR

/// Decodes a SIIM-ACR pneumothorax RLE string (Kaggle `train-rle.csv`, column ` EncodedPixels`).
///
/// Convention, as the competition's `mask_functions.py` (`rle2mask` / `mask2rle`, the sample code
/// every public solution copies) implements it:
/// - tokens are pairs `start length`; `start` is RELATIVE: the number of background pixels between
///   the end of the previous run (or pixel 0, for the first run) and this run. `rle2mask` keeps
///   `current_position += start; fill [current_position, +length); current_position += length`.
/// - pixels are counted in COLUMN-MAJOR order: `rle2mask` returns `mask.reshape(width, height)`,
///   which callers transpose (`.T`) to get the (height, width) image, and `mask2rle` walks
///   `for x in range(width): for y in range(height): img[x][y]` over the transposed image. So
///   position p is pixel (x = p / height, y = p % height). Runs may wrap from one column to the
///   next.
/// - `-1` (the CSV has ` -1`, with a space) marks an image without pneumothorax: empty mask.
///   An empty or blank string is read as empty too (`mask2rle` of an empty mask returns `" "`).
/// - An image with several pneumothoraces has several CSV rows; OR their masks.
///
/// Errors: a non-integer or negative token, an odd number of tokens, or a run past the last pixel,
/// each naming the token index (0-based).
pub fn siim_rle_decode(rle: &str, width: usize, height: usize) -> Result<Vec<u8>, String> {
    let total = pixel_count(width, height)?;
    let mut mask = vec![0u8; total];
    let trimmed = rle.trim();
    if trimmed.is_empty() || trimmed == "-1" {
        return Ok(mask);
    }
    let what = "SIIM-ACR RLE";
    let v = parse_tokens(trimmed, what)?;
    if v.len() % 2 != 0 {
        return Err(format!("{what}: {} tokens, expected 'start length' pairs (an even count)", v.len()));
    }
    let mut pos: u64 = 0;
    for (pair, sl) in v.chunks_exact(2).enumerate() {
        let start = pos.saturating_add(sl[0]);
        let end = start.saturating_add(sl[1]);
        if end > total as u64 {
            return Err(format!(
                "{what}: token {} (run of {} starting at column-major pixel {start}) ends past the last pixel of a {width} × {height} image ({total} pixels)",
                2 * pair + 1,
                sl[1]
            ));
        }
        for p in start as usize..end as usize {
            mask[(p % height) * width + p / height] = 1;
        }
        pos = end;
    }
    Ok(mask)
}

/// Encodes a mask in the SIIM-ACR convention (see [`siim_rle_decode`]); an empty mask gives `"-1"`.
/// No leading space is written (the decoder and pandas both strip it). Unlike the competition's
/// `mask2rle`, which drops a run that reaches the very last pixel, every run is written.
///
/// # Panics
/// When `mask.len() != width * height` (a caller bug, not bad data).
pub fn siim_rle_encode(mask: &[u8], width: usize, height: usize) -> String {
    assert_eq!(mask.len(), width * height, "siim_rle_encode: mask length vs {width} × {height}");
    let column_major = (0..width).flat_map(|x| (0..height).map(move |y| mask[y * width + x] != 0));
    let runs = runs_of_ones(column_major);
    if runs.is_empty() {
        return "-1".to_string();
    }
    let mut out = Vec::with_capacity(runs.len() * 2);
    let mut prev_end = 0;
    for (start, len) in runs {
        out.push((start - prev_end).to_string());
        out.push(len.to_string());
        prev_end = start + len;
    }
    out.join(" ")
}

/// (start, length) of every maximal run of `true`, absolute 0-based positions.
fn runs_of_ones(pixels: impl Iterator<Item = bool>) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut open: Option<usize> = None;
    let mut n = 0;
    for (i, on) in pixels.enumerate() {
        match (on, open) {
            (true, None) => open = Some(i),
            (false, Some(s)) => {
                runs.push((s, i - s));
                open = None;
            }
            _ => {}
        }
        n = i + 1;
    }
    if let Some(s) = open {
        runs.push((s, n - s));
    }
    runs
}

// ---------------------------------------------------------------------------------------------
// CheXmask

/// Decodes a CheXmask RLE string (PhysioNet CheXmask CSVs: `Left Lung`, `Right Lung`, `Heart`).
///
/// Convention, as the dataset's own helpers (github.com/ngaggion/CheXmask-Database,
/// `DataPostprocessing/utils.py`) implement it:
/// - tokens are pairs `start length` with ABSOLUTE, 1-BASED starts: `get_mask_from_RLE` does
///   `start -= 1` before filling `[start, start + length)`, and `get_RLE_from_mask` pads the
///   flattened mask with one 0 on each side, so the change positions it writes are 1-based.
/// - pixels are counted ROW-MAJOR: `mask.flatten()` of a (height, width) array, and the decoder
///   reshapes to `(height, width)`.
/// - an empty mask encodes as the empty string.
///
/// Runs may come in any order and may overlap (their decoder ORs them; so does this one). A start
/// of 0 (impossible when 1-based), a non-integer, an odd count or a run past the last pixel is an
/// error naming the token index (0-based). Note that CheXmask's masks are at the resolution given
/// by the CSV's `Height`/`Width` columns (or 1024 × 1024 for the preprocessed files), which may
/// differ from the image file's size.
pub fn chexmask_rle_decode(rle: &str, width: usize, height: usize) -> Result<Vec<u8>, String> {
    let total = pixel_count(width, height)?;
    let mut mask = vec![0u8; total];
    let what = "CheXmask RLE";
    let v = parse_tokens(rle, what)?;
    if v.len() % 2 != 0 {
        return Err(format!("{what}: {} tokens, expected 'start length' pairs (an even count)", v.len()));
    }
    for (pair, sl) in v.chunks_exact(2).enumerate() {
        if sl[0] == 0 {
            return Err(format!("{what}: token {} is start 0, but starts are 1-based", 2 * pair));
        }
        let start = sl[0] - 1;
        let end = start.saturating_add(sl[1]);
        if end > total as u64 {
            return Err(format!(
                "{what}: token {} (run of {} starting at 1-based pixel {}) ends past the last pixel of a {width} × {height} image ({total} pixels)",
                2 * pair + 1,
                sl[1],
                sl[0]
            ));
        }
        mask[start as usize..end as usize].fill(1);
    }
    Ok(mask)
}

/// Encodes a mask in the CheXmask convention (see [`chexmask_rle_decode`]); empty mask → `""`.
///
/// # Panics
/// When `mask.len() != width * height` (a caller bug, not bad data).
pub fn chexmask_rle_encode(mask: &[u8], width: usize, height: usize) -> String {
    assert_eq!(mask.len(), width * height, "chexmask_rle_encode: mask length vs {width} × {height}");
    runs_of_ones(mask.iter().map(|&v| v != 0))
        .into_iter()
        .map(|(s, l)| format!("{} {l}", s + 1))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// COCO

/// Rasterises COCO polygons (the `segmentation` list of an annotation: each polygon a flat
/// `[x0, y0, x1, y1, …]` in pixel coordinates, pixel (x, y) covering [x, x+1) × [y, y+1)).
/// A pixel is inside when its centre (x + 0.5, y + 0.5) is inside a polygon by the even-odd
/// rule, with half-open edges (a centre exactly on a left or top edge is in, on a right or bottom
/// edge is out), so abutting polygons never share or miss a pixel. The result is the union over
/// the polygons. This is exact geometry, not pycocotools' `frPoly` (which upsamples ×5 and rounds
/// the vertices), so boundary pixels can differ from masks made with pycocotools by about one pixel.
///
/// Errors (naming the polygon index): an odd number of coordinates, fewer than 3 points, or a
/// non-finite coordinate.
pub fn rasterize_polygons(polys: &[Vec<f32>], width: usize, height: usize) -> Result<Vec<u8>, String> {
    let mut mask = vec![0u8; pixel_count(width, height)?];
    for (pi, poly) in polys.iter().enumerate() {
        if poly.len() % 2 != 0 {
            return Err(format!("COCO polygon {pi}: {} coordinates, expected x,y pairs (an even count)", poly.len()));
        }
        if poly.len() < 6 {
            return Err(format!("COCO polygon {pi}: {} points, expected at least 3", poly.len() / 2));
        }
        if let Some(i) = poly.iter().position(|v| !v.is_finite()) {
            return Err(format!("COCO polygon {pi}: coordinate {i} is {}, expected a finite number", poly[i]));
        }
        let pts: Vec<(f64, f64)> = poly.chunks_exact(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
        let mut xs: Vec<f64> = Vec::new();
        for y in 0..height {
            let cy = y as f64 + 0.5;
            xs.clear();
            for (i, &(x0, y0)) in pts.iter().enumerate() {
                let (x1, y1) = pts[(i + 1) % pts.len()];
                // Half-open in y: a vertex on the scanline counts once, horizontal edges never.
                if (y0 <= cy) != (y1 <= cy) {
                    xs.push(x0 + (cy - y0) * (x1 - x0) / (y1 - y0));
                }
            }
            xs.sort_by(f64::total_cmp);
            let row = &mut mask[y * width..(y + 1) * width];
            for span in xs.chunks_exact(2) {
                // Centres c = x + 0.5 with span[0] <= c < span[1].
                let lo = (span[0] - 0.5).ceil().clamp(0.0, width as f64) as usize;
                let hi = (span[1] - 0.5).ceil().clamp(0.0, width as f64) as usize;
                if lo < hi {
                    row[lo..hi].fill(1);
                }
            }
        }
    }
    Ok(mask)
}

/// Decodes an uncompressed COCO RLE (`{"size": [h, w], "counts": [...]}` with a list of counts):
/// pixels in COLUMN-MAJOR (Fortran) order, counts alternate 0-runs and 1-runs starting with a
/// 0-run (possibly of length 0), as pycocotools' `rleDecode` (maskApi.c) reads them. The counts
/// must cover exactly width × height pixels: pycocotools always writes them so, and a different sum
/// means the size is wrong. (The compressed string form of `counts` is not handled here.)
pub fn coco_rle_decode(counts: &[u32], width: usize, height: usize) -> Result<Vec<u8>, String> {
    let total = pixel_count(width, height)?;
    let mut mask = vec![0u8; total];
    let mut pos: u64 = 0;
    for (i, &c) in counts.iter().enumerate() {
        let end = pos + c as u64;
        if end > total as u64 {
            return Err(format!(
                "COCO RLE: count {i} ({c}) reaches pixel {end}, past the {total} pixels of a {width} × {height} mask"
            ));
        }
        if i % 2 == 1 {
            for p in pos as usize..end as usize {
                mask[(p % height) * width + p / height] = 1;
            }
        }
        pos = end;
    }
    if pos != total as u64 {
        return Err(format!("COCO RLE: counts sum to {pos}, expected width × height = {width} × {height} = {total}"));
    }
    Ok(mask)
}

/// Encodes a mask as uncompressed COCO RLE counts (see [`coco_rle_decode`]).
///
/// # Panics
/// When `mask.len() != width * height` (a caller bug, not bad data).
pub fn coco_rle_encode(mask: &[u8], width: usize, height: usize) -> Vec<u32> {
    assert_eq!(mask.len(), width * height, "coco_rle_encode: mask length vs {width} × {height}");
    let mut counts = Vec::new();
    let mut value = false;
    let mut run = 0u32;
    for x in 0..width {
        for y in 0..height {
            let on = mask[y * width + x] != 0;
            if on != value {
                counts.push(run);
                run = 0;
                value = on;
            }
            run += 1;
        }
    }
    counts.push(run);
    counts
}

// ---------------------------------------------------------------------------------------------
// Boxes

/// The tight box `[x0, y0, x1, y1]` of a mask's nonzero pixels in pixel coordinates, x1 and y1
/// exclusive (a single pixel (3, 5) gives [3, 5, 4, 6]): how the paper derives localization boxes
/// from the masks of CANDID-PTX, SIIM-ACR and CheXmask. `None` for an empty mask. Pixels beyond
/// `width × height` are ignored.
pub fn mask_to_box(mask: &[u8], width: usize, height: usize) -> Option<[f32; 4]> {
    if width == 0 || height == 0 {
        return None;
    }
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in mask.chunks(width).take(height).enumerate() {
        let Some(first) = row.iter().position(|&v| v != 0) else { continue };
        let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
        x0 = x0.min(first);
        x1 = x1.max(last + 1);
        y0 = y0.min(y);
        y1 = y + 1;
    }
    (x0 != usize::MAX).then_some([x0 as f32, y0 as f32, x1 as f32, y1 as f32])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn tmp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("fx-masks-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Masks that exercise run boundaries: empty, full, single pixels at the corners, the first and
    /// last column/row, and random blobs of several densities.
    fn test_masks(rng: &mut Rng) -> Vec<(usize, usize, Vec<u8>)> {
        let mut out = Vec::new();
        for &(w, h) in &[(1, 1), (1, 7), (7, 1), (5, 3), (3, 5), (16, 16), (13, 9)] {
            let n = w * h;
            out.push((w, h, vec![0; n]));
            out.push((w, h, vec![1; n]));
            for p in [0, n - 1, w - 1, n - w, n / 2] {
                let mut m = vec![0; n];
                m[p] = 1;
                out.push((w, h, m));
                let mut m = vec![1; n];
                m[p] = 0;
                out.push((w, h, m));
            }
            let mut first_col = vec![0; n];
            let mut last_row = vec![0; n];
            for y in 0..h {
                first_col[y * w] = 1;
            }
            for x in 0..w {
                last_row[(h - 1) * w + x] = 1;
            }
            out.push((w, h, first_col));
            out.push((w, h, last_row));
            for density in [0.05, 0.3, 0.5, 0.9] {
                for _ in 0..5 {
                    out.push((w, h, (0..n).map(|_| rng.bernoulli(density) as u8).collect()));
                }
            }
        }
        out
    }

    #[test]
    fn siim_round_trip() {
        let mut rng = Rng::new(11);
        for (w, h, m) in test_masks(&mut rng) {
            let s = siim_rle_encode(&m, w, h);
            assert_eq!(siim_rle_decode(&s, w, h).unwrap(), m, "{w}×{h} '{s}'");
        }
    }

    #[test]
    fn chexmask_round_trip() {
        let mut rng = Rng::new(12);
        for (w, h, m) in test_masks(&mut rng) {
            let s = chexmask_rle_encode(&m, w, h);
            assert_eq!(chexmask_rle_decode(&s, w, h).unwrap(), m, "{w}×{h} '{s}'");
        }
    }

    #[test]
    fn coco_rle_round_trip() {
        let mut rng = Rng::new(13);
        for (w, h, m) in test_masks(&mut rng) {
            let c = coco_rle_encode(&m, w, h);
            assert_eq!(coco_rle_decode(&c, w, h).unwrap(), m, "{w}×{h} {c:?}");
        }
    }

    // 4 wide × 3 high. Row-major indices:  0  1  2  3 / 4  5  6  7 / 8  9 10 11
    // Column-major positions:               0  3  6  9 / 1  4  7 10 / 2  5  8 11
    #[rustfmt::skip]
    const M: [u8; 12] = [
        0, 1, 1, 0,
        0, 1, 0, 0,
        1, 1, 0, 1,
    ];

    #[test]
    fn siim_hand_example() {
        // Column-major stream: col0 = 0 0 1, col1 = 1 1 1, col2 = 1 0 0, col3 = 0 0 1
        // → ones at 2..7 (run of 5 across the column break) and at 11.
        assert_eq!(siim_rle_encode(&M, 4, 3), "2 5 4 1");
        assert_eq!(siim_rle_decode("2 5 4 1", 4, 3).unwrap(), M);
        assert_eq!(siim_rle_decode(" 2 5 4 1 ", 4, 3).unwrap(), M);
        // Relative starts: "0 1 0 1" is two adjacent pixels 0 and 1 (x = 0, y = 0 and 1).
        let m = siim_rle_decode("0 1 0 1", 4, 3).unwrap();
        assert_eq!(m, [1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        for empty in ["-1", " -1", "", "  "] {
            assert_eq!(siim_rle_decode(empty, 4, 3).unwrap(), vec![0; 12], "'{empty}'");
        }
        assert_eq!(siim_rle_encode(&[0; 12], 4, 3), "-1");
        // The run reaching the last pixel is kept (the competition's mask2rle drops it).
        assert_eq!(siim_rle_encode(&[0, 0, 0, 1], 2, 2), "3 1");
    }

    #[test]
    fn chexmask_hand_example() {
        // Row-major ones at 1, 2, 5, 8, 9, 11 → 1-based starts 2, 6, 9, 12.
        assert_eq!(chexmask_rle_encode(&M, 4, 3), "2 2 6 1 9 2 12 1");
        assert_eq!(chexmask_rle_decode("2 2 6 1 9 2 12 1", 4, 3).unwrap(), M);
        assert_eq!(chexmask_rle_decode("1 1", 4, 3).unwrap()[0], 1);
        assert_eq!(chexmask_rle_decode("12 1", 4, 3).unwrap()[11], 1);
        // Overlapping and unordered runs are ORed, as numpy slicing in their decoder does.
        assert_eq!(chexmask_rle_decode("9 2 2 2 6 1 12 1 2 1", 4, 3).unwrap(), M);
        assert_eq!(chexmask_rle_decode("", 4, 3).unwrap(), vec![0; 12]);
        assert_eq!(chexmask_rle_encode(&[0; 12], 4, 3), "");
    }

    #[test]
    fn coco_rle_hand_example() {
        // Column-major stream 0 0 1 | 1 1 1 | 1 0 0 | 0 0 1.
        assert_eq!(coco_rle_encode(&M, 4, 3), vec![2, 5, 4, 1]);
        assert_eq!(coco_rle_decode(&[2, 5, 4, 1], 4, 3).unwrap(), M);
        // A leading 1 needs a zero-length 0-run.
        assert_eq!(coco_rle_encode(&[1, 0], 2, 1), vec![0, 1, 1]);
        assert_eq!(coco_rle_decode(&[0, 1, 1], 2, 1).unwrap(), [1, 0]);
        let e = coco_rle_decode(&[2, 5, 4], 4, 3).unwrap_err();
        assert!(e.contains("sum to 11") && e.contains("12"), "{e}");
        let e = coco_rle_decode(&[2, 5, 4, 1, 1], 4, 3).unwrap_err();
        assert!(e.contains("count 4"), "{e}");
        assert!(coco_rle_decode(&[u32::MAX, u32::MAX, u32::MAX], 4, 3).is_err());
    }

    #[test]
    fn rle_error_messages_name_the_token() {
        let e = siim_rle_decode("2 5 4", 4, 3).unwrap_err();
        assert!(e.contains("3 tokens") && e.contains("even"), "{e}");
        let e = siim_rle_decode("2 5 x 1", 4, 3).unwrap_err();
        assert!(e.contains("token 2") && e.contains("'x'"), "{e}");
        let e = siim_rle_decode("2 5 4 2", 4, 3).unwrap_err();
        assert!(e.contains("token 3") && e.contains("past the last pixel"), "{e}");
        let e = siim_rle_decode("2 -5", 4, 3).unwrap_err();
        assert!(e.contains("token 1"), "{e}");
        let e = chexmask_rle_decode("0 3", 4, 3).unwrap_err();
        assert!(e.contains("token 0") && e.contains("1-based"), "{e}");
        let e = chexmask_rle_decode("2 2 12 2", 4, 3).unwrap_err();
        assert!(e.contains("token 3") && e.contains("past the last pixel"), "{e}");
        let e = chexmask_rle_decode("2 2 6", 4, 3).unwrap_err();
        assert!(e.contains("3 tokens"), "{e}");
    }

    /// Mutations of valid strings must give an error or a valid 0/1 mask of the right size, never
    /// a panic (a corrupted CSV cell must not take the loader down).
    #[test]
    fn malformed_rle_never_panics() {
        let base = ["2 5 4 1", "2 2 6 1 9 2 12 1", "-1", "0 12"];
        let mut inputs: Vec<String> = vec![
            "",
            " ",
            "-1",
            " -1",
            "-1 -1",
            "-",
            "--1",
            "1",
            "1 ",
            "1 2 3",
            "a b",
            "1 b",
            "1.5 2",
            "1e3 1",
            "0x1 1",
            "+1 1",
            "1 +1",
            "-0 1",
            "2 -1",
            "18446744073709551615 1",
            "1 18446744073709551615",
            "18446744073709551615 18446744073709551615",
            "99999999999999999999999 1",
            "0 0",
            "12 0",
            "13 0",
            "0 13",
            "1 12",
            "1,2",
            "1\t2",
            "1\n2",
            "２ ５",
            "🙂 1",
            "\u{0} 1",
            "NaN 1",
            "inf 1",
            "-1 1",
            "0 1 0 1 0 1 0 1 0 1 0 1",
            "0 1 0 1 0 1 0 1 0 1 0 1 0 1",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        for b in base {
            for cut in 0..b.len() {
                inputs.push(b[..cut].to_string());
            }
            inputs.push(format!("{b} 7"));
            inputs.push(b.replace(' ', "-"));
            inputs.push(b.replace('1', "99999999999"));
        }
        assert!(inputs.len() >= 50, "{}", inputs.len());
        for s in &inputs {
            for (w, h) in [(4, 3), (1, 1), (0, 0)] {
                for m in [siim_rle_decode(s, w, h), chexmask_rle_decode(s, w, h)].into_iter().flatten() {
                    assert_eq!(m.len(), w * h, "'{s}'");
                    assert!(m.iter().all(|&v| v <= 1), "'{s}'");
                }
            }
        }
        assert!(siim_rle_decode("0 1", usize::MAX, 2).is_err());
    }

    #[test]
    fn png_8_and_16_bit_binary_and_label_maps() {
        let dir = tmp_dir("png");
        let (w, h) = (5usize, 3usize);
        let p8 = dir.join("m8.png");
        image::GrayImage::from_fn(w as u32, h as u32, |x, y| image::Luma([if (x + y) % 2 == 0 { 1 } else { 0 }]))
            .save(&p8)
            .unwrap();
        let m = read_mask_png(&p8, w, h).unwrap();
        let want: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| ((x + y) % 2 == 0) as u8)).collect();
        assert_eq!(m, want);

        let p16 = dir.join("m16.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([if (x + y) % 2 == 0 { 40000 } else { 0 }])
        })
        .save(&p16)
        .unwrap();
        assert_eq!(read_mask_png(&p16, w, h).unwrap(), want);

        // Opaque alpha everywhere must not switch the background on.
        let prgba = dir.join("rgba.png");
        image::RgbaImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgba(if (x + y) % 2 == 0 { [0, 0, 200, 255] } else { [0, 0, 0, 255] })
        })
        .save(&prgba)
        .unwrap();
        assert_eq!(read_mask_png(&prgba, w, h).unwrap(), want);
        let prgb = dir.join("rgb.png");
        image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            image::Rgb(if (x + y) % 2 == 0 { [9, 0, 0] } else { [0, 0, 0] })
        })
        .save(&prgb)
        .unwrap();
        assert_eq!(read_mask_png(&prgb, w, h).unwrap(), want);

        // Label maps: 16-bit with values above 255, and 8-bit.
        let pl16 = dir.join("l16.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(w as u32, h as u32, |x, _| {
            image::Luma([[0, 1, 300, 300, 1][x as usize]])
        })
        .save(&pl16)
        .unwrap();
        let ms = read_label_png(&pl16, w, h, &[300, 1, 7]).unwrap();
        assert_eq!(ms.len(), 3);
        assert_eq!(ms[0], (0..h).flat_map(|_| [0, 0, 1, 1, 0]).collect::<Vec<u8>>());
        assert_eq!(ms[1], (0..h).flat_map(|_| [0, 1, 0, 0, 1]).collect::<Vec<u8>>());
        assert_eq!(ms[2], vec![0; w * h]);
        let pl8 = dir.join("l8.png");
        image::GrayImage::from_fn(w as u32, h as u32, |_, y| image::Luma([y as u8 * 2])).save(&pl8).unwrap();
        let ms = read_label_png(&pl8, w, h, &[2]).unwrap();
        assert_eq!(ms[0], [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
        let e = read_label_png(&pl8, w, h, &[256]).unwrap_err();
        assert!(e.contains("l8.png") && e.contains("256") && e.contains("8-bit"), "{e}");
        let e = read_label_png(&prgb, w, h, &[1]).unwrap_err();
        assert!(e.contains("rgb.png") && e.contains("grayscale"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn png_size_mismatch_and_garbage_are_named_errors() {
        let dir = tmp_dir("bad");
        let p = dir.join("mask.png");
        image::GrayImage::new(5, 3).save(&p).unwrap();
        let e = read_mask_png(&p, 3, 5).unwrap_err();
        assert!(e.contains("mask.png") && e.contains("5 × 3") && e.contains("3 × 5"), "{e}");
        let e = read_label_png(&p, 6, 3, &[1]).unwrap_err();
        assert!(e.contains("mask.png") && e.contains("5 × 3") && e.contains("6 × 3"), "{e}");
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\ntruncated").unwrap();
        let e = read_mask_png(&bad, 5, 3).unwrap_err();
        assert!(e.contains("bad.png") && e.contains("not a decodable"), "{e}");
        let e = read_mask_png(&dir.join("missing.png"), 5, 3).unwrap_err();
        assert!(e.contains("missing.png"), "{e}");
        let e = write_mask_png(&dir.join("out.png"), &[1, 0], 5, 3).unwrap_err();
        assert!(e.contains("out.png") && e.contains("2 values"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn png_write_read_round_trip() {
        let dir = tmp_dir("rt");
        let mut rng = Rng::new(14);
        for (i, (w, h, m)) in test_masks(&mut rng).into_iter().enumerate().step_by(7) {
            let p = dir.join(format!("{i}.png"));
            write_mask_png(&p, &m, w, h).unwrap();
            assert_eq!(read_mask_png(&p, w, h).unwrap(), m);
            let raw = image::open(&p).unwrap().into_luma8().into_raw();
            assert!(raw.iter().all(|&v| v == 0 || v == 255));
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn polygon_rectangle_and_triangle_pixel_counts() {
        // Axis-aligned rectangle x ∈ [1, 5), y ∈ [2, 4): exactly 4 × 2 pixels.
        let rect = vec![1.0, 2.0, 5.0, 2.0, 5.0, 4.0, 1.0, 4.0];
        let m = rasterize_polygons(std::slice::from_ref(&rect), 8, 6).unwrap();
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 8);
        assert_eq!(mask_to_box(&m, 8, 6), Some([1.0, 2.0, 5.0, 4.0]));
        // Either winding gives the same pixels.
        let rev: Vec<f32> = rect.chunks(2).rev().flatten().copied().collect();
        assert_eq!(rasterize_polygons(&[rev], 8, 6).unwrap(), m);
        // Centres exactly on the edges: left/top in, right/bottom out → x ∈ {0.5, 1.5}, y ∈ {0.5}.
        let m = rasterize_polygons(&[vec![0.5, 0.5, 2.5, 0.5, 2.5, 1.5, 0.5, 1.5]], 4, 4).unwrap();
        assert_eq!(m, [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // Right triangle (0,0), (8,0), (0,8): row y has centres x + 0.5 < 8 − (y + 0.5), i.e. x < 7 − y
        // → 7 + 6 + … + 1 + 0 = 28 pixels.
        let tri = vec![0.0, 0.0, 8.0, 0.0, 0.0, 8.0];
        let m = rasterize_polygons(&[tri], 8, 8).unwrap();
        for y in 0..8 {
            let row: usize = m[y * 8..(y + 1) * 8].iter().map(|&v| v as usize).sum();
            assert_eq!(row, 7 - y, "row {y}");
        }
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 28);
        // Isosceles triangle (0,0), (10,0), (5,10): row y keeps centres in [cy/2, 10 − cy/2) with
        // cy = y + 0.5, e.g. row 1 = [0.75, 9.25) → centres 1.5..8.5 = 8 pixels; row 9 = [4.75, 5.25)
        // holds no centre. Counted by hand: 10 8 8 6 6 4 4 2 2 0 = 50.
        let m = rasterize_polygons(&[vec![0.0, 0.0, 10.0, 0.0, 5.0, 10.0]], 10, 10).unwrap();
        let rows: Vec<usize> = (0..10).map(|y| m[y * 10..(y + 1) * 10].iter().map(|&v| v as usize).sum()).collect();
        assert_eq!(rows, [10, 8, 8, 6, 6, 4, 4, 2, 2, 0]);
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 50);
        // The rows are symmetric about x = 5: row 1 is x = 1..=8.
        assert_eq!(&m[10..20], &[0, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
    }

    #[test]
    fn polygons_union_clip_and_reject_malformed() {
        // Two overlapping squares: union, not XOR.
        let a = vec![0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0];
        let b = vec![2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0];
        let m = rasterize_polygons(&[a, b], 8, 8).unwrap();
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 16 + 16 - 4);
        // Even-odd inside one polygon: an outer square and an inner square traced in the SAME
        // direction, joined by a bridge, leave a hole (the nonzero rule would fill it).
        let ring =
            vec![0.0, 0.0, 6.0, 0.0, 6.0, 6.0, 0.0, 6.0, 0.0, 0.0, 2.0, 2.0, 4.0, 2.0, 4.0, 4.0, 2.0, 4.0, 2.0, 2.0];
        let m = rasterize_polygons(&[ring], 6, 6).unwrap();
        assert_eq!(m.iter().filter(|&&v| v == 1).count(), 36 - 4);
        assert_eq!((m[2 * 6 + 2], m[3 * 6 + 3], m[2 * 6 + 1], m[0]), (0, 0, 1, 1));
        // A self-intersecting bow-tie: two lobes, each pixel decided by its centre and the
        // half-open spans [left, right): a centre exactly on a crossing belongs to the span it opens.
        let bow = vec![0.0, 0.0, 4.0, 4.0, 4.0, 0.0, 0.0, 4.0];
        let m = rasterize_polygons(&[bow], 4, 4).unwrap();
        #[rustfmt::skip]
        assert_eq!(m, [
            0, 0, 0, 1,
            1, 0, 1, 1,
            1, 0, 1, 1,
            0, 0, 0, 1,
        ]);
        // Outside and huge coordinates clip to the image.
        let m = rasterize_polygons(&[vec![-100.0, -100.0, 1e30, -100.0, 1e30, 1e30, -100.0, 1e30]], 3, 2).unwrap();
        assert_eq!(m, vec![1; 6]);
        let m = rasterize_polygons(&[vec![10.0, 10.0, 20.0, 10.0, 20.0, 20.0]], 3, 2).unwrap();
        assert_eq!(m, vec![0; 6]);
        // Degenerate (zero-area) polygons give nothing.
        let m = rasterize_polygons(&[vec![0.0, 0.0, 3.0, 3.0, 0.0, 0.0]], 3, 3).unwrap();
        assert_eq!(m, vec![0; 9]);
        assert_eq!(rasterize_polygons(&[], 3, 3).unwrap(), vec![0; 9]);
        let e = rasterize_polygons(&[vec![0.0; 6], vec![0.0; 7]], 3, 3).unwrap_err();
        assert!(e.contains("polygon 1") && e.contains("7 coordinates"), "{e}");
        let e = rasterize_polygons(&[vec![0.0; 4]], 3, 3).unwrap_err();
        assert!(e.contains("2 points"), "{e}");
        let e = rasterize_polygons(&[vec![0.0, 0.0, f32::NAN, 1.0, 1.0, 1.0]], 3, 3).unwrap_err();
        assert!(e.contains("coordinate 2") && e.contains("NaN"), "{e}");
        assert!(rasterize_polygons(&[vec![0.0, 0.0, f32::INFINITY, 1.0, 1.0, 1.0]], 3, 3).is_err());
        assert!(rasterize_polygons(&[vec![0.0; 6]], 0, 0).unwrap().is_empty());
    }

    #[test]
    fn boxes_from_masks() {
        assert_eq!(mask_to_box(&M, 4, 3), Some([0.0, 0.0, 4.0, 3.0]));
        let mut m = vec![0u8; 8 * 6];
        assert_eq!(mask_to_box(&m, 8, 6), None);
        m[5 * 8 + 3] = 1;
        assert_eq!(mask_to_box(&m, 8, 6), Some([3.0, 5.0, 4.0, 6.0]));
        m[2 * 8 + 6] = 1;
        m[3 * 8 + 1] = 1;
        assert_eq!(mask_to_box(&m, 8, 6), Some([1.0, 2.0, 7.0, 6.0]));
        assert_eq!(mask_to_box(&[], 0, 0), None);
        assert_eq!(mask_to_box(&[1, 1], 4, 3), Some([0.0, 0.0, 2.0, 1.0]));
    }
}
