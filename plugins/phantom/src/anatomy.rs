//! The patient: lungs, heart, mediastinum, ribs and lung markings, in patient coordinates (see
//! `render`), plus the signed-distance helpers every layer shares.

use crate::levels::*;
use fx_data::rng::Rng;

// ---------------------------------------------------------------------------------------------
// Small math helpers.

#[inline]
pub(crate) fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Soft inside-membership of a signed distance `d`, a linear ramp of half-width `1/(2*inv2e)`.
#[inline]
pub(crate) fn inside(d: f32, inv2e: f32) -> f32 {
    (0.5 - d * inv2e).clamp(0.0, 1.0)
}

/// Approximate signed distance to the axis-aligned ellipse with semi-axes a, b, for a point at
/// offsets (dx, dy) >= 0 from its centre. First-order (value / gradient) estimate: exact on the
/// boundary, which is all that edge ramps and thin lines need.
#[inline]
pub(crate) fn ellipse_d(dx: f32, dy: f32, a: f32, b: f32) -> f32 {
    let px = dx / a;
    let py = dy / b;
    let q = (px * px + py * py).sqrt();
    let gx = px / a;
    let gy = py / b;
    let g = (gx * gx + gy * gy).sqrt();
    if g < 1e-9 {
        return -a.min(b);
    }
    (q - 1.0) * q / g
}

/// Polynomial smooth minimum (union of two distance fields with a fillet of size k).
#[inline]
pub(crate) fn smin(a: f32, b: f32, k: f32) -> f32 {
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - h * h * k * 0.25
}

/// Distance from (px, py) to the segment (ax, ay)-(bx, by).
#[inline]
pub(crate) fn seg_dist(px: f32, py: f32, ax: f32, ay: f32, bx: f32, by: f32) -> f32 {
    let (vx, vy) = (bx - ax, by - ay);
    let (wx, wy) = (px - ax, py - ay);
    let l2 = vx * vx + vy * vy;
    let t = if l2 > 0.0 { ((wx * vx + wy * vy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    let (dx, dy) = (wx - t * vx, wy - t * vy);
    (dx * dx + dy * dy).sqrt()
}

// ---------------------------------------------------------------------------------------------
// Anatomy.

/// One lung's outline before the mediastinum and heart are cut away: an ellipse-topped vertical band
/// above a parabolic diaphragm dome. The ellipse is lopsided (`a_med` < `a_lat`) so the apex sits
/// in the medial third and the lateral wall is one long convex curve down to a sharp costophrenic
/// angle, as on a real film.
#[derive(Clone, Debug)]
pub(crate) struct Lung {
    /// -1 for the image-left lung (patient right), +1 for the image-right lung (patient left).
    pub(crate) side: f32,
    pub(crate) cx: f32,
    pub(crate) a_lat: f32,
    pub(crate) a_med: f32,
    pub(crate) yc: f32,
    pub(crate) b: f32,
    pub(crate) dome_x: f32,
    pub(crate) dome_y: f32,
    pub(crate) dome_k: f32,
    /// Height of the costophrenic angle (lowest point of the lung).
    pub(crate) ycp: f32,
}

impl Lung {
    #[inline]
    pub(crate) fn box_d(&self, x: f32, y: f32) -> f32 {
        let lateral = (x - self.cx) * self.side;
        let a = if lateral > 0.0 { self.a_lat } else { self.a_med };
        let dx = lateral.abs();
        let dy = self.yc - y;
        if dy <= 0.0 {
            dx - a
        } else {
            ellipse_d(dx, dy, a, self.b)
        }
    }

    /// Positive below the diaphragm. The dome falls steeply to the costophrenic angle but only
    /// gently towards the midline, where the heart rests on it.
    #[inline]
    pub(crate) fn dia_d(&self, x: f32, y: f32) -> f32 {
        let dx = x - self.dome_x;
        let k = if dx * self.side > 0.0 { self.dome_k } else { 0.4 * self.dome_k };
        let slope = 2.0 * k * dx;
        (y - (self.dome_y + k * dx * dx)) / (1.0 + slope * slope).sqrt()
    }

    pub(crate) fn dia_y(&self, x: f32) -> f32 {
        let dx = x - self.dome_x;
        let k = if dx * self.side > 0.0 { self.dome_k } else { 0.4 * self.dome_k };
        self.dome_y + k * dx * dx
    }

    #[inline]
    pub(crate) fn outer_d(&self, x: f32, y: f32) -> f32 {
        self.box_d(x, y).max(self.dia_d(x, y))
    }

    pub(crate) fn lateral_x(&self) -> f32 {
        self.cx + self.side * self.a_lat
    }
}

/// The cardiac silhouette: a rotated ellipse (long axis down towards the patient's left, where the
/// apex is), united with a copy dropped by `HEART_DROP` so its underside always rests on the
/// diaphragm (no sliver of lung under the heart); `Anatomy::heart_d` cuts it at the diaphragm.
#[derive(Clone, Debug)]
pub(crate) struct Heart {
    pub(crate) cx: f32,
    pub(crate) cy: f32,
    pub(crate) cos: f32,
    pub(crate) sin: f32,
    pub(crate) ha: f32,
    pub(crate) hb: f32,
}

impl Heart {
    #[inline]
    pub(crate) fn ellipse_d(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let e = |dy: f32| {
            let u = self.cos * dx + self.sin * dy;
            let v = -self.sin * dx + self.cos * dy;
            ellipse_d(u.abs(), v.abs(), self.ha, self.hb)
        };
        e(dy).min(e(dy - HEART_DROP))
    }

    pub(crate) fn half_extent(&self) -> (f32, f32) {
        let (c, s) = (self.cos, self.sin);
        let hx = (self.ha * self.ha * c * c + self.hb * self.hb * s * s).sqrt();
        let hy = (self.ha * self.ha * s * s + self.hb * self.hb * c * c).sqrt();
        (hx, hy)
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Anatomy {
    /// Patient midline and vertical shift.
    pub(crate) xm: f32,
    pub(crate) sy: f32,
    /// Thoracic half-width: the lungs' lateral walls sit at xm ± w.
    pub(crate) w: f32,
    /// Lung apex height.
    pub(crate) ya: f32,
    /// [image-left (patient right), image-right (patient left)].
    pub(crate) lungs: [Lung; 2],
    pub(crate) heart: Heart,
    pub(crate) knob_y: f32,
    pub(crate) knob_amp: f32,
    pub(crate) carina_y: f32,
    pub(crate) rib_u0: f32,
    pub(crate) rib_sp: f32,
    pub(crate) rib_u0_ant: f32,
    pub(crate) vert_u0: f32,
    /// Body half-width below the shoulders and at the neck.
    pub(crate) body_w: f32,
    pub(crate) neck_w: f32,
    pub(crate) shoulder_y: f32,
    /// Gastric air bubble under the patient's left dome: (x, y, rx, ry).
    pub(crate) stomach: Option<(f32, f32, f32, f32)>,
    /// Patient exposure: gain and offset on the composite, so global brightness is not a label cue.
    pub(crate) gain: f32,
    pub(crate) offset: f32,
}

impl Anatomy {
    /// The patient's anatomy. `ctr` (cardiothoracic ratio) is decided by the caller because it is
    /// the one anatomical trait a finding (cardiomegaly) controls.
    pub(crate) fn new(rng: &mut Rng, heart_rng: &mut Rng, cardiomegaly: bool) -> Self {
        let xm = 0.5 + (0.012 * rng.normal()).clamp(-0.03, 0.03);
        let sy = (0.012 * rng.normal()).clamp(-0.03, 0.03);
        let w = rng.range(0.29, 0.34);
        let ya = rng.range(0.12, 0.16) + sy;
        let dome_r = rng.range(0.62, 0.68) + sy;
        let dome_l = dome_r + rng.range(0.005, 0.035);
        let mut lungs = [0usize, 1].map(|k| {
            let side = if k == 0 { -1.0 } else { 1.0 };
            let dome_y = if k == 0 { dome_r } else { dome_l };
            let ycp = dome_y + rng.range(0.06, 0.09);
            let apex = rng.range(0.36, 0.44);
            let cx = xm + side * apex * w;
            let yc = dome_y - rng.range(0.0, 0.05);
            let dome_x = xm + side * w * rng.range(0.55, 0.68);
            let lat = xm + side * w;
            let dome_k = (ycp - dome_y) / ((lat - dome_x) * (lat - dome_x));
            Lung { side, cx, a_lat: (1.0 - apex) * w, a_med: apex * w, yc, b: yc - ya, dome_x, dome_y, dome_k, ycp }
        });
        // Slight apex asymmetry, as in real patients.
        let dy = rng.range(-0.01, 0.01);
        lungs[1].b += dy;

        // Heart: width set by the cardiothoracic ratio; normal 0.40–0.48, cardiomegaly clearly above 0.55.
        let ctr = if cardiomegaly { heart_rng.range(0.57, 0.66) } else { heart_rng.range(0.40, 0.48) };
        let theta = heart_rng.range(0.55, 0.80);
        let ratio = heart_rng.range(0.66, 0.78);
        let right_frac = heart_rng.range(0.28, 0.36);
        let (cos, sin) = (theta.cos(), theta.sin());
        let extent = ctr * 2.0 * w;
        let ha = 0.5 * extent / (cos * cos + ratio * ratio * sin * sin).sqrt();
        let mut heart = Heart { cx: xm - right_frac * extent + 0.5 * extent, cy: 0.0, cos, sin, ha, hb: ha * ratio };
        // Sink the ellipse's bottom below the diaphragm so the heart sits on it with no lung between,
        // but keep its widest point (the apex side) above the dome so the silhouette keeps its width.
        let (hx, hy) = heart.half_extent();
        let dia_y = |x: f32| lungs[usize::from(x >= xm)].dia_y(x);
        let apex_dy = (heart.ha * heart.ha - heart.hb * heart.hb) * sin * cos / hx;
        heart.cy = (dia_y(heart.cx) + 0.05 - hy).min(dia_y(heart.cx + hx) - 0.03 - apex_dy);

        let rib_sp = rng.range(0.050, 0.060);
        let rib_u0 = ya - 0.03 + rng.range(-0.5, 0.5) * rib_sp;
        let rib_u0_ant = ya + rng.range(0.0, 1.0) * rib_sp;
        let vert_u0 = rng.range(0.0, 0.05);
        let knob_y = 0.29 + sy + rng.range(-0.02, 0.02);
        let knob_amp = rng.range(0.018, 0.035);
        let carina_y = 0.30 + sy + rng.range(-0.02, 0.02);
        let body_w = w + rng.range(0.09, 0.14);
        let neck_w = rng.range(0.08, 0.11);
        let shoulder_y = ya + rng.range(-0.04, 0.0);
        let stomach = if rng.bernoulli(0.7) {
            let l = &lungs[1];
            Some((
                l.dome_x + rng.range(-0.02, 0.03),
                l.dome_y + rng.range(0.05, 0.07),
                rng.range(0.03, 0.05),
                rng.range(0.018, 0.03),
            ))
        } else {
            let _ = (rng.f32(), rng.f32(), rng.f32(), rng.f32());
            None
        };
        let gain = rng.range(0.92, 1.08);
        let offset = rng.range(-0.04, 0.04);
        Anatomy {
            xm,
            sy,
            w,
            ya,
            lungs,
            heart,
            knob_y,
            knob_amp,
            carina_y,
            rib_u0,
            rib_sp,
            rib_u0_ant,
            vert_u0,
            body_w,
            neck_w,
            shoulder_y,
            stomach,
            gain,
            offset,
        }
    }

    /// Mediastinal half-width on one side at height y (the aortic knob bulges on the patient's left).
    #[inline]
    pub(crate) fn med_half(&self, side: usize, y: f32) -> f32 {
        let base = 0.042 + 0.018 * smoothstep(0.12, 0.40, y - self.sy);
        if side == 1 {
            let t = (y - self.knob_y) / 0.035;
            base + self.knob_amp * (-t * t).exp()
        } else {
            base
        }
    }

    /// The heart, cut where it dips below the diaphragm (given that side's `dia_d`).
    #[inline]
    pub(crate) fn heart_d(&self, x: f32, y: f32, dia_d: f32) -> f32 {
        self.heart.ellipse_d(x, y).max(dia_d - 0.015)
    }

    /// Heart and mediastinum as one smooth solid: everything between the lungs.
    #[inline]
    pub(crate) fn solid_d(&self, heart_d: f32, side: usize, x: f32, y: f32) -> f32 {
        smin(heart_d, (x - self.xm).abs() - self.med_half(side, y), WAIST)
    }

    /// The lung as segmented in a real dataset: outline minus mediastinum minus heart.
    #[inline]
    pub(crate) fn lung_d(&self, side: usize, x: f32, y: f32) -> f32 {
        let lung = &self.lungs[side];
        let dia = lung.dia_d(x, y);
        let solid = self.solid_d(self.heart_d(x, y, dia), side, x, y);
        lung.box_d(x, y).max(dia).max(-solid)
    }

    pub(crate) fn lung_side_of(&self, x: f32) -> usize {
        usize::from(x >= self.xm)
    }

    /// Patient-space bounding box of both lungs, used to keep them in view under zoom + jitter.
    pub(crate) fn lungs_bbox(&self) -> [f32; 4] {
        let y1 = self.lungs[0].ycp.max(self.lungs[1].ycp);
        [self.xm - self.w, self.ya.min(self.lungs[1].yc - self.lungs[1].b), self.xm + self.w, y1]
    }
}

/// Rib shadows at height y and normalised lateral distance tn (0 at the spine, 1 at the lateral
/// wall). Posterior ribs run out from the spine and curve down laterally; anterior ribs, fainter,
/// run down from the lateral wall towards the sternum. Each family is a set of equally spaced bands
/// in a warped coordinate, so the cost per pixel is O(1) whatever the number of ribs.
#[inline]
pub(crate) fn ribs(an: &Anatomy, y: f32, tn: f32, inv2e: f32) -> f32 {
    let sp = an.rib_sp;
    let band = |s: f32, width: f32| -> f32 {
        let f = s - s.floor();
        // Distance (in patient units) outside the band [0, width) of the period.
        let d = -(f.min(width - f)) * sp;
        inside(d, inv2e)
    };
    // Posterior: nearly level at the spine, rising a little, then turning down along the wall.
    let u = y - (0.16 * tn * tn * tn - 0.10 * tn);
    let s = (u - an.rib_u0) / sp;
    // Faint where they overlap the dense spine and mediastinum.
    let post = if (0.0..10.0).contains(&s) { band(s, 0.42) * (0.3 + 0.7 * smoothstep(0.08, 0.3, tn)) } else { 0.0 };
    // Anterior: from the lateral wall down and in, fading out before the sternum (cartilage).
    let ua = y - 0.14 * (1.0 - tn);
    let sa = (ua - an.rib_u0_ant) / (sp * 1.15);
    let ant = if (0.0..7.0).contains(&sa) { band(sa, 0.36) * smoothstep(0.3, 0.6, tn) } else { 0.0 };
    RIB_POSTERIOR * post + RIB_ANTERIOR * ant
}
