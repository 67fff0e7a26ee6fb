//! The film: lung texture noise, patient exposure, the site's blur, contrast, brightness and
//! gamma, and detector noise. Touches intensities only; masks are fixed by the geometry pass.

use crate::anatomy::Anatomy;
use crate::streams::{stream, S_PIXELS};
use fx_data::rng::{mix, Rng};
use serde::{Deserialize, Serialize};

/// Acquisition style: how a "site" images the chest. Different phantom datasets use different styles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Style {
    /// Multiplies deviations from mid-grey; 1.0 = nominal.
    pub contrast: f32,
    /// Added after contrast; 0.0 = nominal.
    pub brightness: f32,
    /// Power applied to the \[0,1\] image; 1.0 = nominal, >1 darkens mid-tones.
    pub gamma: f32,
    /// Gaussian sigma of per-pixel detector noise, in intensity units.
    pub noise: f32,
    /// Gaussian blur sigma as a fraction of the image size.
    pub blur: f32,
    /// Zoom: 1.0 nominal, >1 zooms in (crops the body), <1 zooms out.
    pub fov: f32,
    /// Maximum random patient shift, as a fraction of the image size.
    pub jitter: f32,
}

impl Default for Style {
    fn default() -> Self {
        // A little quantum noise is part of any real radiograph; geometry is centred and unzoomed.
        Style { contrast: 1.0, brightness: 0.0, gamma: 1.0, noise: 0.01, blur: 0.0, fov: 1.0, jitter: 0.0 }
    }
}

/// Smooth periodic value noise on a 32×32 wrapping lattice, in [0,1]. Wrapping makes it defined
/// for any patient coordinate, which matters when a style zooms out.
pub(crate) struct Lattice(pub(crate) [f32; 32 * 32]);

impl Lattice {
    pub(crate) fn new(rng: &mut Rng) -> Self {
        let mut v = [0.0; 32 * 32];
        for x in v.iter_mut() {
            *x = rng.f32();
        }
        Lattice(v)
    }

    #[inline]
    pub(crate) fn at(&self, x: f32, y: f32) -> f32 {
        let (fx, fy) = (x.floor(), y.floor());
        let (tx, ty) = (x - fx, y - fy);
        let (tx, ty) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
        let ix = (fx as i64).rem_euclid(32) as usize;
        let iy = (fy as i64).rem_euclid(32) as usize;
        let (ix1, iy1) = ((ix + 1) & 31, (iy + 1) & 31);
        let v = &self.0;
        let a = v[iy * 32 + ix] + (v[iy * 32 + ix1] - v[iy * 32 + ix]) * tx;
        let b = v[iy1 * 32 + ix] + (v[iy1 * 32 + ix1] - v[iy1 * 32 + ix]) * tx;
        a + (b - a) * ty
    }
}

/// Patient exposure, then the site's optics (blur) and display (contrast, brightness, gamma) and
/// detector noise. Touches the image only: masks were fixed by the geometry pass.
pub(crate) fn finish_intensity(image: &mut [f32], style: &Style, an: &Anatomy, seed: u64, size: usize) {
    for v in image.iter_mut() {
        let x = *v * an.gain + an.offset;
        // A soft shoulder instead of a hard clip keeps bone detail inside the bright mediastinum.
        *v = if x > 0.8 { 0.8 + 0.2 * ((x - 0.8) / 0.2).tanh() } else { x };
    }

    let sigma = if style.blur.is_finite() { style.blur.max(0.0) * size as f32 } else { 0.0 };
    if sigma >= 0.3 {
        gaussian_blur(image, size, sigma);
    }

    let contrast = if style.contrast.is_finite() { style.contrast } else { 1.0 };
    let brightness = if style.brightness.is_finite() { style.brightness } else { 0.0 };
    let gamma = if style.gamma.is_finite() { style.gamma.clamp(0.05, 20.0) } else { 1.0 };
    let noise = if style.noise.is_finite() { style.noise.max(0.0) } else { 0.0 };
    let mut rng = stream(seed, mix(&[S_PIXELS, size as u64]));
    let identity_gamma = (gamma - 1.0).abs() < 1e-6;
    for v in image.iter_mut() {
        let mut x = ((*v - 0.5) * contrast + 0.5 + brightness).clamp(0.0, 1.0);
        if !identity_gamma {
            x = x.powf(gamma);
        }
        if noise > 0.0 {
            // Irwin–Hall(4) from one 64-bit draw: near-Gaussian at a fraction of Box–Muller's cost.
            let r = rng.next_u64();
            let sum = ((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48)) as f32 / 65536.0;
            x += noise * (sum - 2.0) * 3.0f32.sqrt();
        }
        *v = x.clamp(0.0, 1.0);
    }
}

/// Separable Gaussian blur with clamped edges.
pub(crate) fn gaussian_blur(image: &mut [f32], size: usize, sigma: f32) {
    let radius = (3.0 * sigma).ceil() as usize;
    let kernel: Vec<f32> = {
        let k: Vec<f32> = (0..=2 * radius)
            .map(|t| {
                let d = t as f32 - radius as f32;
                (-d * d / (2.0 * sigma * sigma)).exp()
            })
            .collect();
        let s: f32 = k.iter().sum();
        k.into_iter().map(|w| w / s).collect()
    };
    let r = radius as isize;
    let last = size as isize - 1;
    let mut tmp = vec![0.0f32; image.len()];
    for j in 0..size {
        let row = &image[j * size..(j + 1) * size];
        let out = &mut tmp[j * size..(j + 1) * size];
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = 0.0;
            for (t, w) in kernel.iter().enumerate() {
                let ii = (i as isize + t as isize - r).clamp(0, last) as usize;
                acc += w * row[ii];
            }
            *o = acc;
        }
    }
    // Vertical pass row by row, so the inner loop runs over contiguous memory.
    for j in 0..size {
        let out = &mut image[j * size..(j + 1) * size];
        out.fill(0.0);
        for (t, w) in kernel.iter().enumerate() {
            let jj = (j as isize + t as isize - r).clamp(0, last) as usize;
            let src = &tmp[jj * size..(jj + 1) * size];
            for (o, s) in out.iter_mut().zip(src) {
                *o += w * s;
            }
        }
    }
}
