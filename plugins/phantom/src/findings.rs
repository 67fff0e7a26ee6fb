//! The findings drawn into a patient: pneumothorax, effusion, nodules and consolidation, each
//! from its own random stream so adding one never moves another.

use crate::anatomy::*;
use crate::film::Lattice;
use crate::streams::*;
use fx_data::rng::Rng;

// ---------------------------------------------------------------------------------------------
// Findings.

/// The lung collapses towards its hilum: the collapsed lung is the outline scaled by `s` about a
/// point near the medial base, so the air collects at the apex and along the lateral wall.
#[derive(Clone, Debug)]
pub(crate) struct Pneumo {
    pub(crate) side: usize,
    pub(crate) s: f32,
    pub(crate) cx: f32,
    pub(crate) cy: f32,
}

impl Pneumo {
    /// Signed distance to the collapsed lung (negative inside it).
    #[inline]
    pub(crate) fn collapsed_d(&self, lung: &Lung, x: f32, y: f32) -> f32 {
        let inv = 1.0 / self.s;
        self.s * lung.outer_d(self.cx + (x - self.cx) * inv, self.cy + (y - self.cy) * inv)
    }

    #[inline]
    pub(crate) fn map(&self, x: f32, y: f32) -> (f32, f32) {
        (self.cx + (x - self.cx) * self.s, self.cy + (y - self.cy) * self.s)
    }
}

/// Pleural fluid up to `level` at the medial side, rising by `rise` towards the lateral wall
/// (the meniscus that blunts the costophrenic angle).
#[derive(Clone, Debug)]
pub(crate) struct Effusion {
    pub(crate) side: usize,
    pub(crate) level: f32,
    pub(crate) rise: f32,
    pub(crate) x_med: f32,
    pub(crate) x_lat: f32,
}

impl Effusion {
    /// Positive above the fluid surface.
    #[inline]
    pub(crate) fn surface_d(&self, x: f32, y: f32) -> f32 {
        let t = ((x - self.x_med) / (self.x_lat - self.x_med)).clamp(0.0, 1.0);
        (self.level - self.rise * t * t) - y
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Nodule {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) r: f32,
}

/// A union of Gaussian blobs, modulated by texture so the outline is fluffy rather than round.
#[derive(Clone, Debug)]
pub(crate) struct Consolidation {
    /// (x, y, amplitude, 1/(2σ²)).
    pub(crate) blobs: Vec<(f32, f32, f32, f32)>,
    pub(crate) bbox: [f32; 4],
    pub(crate) anchor: (f32, f32),
}

pub(crate) const CONSOL_THRESHOLD: f32 = 0.55;

impl Consolidation {
    #[inline]
    pub(crate) fn field(&self, x: f32, y: f32, tex: &Lattice) -> f32 {
        if x < self.bbox[0] || x > self.bbox[2] || y < self.bbox[1] || y > self.bbox[3] {
            return 0.0;
        }
        let mut f = 0.0;
        for &(bx, by, amp, k) in &self.blobs {
            let (dx, dy) = (x - bx, y - by);
            f += amp * (-(dx * dx + dy * dy) * k).exp();
        }
        // The first blob has amplitude 1 at the anchor and the factor is >= 0.7, so the anchor is
        // always above threshold: a present consolidation never has an empty mask.
        f * (0.7 + 0.6 * tex.at(x * 22.0 + 11.3, y * 22.0 + 5.7))
    }
}

pub(crate) struct Findings {
    pub(crate) pneumo: Option<Pneumo>,
    pub(crate) effusion: Option<Effusion>,
    pub(crate) nodules: Vec<Nodule>,
    pub(crate) consolidation: Option<Consolidation>,
}

/// Whether a lesion at (x, y) with clearance `margin` would sit in visibly aerated lung, i.e. not in
/// a pneumothorax's air, not under fluid and not outside the lung.
pub(crate) fn aerated(an: &Anatomy, pn: &Option<Pneumo>, ef: &Option<Effusion>, x: f32, y: f32, margin: f32) -> bool {
    let side = an.lung_side_of(x);
    if an.lung_d(side, x, y) > -margin {
        return false;
    }
    if let Some(p) = pn {
        if p.side == side && p.collapsed_d(&an.lungs[side], x, y) > -margin {
            return false;
        }
    }
    if let Some(e) = ef {
        if e.side == side && e.surface_d(x, y) < margin {
            return false;
        }
    }
    true
}

/// Rejection-samples a point of aerated lung. `side` restricts the lung when given.
pub(crate) fn sample_aerated(
    rng: &mut Rng,
    an: &Anatomy,
    pn: &Option<Pneumo>,
    ef: &Option<Effusion>,
    side: Option<usize>,
    margin: f32,
) -> (f32, f32) {
    let [x0, y0, x1, y1] = an.lungs_bbox();
    let mut last = (0.0, 0.0);
    for attempt in 0..400 {
        let x = match side {
            Some(0) => rng.range(x0, an.xm),
            Some(_) => rng.range(an.xm, x1),
            None => rng.range(x0, x1),
        };
        let y = rng.range(y0, y1);
        // Relax the clearance late on so a small, crowded lung still gets its lesion.
        let m = if attempt < 300 { margin } else { margin * 0.5 };
        if aerated(an, pn, ef, x, y, m) {
            return (x, y);
        }
        last = (x, y);
    }
    last
}

pub(crate) fn make_findings(seed: u64, present: &[bool; 5], an: &Anatomy) -> Findings {
    let [has_nod, has_ptx, has_eff, _, has_con] = *present;

    let pneumo = has_ptx.then(|| {
        let mut r = stream(seed, S_PNEUMO);
        let side = r.below(2);
        let lung = &an.lungs[side];
        let s = r.range(0.60, 0.78);
        let cx = an.xm + lung.side * (an.med_half(side, lung.dome_y) + 0.03);
        let cy = lung.dome_y - r.range(0.0, 0.10);
        Pneumo { side, s, cx, cy }
    });

    let effusion = has_eff.then(|| {
        let mut r = stream(seed, S_EFFUSION);
        let mut side = r.below(2);
        // A hydropneumothorax would make both masks ambiguous, so fluid goes to the other lung.
        if let Some(p) = &pneumo {
            side = 1 - p.side;
        }
        let lung = &an.lungs[side];
        let level = lung.dome_y - r.range(0.09, 0.17);
        let rise = r.range(0.05, 0.10);
        Effusion { side, level, rise, x_med: an.xm, x_lat: lung.lateral_x() }
    });

    let mut nodules = Vec::new();
    if has_nod {
        let mut r = stream(seed, S_NODULE);
        let n = if r.bernoulli(0.35) { 2 } else { 1 };
        for _ in 0..n {
            let rad = r.range(0.035, 0.06);
            let (x, y) = sample_aerated(&mut r, an, &pneumo, &effusion, None, rad * 1.3);
            nodules.push(Nodule { x, y, r: rad });
        }
    }

    let consolidation = has_con.then(|| {
        let mut r = stream(seed, S_CONSOL);
        let mut side = r.below(2);
        if let Some(p) = &pneumo {
            side = 1 - p.side;
        }
        let (ax, ay) = sample_aerated(&mut r, an, &pneumo, &effusion, Some(side), 0.04);
        let k = 5 + r.below(4);
        let mut blobs = Vec::with_capacity(k);
        let mut bbox = [ax, ay, ax, ay];
        for i in 0..k {
            let (bx, by, amp, sigma) = if i == 0 {
                (ax, ay, 1.0, r.range(0.028, 0.04))
            } else {
                (ax + 0.035 * r.normal(), ay + 0.035 * r.normal(), r.range(0.6, 1.0), r.range(0.018, 0.035))
            };
            let reach = 3.2 * sigma;
            bbox = [bbox[0].min(bx - reach), bbox[1].min(by - reach), bbox[2].max(bx + reach), bbox[3].max(by + reach)];
            blobs.push((bx, by, amp, 1.0 / (2.0 * sigma * sigma)));
        }
        Consolidation { blobs, bbox, anchor: (ax, ay) }
    });

    Findings { pneumo, effusion, nodules, consolidation }
}
