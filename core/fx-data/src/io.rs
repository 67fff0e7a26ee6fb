//! Image decoding for file datasets and feature extraction: any PNG/JPEG (8 or 16 bit, gray or
//! colour) becomes a grayscale image in [0, 1].

use std::path::Path;

/// A decoded grayscale image, row-major.
pub struct Gray {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<f32>,
}

/// Decodes an image file. Errors name the file and say what is wrong with it.
pub fn read_gray(path: &Path) -> Result<Gray, String> {
    let img = image::ImageReader::open(path)
        .map_err(|e| format!("{}: cannot open: {e}", path.display()))?
        .with_guessed_format()
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?
        .decode()
        .map_err(|e| format!("{}: not a decodable image: {e}", path.display()))?;
    let g = img.into_luma16();
    let (w, h) = g.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("{}: empty image", path.display()));
    }
    let pixels = g.into_raw().into_iter().map(|v| v as f32 / 65535.0).collect();
    Ok(Gray { width: w as usize, height: h as usize, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_8_and_16_bit_png_and_rejects_garbage() {
        let dir = std::env::temp_dir().join(format!("fx-io-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p8 = dir.join("a.png");
        image::GrayImage::from_fn(4, 3, |x, _| image::Luma([(x * 85) as u8])).save(&p8).unwrap();
        let g = read_gray(&p8).unwrap();
        assert_eq!((g.width, g.height), (4, 3));
        assert!((g.pixels[3] - 1.0).abs() < 1e-6 && g.pixels[0] == 0.0);
        let p16 = dir.join("b.png");
        image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_fn(2, 2, |x, y| image::Luma([((x + 2 * y) * 20000) as u16]))
            .save(&p16)
            .unwrap();
        let g = read_gray(&p16).unwrap();
        assert!((g.pixels[3] - 60000.0 / 65535.0).abs() < 1e-6);
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = read_gray(&bad).err().unwrap();
        assert!(e.contains("bad.png") && e.contains("not a decodable image"), "{e}");
        let e = read_gray(&dir.join("missing.png")).err().unwrap();
        assert!(e.contains("missing.png"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
