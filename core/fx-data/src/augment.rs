//! Geometric augmentation and resizing as ONE inverse affine warp per sample, applied identically to
//! the image (bilinear), its masks (nearest) and its boxes (corners mapped, then re-boxed), so that
//! annotations can never drift from the pixels.

use crate::rng::Rng;
use fx_plugin::{LabeledBox, Sample};

/// Random augmentation of one task's training images: geometry (applied to masks and boxes alike)
/// and intensity (image only). The experiment's `[augment.cls|loc|seg]` tables are this struct.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Augment {
    /// Crop area as a fraction of the image, drawn uniformly in this range.
    pub crop_scale: [f32; 2],
    /// Rotation, ± degrees.
    pub rotation: f32,
    /// Horizontal flip. Keep it off for tasks whose labels are sided (left/right lung): a flip
    /// swaps the anatomy but not the label.
    pub hflip: bool,
    /// Random brightness shift, ± this much of the [0, 1] range (image only).
    pub brightness: f32,
    /// Random contrast factor 1 ± this much, about mid-grey (image only).
    pub contrast: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Augment::none()
    }
}

impl Augment {
    /// No augmentation: a plain resize.
    pub fn none() -> Augment {
        Augment { crop_scale: [1.0, 1.0], rotation: 0.0, hflip: false, brightness: 0.0, contrast: 0.0 }
    }
}

/// Random brightness/contrast on the image alone (masks and boxes are unaffected by intensity).
pub fn jitter_intensity(aug: &Augment, image: &mut [f32], rng: &mut Rng) {
    if aug.brightness <= 0.0 && aug.contrast <= 0.0 {
        return;
    }
    let c = 1.0 + rng.range(-aug.contrast, aug.contrast);
    let b = rng.range(-aug.brightness, aug.brightness);
    for v in image.iter_mut() {
        *v = ((*v - 0.5) * c + 0.5 + b).clamp(0.0, 1.0);
    }
}

/// An output-to-source affine map: src = a·(u, v) + b, with (u, v) the output pixel centre.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    pub m: [[f32; 2]; 2],
    pub t: [f32; 2],
}

impl Affine {
    fn apply(&self, u: f32, v: f32) -> (f32, f32) {
        (self.m[0][0] * u + self.m[0][1] * v + self.t[0], self.m[1][0] * u + self.m[1][1] * v + self.t[1])
    }

    fn inverse(&self) -> Affine {
        let [[a, b], [c, d]] = self.m;
        let det = a * d - b * c;
        let inv = [[d / det, -b / det], [-c / det, a / det]];
        let t = [-(inv[0][0] * self.t[0] + inv[0][1] * self.t[1]), -(inv[1][0] * self.t[0] + inv[1][1] * self.t[1])];
        Affine { m: inv, t }
    }
}

/// Draws the warp for one sample of size (w, h) → (size, size).
pub fn draw(aug: &Augment, w: usize, h: usize, size: usize, rng: &mut Rng) -> Affine {
    let (w, h, s) = (w as f32, h as f32, size as f32);
    let scale = rng.range(aug.crop_scale[0], aug.crop_scale[1].max(aug.crop_scale[0])).sqrt();
    let (cw, ch) = (w * scale, h * scale);
    // Written so that a full-size crop is centred exactly (a plain resize stays pixel-exact).
    let cx = cw / 2.0 + (w - cw) * rng.f32();
    let cy = ch / 2.0 + (h - ch) * rng.f32();
    let theta = rng.range(-aug.rotation, aug.rotation).to_radians();
    let flip = aug.hflip && rng.bernoulli(0.5);
    let (sin, cos) = theta.sin_cos();
    let fx = if flip { -1.0 } else { 1.0 };
    // Output pixel centre (u + .5, v + .5) → unit offset from the output centre → crop pixels →
    // rotated about the crop centre.
    let (sx, sy) = (fx * cw / s, ch / s);
    let m = [[cos * sx, -sin * sy], [sin * sx, cos * sy]];
    let (u0, v0) = (0.5 - s / 2.0, 0.5 - s / 2.0);
    let t = [cx + m[0][0] * u0 + m[0][1] * v0 - 0.5, cy + m[1][0] * u0 + m[1][1] * v0 - 0.5];
    Affine { m, t }
}

/// The identity-geometry resize of (w, h) to (size, size).
pub fn resize(w: usize, h: usize, size: usize) -> Affine {
    draw(&Augment::none(), w, h, size, &mut Rng::new(0))
}

/// A decoded grayscale image (`width` × `height`, row-major) resized to `size` × `size` the way
/// training and evaluation resize it: the input of predict and of feature extraction. Returns the
/// original pixels (moved through, not copied) and the resized ones.
pub fn resize_gray(pixels: Vec<f32>, width: usize, height: usize, size: usize) -> (Vec<f32>, Vec<f32>) {
    let sample = Sample {
        id: String::new(),
        height,
        width,
        image: pixels,
        image_dims: None,
        cls: vec![],
        boxes: vec![],
        masks: vec![],
        warnings: vec![],
    };
    let resized = warp(&sample, &resize(width, height, size), size).image;
    (sample.image, resized)
}

/// Applies a warp to a sample: image bilinear (zero outside), masks nearest, boxes by their corners
/// (clipped; boxes left with under one pixel of width or height are dropped).
pub fn warp(sample: &Sample, a: &Affine, size: usize) -> Sample {
    let (w, h) = (sample.width, sample.height);
    let mut image = vec![0f32; size * size];
    let mut masks: Vec<Vec<u8>> = sample.masks.iter().map(|_| vec![0u8; size * size]).collect();
    for v in 0..size {
        for u in 0..size {
            let (x, y) = a.apply(u as f32, v as f32);
            let o = v * size + u;
            image[o] = bilinear(&sample.image, w, h, x, y);
            let (xi, yi) = (x.round(), y.round());
            if xi >= 0.0 && yi >= 0.0 && (xi as usize) < w && (yi as usize) < h {
                let i = yi as usize * w + xi as usize;
                for (dst, src) in masks.iter_mut().zip(&sample.masks) {
                    dst[o] = src[i];
                }
            }
        }
    }
    let inv = a.inverse();
    let boxes = sample
        .boxes
        .iter()
        .filter_map(|b| {
            // Box edges are pixel boundaries; map the four corners (pixel-centre convention shifts by .5).
            let corners = [(b.x0, b.y0), (b.x1, b.y0), (b.x0, b.y1), (b.x1, b.y1)].map(|(x, y)| {
                let (u, v) = inv.apply(x - 0.5, y - 0.5);
                (u + 0.5, v + 0.5)
            });
            let clip = |z: f32| z.clamp(0.0, size as f32);
            let x0 = clip(corners.iter().map(|c| c.0).fold(f32::INFINITY, f32::min));
            let x1 = clip(corners.iter().map(|c| c.0).fold(f32::NEG_INFINITY, f32::max));
            let y0 = clip(corners.iter().map(|c| c.1).fold(f32::INFINITY, f32::min));
            let y1 = clip(corners.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max));
            (x1 - x0 >= 1.0 && y1 - y0 >= 1.0).then_some(LabeledBox { label: b.label, x0, y0, x1, y1 })
        })
        .collect();
    Sample {
        id: sample.id.clone(),
        height: size,
        width: size,
        image,
        image_dims: None,
        cls: sample.cls.clone(),
        boxes,
        masks,
        warnings: sample.warnings.clone(),
    }
}

fn bilinear(img: &[f32], w: usize, h: usize, x: f32, y: f32) -> f32 {
    if x <= -1.0 || y <= -1.0 || x >= w as f32 || y >= h as f32 {
        return 0.0;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let at = |xx: f32, yy: f32| -> f32 {
        if xx < 0.0 || yy < 0.0 || xx >= w as f32 || yy >= h as f32 {
            0.0
        } else {
            img[yy as usize * w + xx as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bot = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bot * fy
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square_sample(w: usize, h: usize) -> Sample {
        // A bright square with its mask and box.
        let (x0, y0, x1, y1) = (w / 4, h / 3, w / 2, h / 2);
        let mut image = vec![0f32; w * h];
        let mut mask = vec![0u8; w * h];
        for y in y0..y1 {
            for x in x0..x1 {
                image[y * w + x] = 1.0;
                mask[y * w + x] = 1;
            }
        }
        Sample {
            id: "s".into(),
            height: h,
            width: w,
            image,
            image_dims: None,
            cls: vec![1.0],
            boxes: vec![LabeledBox { label: 0, x0: x0 as f32, y0: y0 as f32, x1: x1 as f32, y1: y1 as f32 }],
            masks: vec![mask],
            warnings: vec![],
        }
    }

    #[test]
    fn identity_resize_keeps_pixels() {
        let s = square_sample(32, 32);
        let out = warp(&s, &resize(32, 32, 32), 32);
        assert_eq!(out.image, s.image);
        assert_eq!(out.masks, s.masks);
        assert_eq!(out.boxes, s.boxes);
    }

    #[test]
    fn image_mask_and_box_stay_aligned_under_random_warps() {
        let s = square_sample(96, 80);
        let aug = Augment { crop_scale: [0.5, 1.0], rotation: 10.0, hflip: true, ..Augment::none() };
        let mut rng = Rng::new(3);
        for _ in 0..20 {
            let a = draw(&aug, 96, 80, 64, &mut rng);
            let out = warp(&s, &a, 64);
            let mask = &out.masks[0];
            let inside: Vec<usize> = (0..mask.len()).filter(|&i| mask[i] == 1).collect();
            if inside.is_empty() {
                assert!(out.boxes.is_empty() || out.boxes[0].x1 - out.boxes[0].x0 < 3.0);
                continue;
            }
            // The image is bright where the mask is set (bilinear blurs the edge by at most a pixel).
            let mean_in = inside.iter().map(|&i| out.image[i]).sum::<f32>() / inside.len() as f32;
            assert!(mean_in > 0.7, "mean image under mask {mean_in}");
            // Every mask pixel lies inside the box (the box of a rotated square contains it).
            let b = out.boxes[0];
            for &i in &inside {
                let (x, y) = ((i % 64) as f32 + 0.5, (i / 64) as f32 + 0.5);
                assert!(
                    x >= b.x0 - 1.0 && x <= b.x1 + 1.0 && y >= b.y0 - 1.0 && y <= b.y1 + 1.0,
                    "{x},{y} outside {b:?}"
                );
            }
        }
    }

    #[test]
    fn intensity_jitter_changes_the_image_only_within_bounds() {
        let aug = Augment { brightness: 0.2, contrast: 0.3, ..Augment::none() };
        let mut img: Vec<f32> = (0..100).map(|i| i as f32 / 99.0).collect();
        let orig = img.clone();
        jitter_intensity(&aug, &mut img, &mut Rng::new(5));
        assert_ne!(img, orig);
        assert!(img.iter().all(|v| (0.0..=1.0).contains(v)));
        // Monotone: the order of intensities is kept (contrast factor stays positive).
        assert!(img.windows(2).all(|w| w[0] <= w[1]));
        let mut same = orig.clone();
        jitter_intensity(&Augment::none(), &mut same, &mut Rng::new(5));
        assert_eq!(same, orig);
    }

    #[test]
    fn flip_mirrors() {
        let s = square_sample(32, 32);
        let aug = Augment { hflip: true, ..Augment::none() };
        let mut rng = Rng::new(1);
        let flipped = (0..10).map(|_| draw(&aug, 32, 32, 32, &mut rng)).find(|a| a.m[0][0] < 0.0).unwrap();
        let out = warp(&s, &flipped, 32);
        for y in 0..32 {
            for x in 0..32 {
                assert_eq!(out.image[y * 32 + x], s.image[y * 32 + 31 - x]);
            }
        }
        assert_eq!(out.boxes[0].x0, 32.0 - s.boxes[0].x1);
    }
}
