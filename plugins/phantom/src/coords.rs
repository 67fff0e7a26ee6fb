//! Patient coordinates <-> pixels: the view of one image (the site's zoom and a random shift that
//! keeps the lungs in view).

use crate::anatomy::Anatomy;
use crate::film::Style;
use crate::streams::{stream, S_VIEW};

#[derive(Clone, Copy, Debug)]
pub(crate) struct View {
    pub(crate) size: f32,
    pub(crate) fov: f32,
    pub(crate) jx: f32,
    pub(crate) jy: f32,
}

impl View {
    /// Patient coordinate of pixel centre `i` along x (or y with `jy`).
    #[inline]
    pub(crate) fn to_patient(self, i: usize, j: f32) -> f32 {
        0.5 - j + ((i as f32 + 0.5) / self.size - 0.5) / self.fov
    }

    #[inline]
    pub(crate) fn to_pixel(self, p: f32, j: f32) -> f32 {
        ((p - 0.5 + j) * self.fov + 0.5) * self.size - 0.5
    }

    /// Random shift of up to `jitter`, pulled back where needed so the lungs stay in view (a label
    /// of a present finding must have pixels). When zoomed in too far for the lungs to fit, the
    /// view centres on them instead.
    pub(crate) fn new(style: &Style, seed: u64, an: &Anatomy, size: usize) -> Self {
        let fov = if style.fov.is_finite() { style.fov.clamp(0.25, 8.0) } else { 1.0 };
        let jitter = if style.jitter.is_finite() { style.jitter.abs() } else { 0.0 };
        let mut rng = stream(seed, S_VIEW);
        let (mut jx, mut jy) = (jitter * rng.range(-1.0, 1.0), jitter * rng.range(-1.0, 1.0));
        let bb = an.lungs_bbox();
        let half = 0.5 / fov;
        let margin = 0.01;
        let fit = |j: &mut f32, lo: f32, hi: f32| {
            // Visible patient range is [0.5 - half - j, 0.5 + half - j].
            let jmin = hi + margin - 0.5 - half;
            let jmax = lo - margin - 0.5 + half;
            *j = if jmin <= jmax { j.clamp(jmin, jmax) } else { 0.5 * (jmin + jmax) };
        };
        fit(&mut jx, bb[0], bb[2]);
        fit(&mut jy, bb[1], bb[3]);
        View { size: size as f32, fov, jx, jy }
    }
}
