//! PHANTOM: a deterministic synthetic chest-radiograph generator.
//!
//! Every image is drawn from a seed, so datasets of any size can be produced on the fly by loader
//! threads without touching a disk, and every label (finding presence, lesion masks and boxes,
//! organ masks and boxes) is exact by construction.
//!
//! Design rules that the rest of fx relies on:
//! * All anatomy and lesion geometry lives in *patient coordinates*, the unit square with `x` to the
//!   image right (= patient's left, as in a PA film) and `y` down. Pixels are mapped into patient
//!   coordinates through the view (style zoom + jitter) and evaluated there, so one seed rendered at
//!   64 px and at 224 px shows the same patient with geometrically matching masks.
//! * Each random aspect draws from its own RNG stream (`stream`), so finding presence depends only
//!   on (prevalence, seed), anatomy only on the seed, and adding a lesion never moves the ribs.
//! * Shapes are approximate signed distance functions (negative inside). Masks threshold them at 0;
//!   the image uses a soft ramp around 0, so edges are anti-aliased without changing the geometry.

use crate::rng::{mix, Rng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Finding {
    Nodule,
    Pneumothorax,
    Effusion,
    Cardiomegaly,
    Consolidation,
}

impl Finding {
    pub const ALL: [Finding; 5] =
        [Finding::Nodule, Finding::Pneumothorax, Finding::Effusion, Finding::Cardiomegaly, Finding::Consolidation];

    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Nodule => "nodule",
            Finding::Pneumothorax => "pneumothorax",
            Finding::Effusion => "effusion",
            Finding::Cardiomegaly => "cardiomegaly",
            Finding::Consolidation => "consolidation",
        }
    }

    /// Accepts the `as_str` names, ignoring case and surrounding blanks (config files are typed by hand).
    pub fn parse(s: &str) -> Option<Finding> {
        let s = s.trim();
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(s))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Organ {
    Heart,
    LeftLung,
    RightLung,
}

impl Organ {
    pub const ALL: [Organ; 3] = [Organ::Heart, Organ::LeftLung, Organ::RightLung];

    pub fn as_str(self) -> &'static str {
        match self {
            Organ::Heart => "heart",
            Organ::LeftLung => "left_lung",
            Organ::RightLung => "right_lung",
        }
    }

    pub fn parse(s: &str) -> Option<Organ> {
        let s = s.trim();
        Self::ALL.into_iter().find(|o| o.as_str().eq_ignore_ascii_case(s))
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

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

/// Probability of each finding (indexed by Finding::index) in a dataset.
pub type Prevalence = [f32; 5];

pub struct Phantom {
    /// The image is `size` × `size`.
    pub size: usize,
    /// Row-major, values in \[0,1\]; lungs dark, bone/heart/soft tissue bright (like a real CXR).
    pub image: Vec<f32>,
    /// Per `Finding::index`.
    pub present: [bool; 5],
    /// `size*size` 0/1 each; all-zero when absent.
    pub finding_masks: [Vec<u8>; 5],
    /// One per lesion instance, `[x0,y0,x1,y1]` in pixels with x1/y1 exclusive, tight around that
    /// instance's mask pixels. Ordered by finding, then instance.
    pub finding_boxes: Vec<(Finding, [f32; 4])>,
    /// Heart, left lung, right lung (patient's left = image right, as in a PA radiograph).
    pub organ_masks: [Vec<u8>; 3],
    /// Tight boxes of the organ masks (all zero if an organ is out of view).
    pub organ_boxes: [[f32; 4]; 3],
}

// ---------------------------------------------------------------------------------------------
// Random streams. Separate streams keep each aspect's randomness independent of the others (see
// the module docs); the domain tag keeps phantom seeds apart from other users of `mix`.

const DOMAIN: u64 = 0x0050_4841_4E54_4F4D; // "PHANTOM"
const S_LABELS: u64 = 1;
const S_ANATOMY: u64 = 2;
const S_HEART: u64 = 3;
const S_PNEUMO: u64 = 4;
const S_EFFUSION: u64 = 5;
const S_NODULE: u64 = 6;
const S_CONSOL: u64 = 7;
const S_VESSELS: u64 = 8;
const S_TEXTURE: u64 = 9;
const S_VIEW: u64 = 10;
const S_PIXELS: u64 = 11;

fn stream(seed: u64, tag: u64) -> Rng {
    Rng::new(mix(&[DOMAIN, seed, tag]))
}

// ---------------------------------------------------------------------------------------------
// Intensity levels of the composite (before patient exposure and site style). Chosen so that the
// anatomy reads like a PA film: black air, grey soft tissue, dark lungs, bright mediastinum.

const BACKGROUND: f32 = 0.02;
const SOFT_EDGE: f32 = 0.28;
const SOFT_CENTRE: f32 = 0.52;
const ABDOMEN_EXTRA: f32 = 0.14;
const MEDIASTINUM: f32 = 0.72;
const LUNG_TOP: f32 = 0.19;
const LUNG_BASE: f32 = 0.28;
const LUNG_TEXTURE: f32 = 0.08;
const VESSEL: f32 = 0.12;
const PNEUMO_AIR: f32 = 0.05;
const PNEUMO_COLLAPSED_EXTRA: f32 = 0.07;
const PLEURAL_LINE: f32 = 0.20;
const FLUID: f32 = 0.60;
const NODULE: f32 = 0.32;
const CONSOLIDATION: f32 = 0.36;
const RIB_POSTERIOR: f32 = 0.12;
const RIB_ANTERIOR: f32 = 0.05;
const CLAVICLE: f32 = 0.17;
const SPINE: f32 = 0.06;
const TRACHEA: f32 = 0.22;
const HEART_DROP: f32 = 0.08;
/// Rounding of the heart–mediastinum junction (the cardiac "waist"), in patient units.
const WAIST: f32 = 0.05;

// ---------------------------------------------------------------------------------------------
// Small math helpers.

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Soft inside-membership of a signed distance `d`, a linear ramp of half-width `1/(2*inv2e)`.
#[inline]
fn inside(d: f32, inv2e: f32) -> f32 {
    (0.5 - d * inv2e).clamp(0.0, 1.0)
}

/// Approximate signed distance to the axis-aligned ellipse with semi-axes a, b, for a point at
/// offsets (dx, dy) >= 0 from its centre. First-order (value / gradient) estimate: exact on the
/// boundary, which is all that edge ramps and thin lines need.
#[inline]
fn ellipse_d(dx: f32, dy: f32, a: f32, b: f32) -> f32 {
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
fn smin(a: f32, b: f32, k: f32) -> f32 {
    let h = (k - (a - b).abs()).max(0.0) / k;
    a.min(b) - h * h * k * 0.25
}

/// Distance from (px, py) to the segment (ax, ay)-(bx, by).
#[inline]
fn seg_dist(px: f32, py: f32, ax: f32, ay: f32, bx: f32, by: f32) -> f32 {
    let (vx, vy) = (bx - ax, by - ay);
    let (wx, wy) = (px - ax, py - ay);
    let l2 = vx * vx + vy * vy;
    let t = if l2 > 0.0 { ((wx * vx + wy * vy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    let (dx, dy) = (wx - t * vx, wy - t * vy);
    (dx * dx + dy * dy).sqrt()
}

/// Smooth periodic value noise on a 32×32 wrapping lattice, in [0,1]. Wrapping makes it defined
/// for any patient coordinate, which matters when a style zooms out.
struct Lattice([f32; 32 * 32]);

impl Lattice {
    fn new(rng: &mut Rng) -> Self {
        let mut v = [0.0; 32 * 32];
        for x in v.iter_mut() {
            *x = rng.f32();
        }
        Lattice(v)
    }

    #[inline]
    fn at(&self, x: f32, y: f32) -> f32 {
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

// ---------------------------------------------------------------------------------------------
// Anatomy.

/// One lung's outline before the mediastinum and heart are cut away: an ellipse-topped vertical band
/// above a parabolic diaphragm dome. The ellipse is lopsided (`a_med` < `a_lat`) so the apex sits
/// in the medial third and the lateral wall is one long convex curve down to a sharp costophrenic
/// angle, as on a real film.
#[derive(Clone, Debug)]
struct Lung {
    /// -1 for the image-left lung (patient right), +1 for the image-right lung (patient left).
    side: f32,
    cx: f32,
    a_lat: f32,
    a_med: f32,
    yc: f32,
    b: f32,
    dome_x: f32,
    dome_y: f32,
    dome_k: f32,
    /// Height of the costophrenic angle (lowest point of the lung).
    ycp: f32,
}

impl Lung {
    #[inline]
    fn box_d(&self, x: f32, y: f32) -> f32 {
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
    fn dia_d(&self, x: f32, y: f32) -> f32 {
        let dx = x - self.dome_x;
        let k = if dx * self.side > 0.0 { self.dome_k } else { 0.4 * self.dome_k };
        let slope = 2.0 * k * dx;
        (y - (self.dome_y + k * dx * dx)) / (1.0 + slope * slope).sqrt()
    }

    fn dia_y(&self, x: f32) -> f32 {
        let dx = x - self.dome_x;
        let k = if dx * self.side > 0.0 { self.dome_k } else { 0.4 * self.dome_k };
        self.dome_y + k * dx * dx
    }

    #[inline]
    fn outer_d(&self, x: f32, y: f32) -> f32 {
        self.box_d(x, y).max(self.dia_d(x, y))
    }

    fn lateral_x(&self) -> f32 {
        self.cx + self.side * self.a_lat
    }
}

/// The cardiac silhouette: a rotated ellipse (long axis down towards the patient's left, where the
/// apex is), united with a copy dropped by `HEART_DROP` so its underside always rests on the
/// diaphragm (no sliver of lung under the heart); `Anatomy::heart_d` cuts it at the diaphragm.
#[derive(Clone, Debug)]
struct Heart {
    cx: f32,
    cy: f32,
    cos: f32,
    sin: f32,
    ha: f32,
    hb: f32,
}

impl Heart {
    #[inline]
    fn ellipse_d(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let e = |dy: f32| {
            let u = self.cos * dx + self.sin * dy;
            let v = -self.sin * dx + self.cos * dy;
            ellipse_d(u.abs(), v.abs(), self.ha, self.hb)
        };
        e(dy).min(e(dy - HEART_DROP))
    }

    fn half_extent(&self) -> (f32, f32) {
        let (c, s) = (self.cos, self.sin);
        let hx = (self.ha * self.ha * c * c + self.hb * self.hb * s * s).sqrt();
        let hy = (self.ha * self.ha * s * s + self.hb * self.hb * c * c).sqrt();
        (hx, hy)
    }
}

#[derive(Clone, Debug)]
struct Anatomy {
    /// Patient midline and vertical shift.
    xm: f32,
    sy: f32,
    /// Thoracic half-width: the lungs' lateral walls sit at xm ± w.
    w: f32,
    /// Lung apex height.
    ya: f32,
    /// [image-left (patient right), image-right (patient left)].
    lungs: [Lung; 2],
    heart: Heart,
    knob_y: f32,
    knob_amp: f32,
    carina_y: f32,
    rib_u0: f32,
    rib_sp: f32,
    rib_u0_ant: f32,
    vert_u0: f32,
    /// Body half-width below the shoulders and at the neck.
    body_w: f32,
    neck_w: f32,
    shoulder_y: f32,
    /// Gastric air bubble under the patient's left dome: (x, y, rx, ry).
    stomach: Option<(f32, f32, f32, f32)>,
    /// Patient exposure: gain and offset on the composite, so global brightness is not a label cue.
    gain: f32,
    offset: f32,
}

impl Anatomy {
    /// The patient's anatomy. `ctr` (cardiothoracic ratio) is decided by the caller because it is
    /// the one anatomical trait a finding (cardiomegaly) controls.
    fn new(rng: &mut Rng, heart_rng: &mut Rng, cardiomegaly: bool) -> Self {
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
    fn med_half(&self, side: usize, y: f32) -> f32 {
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
    fn heart_d(&self, x: f32, y: f32, dia_d: f32) -> f32 {
        self.heart.ellipse_d(x, y).max(dia_d - 0.015)
    }

    /// Heart and mediastinum as one smooth solid: everything between the lungs.
    #[inline]
    fn solid_d(&self, heart_d: f32, side: usize, x: f32, y: f32) -> f32 {
        smin(heart_d, (x - self.xm).abs() - self.med_half(side, y), WAIST)
    }

    /// The lung as segmented in a real dataset: outline minus mediastinum minus heart.
    #[inline]
    fn lung_d(&self, side: usize, x: f32, y: f32) -> f32 {
        let lung = &self.lungs[side];
        let dia = lung.dia_d(x, y);
        let solid = self.solid_d(self.heart_d(x, y, dia), side, x, y);
        lung.box_d(x, y).max(dia).max(-solid)
    }

    fn lung_side_of(&self, x: f32) -> usize {
        usize::from(x >= self.xm)
    }

    /// Patient-space bounding box of both lungs, used to keep them in view under zoom + jitter.
    fn lungs_bbox(&self) -> [f32; 4] {
        let y1 = self.lungs[0].ycp.max(self.lungs[1].ycp);
        [self.xm - self.w, self.ya.min(self.lungs[1].yc - self.lungs[1].b), self.xm + self.w, y1]
    }
}

// ---------------------------------------------------------------------------------------------
// Findings.

/// The lung collapses towards its hilum: the collapsed lung is the outline scaled by `s` about a
/// point near the medial base, so the air collects at the apex and along the lateral wall.
#[derive(Clone, Debug)]
struct Pneumo {
    side: usize,
    s: f32,
    cx: f32,
    cy: f32,
}

impl Pneumo {
    /// Signed distance to the collapsed lung (negative inside it).
    #[inline]
    fn collapsed_d(&self, lung: &Lung, x: f32, y: f32) -> f32 {
        let inv = 1.0 / self.s;
        self.s * lung.outer_d(self.cx + (x - self.cx) * inv, self.cy + (y - self.cy) * inv)
    }

    #[inline]
    fn map(&self, x: f32, y: f32) -> (f32, f32) {
        (self.cx + (x - self.cx) * self.s, self.cy + (y - self.cy) * self.s)
    }
}

/// Pleural fluid up to `level` at the medial side, rising by `rise` towards the lateral wall
/// (the meniscus that blunts the costophrenic angle).
#[derive(Clone, Debug)]
struct Effusion {
    side: usize,
    level: f32,
    rise: f32,
    x_med: f32,
    x_lat: f32,
}

impl Effusion {
    /// Positive above the fluid surface.
    #[inline]
    fn surface_d(&self, x: f32, y: f32) -> f32 {
        let t = ((x - self.x_med) / (self.x_lat - self.x_med)).clamp(0.0, 1.0);
        (self.level - self.rise * t * t) - y
    }
}

#[derive(Clone, Copy, Debug)]
struct Nodule {
    x: f32,
    y: f32,
    r: f32,
}

/// A union of Gaussian blobs, modulated by texture so the outline is fluffy rather than round.
#[derive(Clone, Debug)]
struct Consolidation {
    /// (x, y, amplitude, 1/(2σ²)).
    blobs: Vec<(f32, f32, f32, f32)>,
    bbox: [f32; 4],
    anchor: (f32, f32),
}

const CONSOL_THRESHOLD: f32 = 0.55;

impl Consolidation {
    #[inline]
    fn field(&self, x: f32, y: f32, tex: &Lattice) -> f32 {
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

struct Findings {
    pneumo: Option<Pneumo>,
    effusion: Option<Effusion>,
    nodules: Vec<Nodule>,
    consolidation: Option<Consolidation>,
}

/// Whether a lesion at (x, y) with clearance `margin` would sit in visibly aerated lung, i.e. not in
/// a pneumothorax's air, not under fluid and not outside the lung.
fn aerated(an: &Anatomy, pn: &Option<Pneumo>, ef: &Option<Effusion>, x: f32, y: f32, margin: f32) -> bool {
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
fn sample_aerated(
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

fn make_findings(seed: u64, present: &[bool; 5], an: &Anatomy) -> Findings {
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

// ---------------------------------------------------------------------------------------------
// Lung markings: a branching vessel tree from each hilum, drawn into their own layer so the main
// pass can hide them where there is no aerated lung (pneumothorax air, fluid, outside the lungs).

#[derive(Clone, Copy, Debug)]
struct Vessel {
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
    width: f32,
    amp: f32,
}

#[allow(clippy::too_many_arguments)]
fn grow(
    rng: &mut Rng,
    out: &mut Vec<Vessel>,
    side: f32,
    x: f32,
    y: f32,
    ang: f32,
    len: f32,
    width: f32,
    amp: f32,
    depth: u32,
) {
    let (x1, y1) = (x + side * ang.cos() * len, y + ang.sin() * len);
    out.push(Vessel { x0: x, y0: y, x1, y1, width, amp });
    if depth > 0 {
        for turn in [-1.0f32, 1.0] {
            let da = turn * rng.range(0.2, 0.55);
            let l = len * rng.range(0.7, 0.95);
            grow(rng, out, side, x1, y1, ang + da, l, width * 0.7, amp * 0.8, depth - 1);
        }
    }
}

fn make_vessels(seed: u64, an: &Anatomy, pn: &Option<Pneumo>) -> Vec<Vessel> {
    let mut rng = stream(seed, S_VESSELS);
    let mut out = Vec::with_capacity(2 * (7 * 15 + 1));
    for side in 0..2 {
        let s = an.lungs[side].side;
        let hx = an.xm + s * rng.range(0.075, 0.095);
        let hy = an.carina_y + rng.range(0.10, 0.14);
        let n = 7;
        let start = out.len();
        for k in 0..n {
            // Angles from the lateral direction, negative = upwards; covers apex to base.
            let ang = -1.75 + 2.95 * (k as f32 + rng.range(0.2, 0.8)) / n as f32;
            let len = if ang < 0.0 { rng.range(0.06, 0.08) } else { rng.range(0.05, 0.065) };
            grow(&mut rng, &mut out, s, hx, hy, ang, len, 0.014, VESSEL, 3);
        }
        // Hilar shadow: the pulmonary artery and main bronchial vessels, a soft lump at the root.
        out.push(Vessel { x0: hx, y0: hy - 0.02, x1: hx, y1: hy + 0.025, width: 0.05, amp: 0.8 * VESSEL });
        // In a collapsed lung the same vessels are crowded into the smaller volume.
        if let Some(p) = pn {
            if p.side == side {
                for v in &mut out[start..] {
                    (v.x0, v.y0) = p.map(v.x0, v.y0);
                    (v.x1, v.y1) = p.map(v.x1, v.y1);
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// View: patient coordinates <-> pixels.

#[derive(Clone, Copy, Debug)]
struct View {
    size: f32,
    fov: f32,
    jx: f32,
    jy: f32,
}

impl View {
    /// Patient coordinate of pixel centre `i` along x (or y with `jy`).
    #[inline]
    fn to_patient(self, i: usize, j: f32) -> f32 {
        0.5 - j + ((i as f32 + 0.5) / self.size - 0.5) / self.fov
    }

    #[inline]
    fn to_pixel(self, p: f32, j: f32) -> f32 {
        ((p - 0.5 + j) * self.fov + 0.5) * self.size - 0.5
    }

    /// Random shift of up to `jitter`, pulled back where needed so the lungs stay in view (a label
    /// of a present finding must have pixels). When zoomed in too far for the lungs to fit, the
    /// view centres on them instead.
    fn new(style: &Style, seed: u64, an: &Anatomy, size: usize) -> Self {
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

/// Running bounding box of mask pixels.
#[derive(Clone, Copy, Debug)]
struct BoxAcc {
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
}

impl BoxAcc {
    const EMPTY: BoxAcc = BoxAcc { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0 };

    #[inline]
    fn add(&mut self, i: usize, j: usize) {
        self.x0 = self.x0.min(i);
        self.y0 = self.y0.min(j);
        self.x1 = self.x1.max(i + 1);
        self.y1 = self.y1.max(j + 1);
    }

    fn is_empty(&self) -> bool {
        self.x0 == usize::MAX
    }

    fn to_box(self) -> [f32; 4] {
        if self.is_empty() {
            [0.0; 4]
        } else {
            [self.x0 as f32, self.y0 as f32, self.x1 as f32, self.y1 as f32]
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering.

/// Renders one phantom radiograph. Deterministic in all arguments; which findings are present
/// depends only on `prevalence` and `seed`.
pub fn render(style: &Style, prevalence: &Prevalence, seed: u64, size: usize) -> Phantom {
    let mut labels = stream(seed, S_LABELS);
    let mut present = [false; 5];
    for (p, &q) in present.iter_mut().zip(prevalence) {
        // One draw per finding whatever the prevalence, so a finding's label is a monotone
        // function of its own prevalence and independent of the others'.
        *p = labels.f32() < q;
    }

    let an =
        Anatomy::new(&mut stream(seed, S_ANATOMY), &mut stream(seed, S_HEART), present[Finding::Cardiomegaly.index()]);
    let fx = make_findings(seed, &present, &an);
    let vessels = make_vessels(seed, &an, &fx.pneumo);
    let tex = Lattice::new(&mut stream(seed, S_TEXTURE));
    let view = View::new(style, seed, &an, size);

    let n = size * size;
    let mut image = vec![0.0f32; n];
    let mut organ_masks: [Vec<u8>; 3] = std::array::from_fn(|_| vec![0u8; n]);
    let mut finding_masks: [Vec<u8>; 5] = std::array::from_fn(|_| vec![0u8; n]);
    let mut organ_acc = [BoxAcc::EMPTY; 3];
    let mut nodule_acc = vec![BoxAcc::EMPTY; fx.nodules.len()];
    let mut single_acc = [BoxAcc::EMPTY; 3]; // pneumothorax, effusion, consolidation

    // The vessel layer shares `image` as scratch: it is consumed pixel by pixel below.
    draw_vessels(&mut image, &vessels, &view, size);

    let xs: Vec<f32> = (0..size).map(|i| view.to_patient(i, view.jx)).collect();
    let pix = 1.0 / (size.max(1) as f32 * view.fov); // one pixel in patient units
                                                     // Edge half-widths: physical where that is wider than ~0.7 px, so images look alike at all sizes
                                                     // while small renders stay anti-aliased.
    let inv2e = |phys: f32| 0.5 / phys.max(0.7 * pix);
    let e_organ = inv2e(0.004);
    let e_body = inv2e(0.012);
    let e_fluid = inv2e(0.010);
    let e_bone = inv2e(0.003);
    let e_nod = inv2e(0.003);
    let line_hw = 0.0035f32.max(0.6 * pix);
    let xm = an.xm;
    let heart_top = an.heart.cy - an.heart.half_extent().1 - 0.01;
    let heart_bottom = an.heart.cy + an.heart.half_extent().1 + HEART_DROP + 0.01;
    let (i_heart, i_left, i_right) = (Organ::Heart.index(), Organ::LeftLung.index(), Organ::RightLung.index());
    let (f_nod, f_ptx, f_eff, f_card, f_con) = (
        Finding::Nodule.index(),
        Finding::Pneumothorax.index(),
        Finding::Effusion.index(),
        Finding::Cardiomegaly.index(),
        Finding::Consolidation.index(),
    );

    for j in 0..size {
        let y = view.to_patient(j, view.jy);
        let row = j * size;
        // Row constants.
        let med = [an.med_half(0, y), an.med_half(1, y)];
        // Sloping shoulders from the neck, then a chest that widens gently downwards.
        let bw = an.neck_w
            + (an.body_w - an.neck_w) * smoothstep(an.shoulder_y - 0.14, an.shoulder_y + 0.08, y)
            + 0.03 * (y - 0.5);
        let lung_t = ((y - an.ya) / (an.lungs[0].ycp - an.ya)).clamp(0.0, 1.0);
        let lung_level = LUNG_TOP + (LUNG_BASE - LUNG_TOP) * lung_t;
        let in_rib_rows = y > an.ya - 0.06 && y < an.lungs[1].ycp + 0.02;
        let rib_rows = smoothstep(an.ya - 0.06, an.ya - 0.02, y)
            * (1.0 - smoothstep(an.lungs[1].ycp - 0.02, an.lungs[1].ycp + 0.02, y));
        let vert = {
            let g = ((y - an.vert_u0) / 0.047).rem_euclid(1.0);
            1.0 - 0.3 * smoothstep(0.0, 0.06, g) * (1.0 - smoothstep(0.14, 0.20, g))
        };
        let trachea_rows = 1.0 - smoothstep(an.carina_y - 0.01, an.carina_y + 0.01, y);
        let clav_rows = y > an.ya - 0.06 && y < an.ya + 0.13;
        let heart_rows = y > heart_top && y < heart_bottom;
        let neck_fade = 0.35 + 0.65 * smoothstep(an.ya - 0.08, an.ya + 0.02, y);

        for (i, &x) in xs.iter().enumerate() {
            let idx = row + i;
            let vessel = image[idx];
            let ax = (x - xm).abs();
            let side = usize::from(x >= xm);
            let lung = &an.lungs[side];

            // Body and soft tissue: a cylinder, so thicker (brighter) centrally and fading at the edges.
            let body_d = ax - bw;
            let body_m = inside(body_d, e_body);
            let thick = (1.0 - (ax / bw).min(1.0).powi(2)).max(0.0).sqrt();
            let mut v = BACKGROUND + (SOFT_EDGE + (SOFT_CENTRE - SOFT_EDGE) * thick - BACKGROUND) * body_m;

            let dia_d = lung.dia_d(x, y);
            v += ABDOMEN_EXTRA * inside(-dia_d, e_body) * body_m;

            // Heart and mediastinum render as one solid; only the heart is labelled.
            let heart_d = if heart_rows { an.heart_d(x, y, dia_d) } else { 1.0 };
            let solid_d = smin(heart_d, ax - med[side], WAIST);
            let solid_m = inside(solid_d, e_organ);
            // Above the thoracic inlet the mediastinum gives way to the neck's soft tissue.
            v += (MEDIASTINUM - v) * solid_m * neck_fade;
            if heart_d < 0.0 {
                organ_masks[i_heart][idx] = 1;
                organ_acc[i_heart].add(i, j);
            }

            // Lung.
            let box_d = lung.box_d(x, y);
            let lung_d = box_d.max(dia_d).max(-solid_d);
            let lung_m = inside(lung_d, e_organ);
            let in_lung = lung_d < 0.0;
            if in_lung {
                let o = if side == 0 { i_right } else { i_left };
                organ_masks[o][idx] = 1;
                organ_acc[o].add(i, j);
            }
            if lung_m > 0.0 {
                let texture = 0.6 * tex.at(x * 16.0, y * 16.0) + 0.4 * tex.at(x * 34.0 + 3.1, y * 34.0 + 7.7) - 0.5;
                // Lungs are darkest laterally at the apices and greyer towards the hila and bases.
                let hilar = 0.04 * (1.0 - ((ax - 0.08) / an.w).clamp(0.0, 1.0));
                let mut lv = lung_level + hilar + LUNG_TEXTURE * texture + vessel;
                if let Some(p) = fx.pneumo.as_ref().filter(|p| p.side == side) {
                    let cd = p.collapsed_d(lung, x, y);
                    let air = inside(-cd, e_organ);
                    lv = (lv + PNEUMO_COLLAPSED_EXTRA) * (1.0 - air) + PNEUMO_AIR * air;
                    lv += PLEURAL_LINE * (1.0 - cd.abs() / line_hw).max(0.0);
                    if in_lung && cd > 0.0 {
                        finding_masks[f_ptx][idx] = 1;
                        single_acc[0].add(i, j);
                    }
                }
                v += (lv - v) * lung_m;

                // Parenchymal lesions, drawn only where there is lung to show them.
                for (k, nd) in fx.nodules.iter().enumerate() {
                    let (dx, dy) = (x - nd.x, y - nd.y);
                    let r2 = dx * dx + dy * dy;
                    if r2 < (nd.r + 0.02) * (nd.r + 0.02) {
                        let dist = r2.sqrt();
                        let m = inside(dist - nd.r, e_nod);
                        let sphere = (1.0 - r2 / (nd.r * nd.r)).max(0.0).sqrt();
                        v += NODULE * m * (0.65 + 0.35 * sphere) * lung_m;
                        if dist < nd.r {
                            finding_masks[f_nod][idx] = 1;
                            nodule_acc[k].add(i, j);
                        }
                    }
                }
                if let Some(c) = &fx.consolidation {
                    let f = c.field(x, y, &tex);
                    if f > 0.0 {
                        v += CONSOLIDATION * smoothstep(0.25, 1.0, f) * lung_m;
                        let in_fluid = fx.effusion.as_ref().is_some_and(|e| e.side == side && e.surface_d(x, y) < 0.0);
                        if in_lung && f > CONSOL_THRESHOLD && !in_fluid {
                            finding_masks[f_con][idx] = 1;
                            single_acc[2].add(i, j);
                        }
                    }
                }
            }

            // Fluid is drawn without the diaphragm cut so it merges with the abdomen below: the
            // dome and the costophrenic angle disappear, as on a real film.
            if let Some(e) = fx.effusion.as_ref().filter(|e| e.side == side) {
                let sd = e.surface_d(x, y);
                let fd = sd.max(box_d).max(-solid_d);
                let fm = inside(fd, e_fluid);
                if fm > 0.0 {
                    let depth = ((y - e.level) / 0.15).clamp(0.0, 1.0);
                    v += (FLUID + 0.06 * depth - v) * fm;
                }
                if in_lung && sd < 0.0 {
                    finding_masks[f_eff][idx] = 1;
                    single_acc[1].add(i, j);
                }
            }

            // Gastric bubble.
            if let Some((sx, sy, rx, ry)) = an.stomach {
                let (dx, dy) = ((x - sx).abs(), (y - sy).abs());
                if dx < rx + 0.02 && dy < ry + 0.02 {
                    v -= 0.22 * inside(ellipse_d(dx, dy, rx, ry), e_organ);
                }
            }

            // Airways.
            if trachea_rows > 0.0 {
                v -= TRACHEA * trachea_rows * inside(ax - 0.015, e_organ);
            }

            // Bones, additive: they attenuate on top of whatever lies behind them.
            v += SPINE * vert * inside(ax - 0.03, e_organ);
            if in_rib_rows {
                let tn = ax / an.w;
                let ribcage = rib_rows * inside(tn - 1.06, 0.5 / (0.03f32).max(pix / an.w));
                if ribcage > 0.0 {
                    // Ribs are hard to see through the dense heart and mediastinum.
                    v += ribcage * (1.0 - 0.6 * solid_m) * ribs(&an, y, tn, e_bone);
                }
            }
            if clav_rows {
                let s = lung.side;
                let p0 = (xm + s * 0.035, an.ya + 0.075);
                let p1 = (xm + s * 0.16, an.ya + 0.045);
                let p2 = (xm + s * 0.32, an.ya - 0.005);
                let d = seg_dist(x, y, p0.0, p0.1, p1.0, p1.1).min(seg_dist(x, y, p1.0, p1.1, p2.0, p2.1));
                v += CLAVICLE * inside(d - 0.013, e_bone);
            }

            image[idx] = v;
        }
    }

    // Cardiomegaly is a property of the whole heart, so its label is the heart itself.
    if present[f_card] {
        finding_masks[f_card].copy_from_slice(&organ_masks[i_heart]);
    }

    // A lesion far smaller than a pixel can miss every pixel centre; mark the pixel under its anchor
    // so a present finding is never silently unlabelled.
    let ensure = |mask: &mut Vec<u8>, acc: &mut BoxAcc, (px, py): (f32, f32)| {
        if acc.is_empty() && size > 0 {
            let (ci, cj) = (view.to_pixel(px, view.jx).round(), view.to_pixel(py, view.jy).round());
            if ci >= 0.0 && cj >= 0.0 && (ci as usize) < size && (cj as usize) < size {
                let (ci, cj) = (ci as usize, cj as usize);
                mask[cj * size + ci] = 1;
                acc.add(ci, cj);
            }
        }
    };
    for (k, nd) in fx.nodules.iter().enumerate() {
        ensure(&mut finding_masks[f_nod], &mut nodule_acc[k], (nd.x, nd.y));
    }
    if let Some(c) = &fx.consolidation {
        ensure(&mut finding_masks[f_con], &mut single_acc[2], c.anchor);
    }

    let mut finding_boxes = Vec::new();
    for acc in &nodule_acc {
        if !acc.is_empty() {
            finding_boxes.push((Finding::Nodule, acc.to_box()));
        }
    }
    for (f, acc) in [(Finding::Pneumothorax, single_acc[0]), (Finding::Effusion, single_acc[1])] {
        if !acc.is_empty() {
            finding_boxes.push((f, acc.to_box()));
        }
    }
    if present[f_card] && !organ_acc[i_heart].is_empty() {
        finding_boxes.push((Finding::Cardiomegaly, organ_acc[i_heart].to_box()));
    }
    if !single_acc[2].is_empty() {
        finding_boxes.push((Finding::Consolidation, single_acc[2].to_box()));
    }

    finish_intensity(&mut image, style, &an, seed, size);

    Phantom {
        size,
        image,
        present,
        finding_masks,
        finding_boxes,
        organ_masks,
        organ_boxes: organ_acc.map(BoxAcc::to_box),
    }
}

/// Rib shadows at height y and normalised lateral distance tn (0 at the spine, 1 at the lateral
/// wall). Posterior ribs run out from the spine and curve down laterally; anterior ribs, fainter,
/// run down from the lateral wall towards the sternum. Each family is a set of equally spaced bands
/// in a warped coordinate, so the cost per pixel is O(1) whatever the number of ribs.
#[inline]
fn ribs(an: &Anatomy, y: f32, tn: f32, inv2e: f32) -> f32 {
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

/// Rasterises the vessel tree into `layer` (max-composited, in intensity units).
fn draw_vessels(layer: &mut [f32], vessels: &[Vessel], view: &View, size: usize) {
    if size == 0 {
        return;
    }
    let scale = view.fov * view.size;
    for v in vessels {
        let (ax, ay) = (view.to_pixel(v.x0, view.jx), view.to_pixel(v.y0, view.jy));
        let (bx, by) = (view.to_pixel(v.x1, view.jx), view.to_pixel(v.y1, view.jy));
        let half = 0.5 * v.width * scale;
        // Vessels thinner than a pixel are widened and dimmed so their integrated density (how
        // visible they are after the eye or a network averages) stays the same at every size.
        let hw = half.max(0.7);
        let amp = v.amp * (half / hw);
        let x0 = (ax.min(bx) - hw).floor().max(0.0) as usize;
        let y0 = (ay.min(by) - hw).floor().max(0.0) as usize;
        let x1 = ((ax.max(bx) + hw).ceil().max(0.0) as usize).min(size - 1);
        let y1 = ((ay.max(by) + hw).ceil().max(0.0) as usize).min(size - 1);
        if x0 > x1 || y0 > y1 {
            continue;
        }
        for j in y0..=y1 {
            let row = &mut layer[j * size..(j + 1) * size];
            for (i, px) in row.iter_mut().enumerate().take(x1 + 1).skip(x0) {
                let d = seg_dist(i as f32, j as f32, ax, ay, bx, by);
                let t = (1.0 - d / hw).max(0.0);
                *px = px.max(amp * t * t);
            }
        }
    }
}

/// Patient exposure, then the site's optics (blur) and display (contrast, brightness, gamma) and
/// detector noise. Touches the image only: masks were fixed by the geometry pass.
fn finish_intensity(image: &mut [f32], style: &Style, an: &Anatomy, seed: u64, size: usize) {
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
fn gaussian_blur(image: &mut [f32], size: usize, sigma: f32) {
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

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_03: Prevalence = [0.3; 5];

    /// Independent of `BoxAcc`, so a bug there cannot hide from the box tests.
    fn bbox_of(mask: &[u8], size: usize) -> Option<[f32; 4]> {
        let on: Vec<(usize, usize)> = (0..mask.len()).filter(|&k| mask[k] != 0).map(|k| (k % size, k / size)).collect();
        let x0 = on.iter().map(|p| p.0).min()?;
        let y0 = on.iter().map(|p| p.1).min()?;
        let x1 = on.iter().map(|p| p.0).max()? + 1;
        let y1 = on.iter().map(|p| p.1).max()? + 1;
        Some([x0 as f32, y0 as f32, x1 as f32, y1 as f32])
    }

    fn mean_under(image: &[f32], mask: &[u8]) -> f32 {
        let (mut s, mut n) = (0.0f64, 0usize);
        for (v, &m) in image.iter().zip(mask) {
            if m != 0 {
                s += *v as f64;
                n += 1;
            }
        }
        assert!(n > 0, "empty mask");
        (s / n as f64) as f32
    }

    fn close(a: [f32; 4], b: [f32; 4], tol: f32) -> bool {
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol)
    }

    fn styles() -> Vec<Style> {
        vec![
            Style::default(),
            Style { contrast: 1.4, brightness: -0.05, gamma: 1.3, noise: 0.03, blur: 0.004, fov: 1.15, jitter: 0.04 },
            Style { contrast: 0.7, brightness: 0.08, gamma: 0.8, noise: 0.015, blur: 0.002, fov: 0.9, jitter: 0.02 },
        ]
    }

    #[test]
    fn names_round_trip() {
        for (k, f) in Finding::ALL.into_iter().enumerate() {
            assert_eq!(f.index(), k);
            assert_eq!(Finding::parse(f.as_str()), Some(f));
        }
        for (k, o) in Organ::ALL.into_iter().enumerate() {
            assert_eq!(o.index(), k);
            assert_eq!(Organ::parse(o.as_str()), Some(o));
        }
        assert_eq!(Finding::parse(" Effusion "), Some(Finding::Effusion));
        assert_eq!(Finding::parse("mass"), None);
        assert_eq!(Organ::parse("left lung"), None);
    }

    #[test]
    fn style_serde_defaults_and_rejects_unknown() {
        let s: Style = serde_json::from_str(r#"{"contrast": 1.5}"#).unwrap();
        assert_eq!(s, Style { contrast: 1.5, ..Style::default() });
        assert!(serde_json::from_str::<Style>(r#"{"contrast": 1.5, "sharpness": 2}"#).is_err());
    }

    #[test]
    fn deterministic_and_seed_dependent() {
        for style in styles() {
            let a = render(&style, &ALL_03, 42, 64);
            let b = render(&style, &ALL_03, 42, 64);
            let bits = |p: &Phantom| p.image.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b));
            assert_eq!(a.finding_masks, b.finding_masks);
            assert_eq!(a.organ_masks, b.organ_masks);
            assert_eq!(a.finding_boxes, b.finding_boxes);
            let c = render(&style, &ALL_03, 43, 64);
            assert_ne!(bits(&a), bits(&c));
            assert_ne!(a.organ_masks, c.organ_masks);
        }
    }

    #[test]
    fn labels_independent_of_size_and_style() {
        let st = styles();
        for seed in 0..60 {
            let base = render(&st[0], &ALL_03, seed, 64);
            for (k, style) in st.iter().enumerate() {
                let size = [64, 128, 96][k];
                let p = render(style, &ALL_03, seed, size);
                assert_eq!(p.present, base.present, "seed {seed} style {k}");
            }
        }
    }

    #[test]
    fn masks_match_geometrically_across_sizes() {
        // Downsampling the 128 px lung/heart masks by 2 must agree with the 64 px masks almost
        // everywhere (boundary pixels may flip).
        for seed in 0..10 {
            let a = render(&Style::default(), &[1.0; 5], seed, 64);
            let b = render(&Style::default(), &[1.0; 5], seed, 128);
            for (ma, mb) in a.organ_masks.iter().zip(&b.organ_masks).chain(a.finding_masks.iter().zip(&b.finding_masks))
            {
                let mut disagree = 0;
                let mut total = 0;
                for j in 0..64 {
                    for i in 0..64 {
                        let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                            .iter()
                            .map(|(di, dj)| mb[(2 * j + dj) * 128 + 2 * i + di] as u32)
                            .sum();
                        if sum == 0 || sum == 4 {
                            total += 1;
                            if (sum == 4) != (ma[j * 64 + i] == 1) {
                                disagree += 1;
                            }
                        }
                    }
                }
                assert!(disagree * 100 <= total, "seed {seed}: {disagree}/{total} disagree");
            }
        }
    }

    #[test]
    fn masks_and_boxes_consistent_with_presence() {
        for style in styles() {
            for seed in 0..80 {
                for size in [32, 64, 100] {
                    let p = render(&style, &[0.5; 5], seed, size);
                    assert_eq!(p.image.len(), size * size);
                    for f in Finding::ALL {
                        let k = f.index();
                        let mask = &p.finding_masks[k];
                        assert_eq!(mask.len(), size * size);
                        assert!(mask.iter().all(|&m| m <= 1));
                        let boxes: Vec<[f32; 4]> =
                            p.finding_boxes.iter().filter(|(g, _)| *g == f).map(|(_, b)| *b).collect();
                        if !p.present[k] {
                            assert!(mask.iter().all(|&m| m == 0), "absent {f:?} has mask pixels (seed {seed})");
                            assert!(boxes.is_empty(), "absent {f:?} has boxes");
                            continue;
                        }
                        let tight = bbox_of(mask, size)
                            .unwrap_or_else(|| panic!("present {f:?} has empty mask (seed {seed}, size {size})"));
                        assert!(!boxes.is_empty(), "present {f:?} has no box");
                        if f == Finding::Nodule {
                            assert!(boxes.len() <= 2);
                            // Each instance box must hold mask pixels, and together they span the mask.
                            let mut union = [f32::MAX, f32::MAX, 0.0, 0.0];
                            for b in &boxes {
                                let (x0, y0, x1, y1) = (b[0] as usize, b[1] as usize, b[2] as usize, b[3] as usize);
                                assert!((y0..y1).any(|j| (x0..x1).any(|i| mask[j * size + i] == 1)));
                                union =
                                    [union[0].min(b[0]), union[1].min(b[1]), union[2].max(b[2]), union[3].max(b[3])];
                            }
                            assert!(close(union, tight, 1.0), "{union:?} vs {tight:?}");
                        } else {
                            assert_eq!(boxes.len(), 1, "{f:?}");
                            assert!(close(boxes[0], tight, 1.0), "{f:?}: {:?} vs {tight:?}", boxes[0]);
                        }
                    }
                    for (k, o) in Organ::ALL.into_iter().enumerate() {
                        let tight = bbox_of(&p.organ_masks[k], size).unwrap_or_else(|| panic!("{o:?} empty"));
                        assert!(close(p.organ_boxes[k], tight, 1.0), "{o:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn nodule_boxes_are_per_instance() {
        // Find a two-nodule case and check each box is tight around its own disc (the two boxes
        // must differ, and each must be far smaller than the union when the nodules are apart).
        let mut found = false;
        for seed in 0..200 {
            let p = render(&Style::default(), &[1.0, 0.0, 0.0, 0.0, 0.0], seed, 128);
            let boxes: Vec<_> = p.finding_boxes.iter().map(|b| b.1).collect();
            if boxes.len() == 2 {
                found = true;
                assert_ne!(boxes[0], boxes[1]);
                for b in &boxes {
                    let (w, h) = (b[2] - b[0], b[3] - b[1]);
                    // Radius 3.5–6 % of 128 px: diameter 9–15.4 px.
                    assert!((7.0..=17.0).contains(&w) && (7.0..=17.0).contains(&h), "{b:?}");
                }
            }
        }
        assert!(found, "no two-nodule case in 200 seeds");
    }

    #[test]
    fn organ_layout() {
        for seed in 0..50 {
            let size = 96;
            let p = render(&Style::default(), &ALL_03, seed, size);
            let cx = |m: &[u8]| {
                let (mut s, mut n) = (0.0, 0.0);
                for (k, &v) in m.iter().enumerate() {
                    if v != 0 {
                        s += (k % size) as f32;
                        n += 1.0;
                    }
                }
                s / n
            };
            let half = size as f32 / 2.0;
            assert!(
                cx(&p.organ_masks[Organ::RightLung.index()]) < half - 8.0,
                "patient right lung is on the image left"
            );
            assert!(cx(&p.organ_masks[Organ::LeftLung.index()]) > half + 8.0);
            let heart = &p.organ_masks[Organ::Heart.index()];
            let midline = (0..size).any(|j| (44..52).any(|i| heart[j * size + i] == 1));
            assert!(midline, "heart does not cross the midline");
            // More of the heart lies on the patient's left (image right).
            assert!(cx(heart) > half);
            // Lungs and heart never overlap.
            for k in 0..size * size {
                let s = p.organ_masks[0][k] + p.organ_masks[1][k] + p.organ_masks[2][k];
                assert!(s <= 1);
            }
            // Lungs above the diaphragm occupy a plausible share of the image.
            for o in [Organ::LeftLung, Organ::RightLung] {
                let area = p.organ_masks[o.index()].iter().filter(|&&m| m == 1).count() as f32 / (size * size) as f32;
                assert!((0.04..0.2).contains(&area), "{o:?} area {area}");
            }
        }
    }

    #[test]
    fn prevalence_respected() {
        let prev = [0.3, 0.0, 1.0, 0.3, 0.1];
        let mut counts = [0usize; 5];
        let n = 400;
        for seed in 0..n {
            let p = render(&Style::default(), &prev, seed, 32);
            for (c, &on) in counts.iter_mut().zip(&p.present) {
                *c += on as usize;
            }
        }
        let frac = counts.map(|c| c as f32 / n as f32);
        assert!((0.2..0.4).contains(&frac[0]), "{frac:?}");
        assert_eq!(counts[1], 0);
        assert_eq!(counts[2], n as usize);
        assert!((0.2..0.4).contains(&frac[3]), "{frac:?}");
        assert!((0.04..0.16).contains(&frac[4]), "{frac:?}");
    }

    fn ctr(p: &Phantom) -> f32 {
        let size = p.size;
        let width = |m: &[u8]| {
            let b = bbox_of(m, size).unwrap();
            b[2] - b[0]
        };
        let heart = width(&p.organ_masks[Organ::Heart.index()]);
        let l = bbox_of(&p.organ_masks[Organ::LeftLung.index()], size).unwrap();
        let r = bbox_of(&p.organ_masks[Organ::RightLung.index()], size).unwrap();
        heart / (l[2] - r[0])
    }

    #[test]
    fn cardiomegaly_enlarges_heart() {
        let size = 128;
        let (mut normal, mut big) = (Vec::new(), Vec::new());
        for seed in 0..200 {
            let p = render(&Style::default(), &ALL_03, seed, size);
            let c = ctr(&p);
            if p.present[Finding::Cardiomegaly.index()] {
                assert_eq!(p.finding_masks[Finding::Cardiomegaly.index()], p.organ_masks[Organ::Heart.index()]);
                big.push(c);
            } else {
                normal.push(c);
            }
        }
        assert!(big.len() > 20 && normal.len() > 20);
        let max_normal = normal.iter().cloned().fold(0.0, f32::max);
        let min_big = big.iter().cloned().fold(1.0, f32::min);
        let min_normal = normal.iter().cloned().fold(1.0, f32::min);
        assert!(min_normal > 0.36 && max_normal < 0.51, "normal CTR {min_normal}..{max_normal}");
        assert!(min_big > 0.54, "cardiomegaly CTR min {min_big}");
        // The same patient with and without the finding: only the heart grows.
        let seed = 7;
        let mut prev = [0.0; 5];
        let a = render(&Style::default(), &prev, seed, size);
        prev[Finding::Cardiomegaly.index()] = 1.0;
        let b = render(&Style::default(), &prev, seed, size);
        assert!(ctr(&b) > ctr(&a) + 0.08);
    }

    #[test]
    fn intensities_look_like_a_radiograph() {
        for style in styles() {
            for seed in 0..30 {
                let p = render(&style, &ALL_03, seed, 64);
                assert!(p.image.iter().all(|v| (0.0..=1.0).contains(v)));
                let lungs: Vec<u8> = p.organ_masks[1].iter().zip(&p.organ_masks[2]).map(|(a, b)| a | b).collect();
                let lung = mean_under(&p.image, &lungs);
                let heart = mean_under(&p.image, &p.organ_masks[0]);
                // The low-contrast style (0.7) squeezes the nominal ~0.35 gap to ~0.2.
                assert!(lung + 0.12 < heart, "seed {seed}: lung {lung} heart {heart}");
            }
        }
    }

    #[test]
    fn findings_change_the_image_where_their_mask_is() {
        // Same patient with and without each finding: the image must differ inside the mask in the
        // expected direction (nodule, effusion, consolidation brighter; pneumothorax air darker).
        let size = 96;
        let style = Style { noise: 0.0, ..Style::default() };
        for seed in 0..20 {
            let normal = render(&style, &[0.0; 5], seed, size);
            for (f, sign) in [
                (Finding::Nodule, 1.0),
                (Finding::Pneumothorax, -1.0),
                (Finding::Effusion, 1.0),
                (Finding::Consolidation, 1.0),
            ] {
                let mut prev = [0.0; 5];
                prev[f.index()] = 1.0;
                let p = render(&style, &prev, seed, size);
                let m = &p.finding_masks[f.index()];
                let delta = mean_under(&p.image, m) - mean_under(&normal.image, m);
                assert!(delta * sign > 0.08, "seed {seed} {f:?}: delta {delta}");
            }
        }
    }

    #[test]
    fn pneumothorax_is_large() {
        let size = 96;
        for seed in 0..40 {
            let p = render(&Style::default(), &[0.0, 1.0, 0.0, 0.0, 0.0], seed, size);
            let air = p.finding_masks[Finding::Pneumothorax.index()].iter().filter(|&&m| m == 1).count();
            let lung_of = |o: Organ| {
                let m = &p.organ_masks[o.index()];
                let overlap = m
                    .iter()
                    .zip(&p.finding_masks[Finding::Pneumothorax.index()])
                    .filter(|(a, b)| **a == 1 && **b == 1)
                    .count();
                (overlap, m.iter().filter(|&&v| v == 1).count())
            };
            let (ol, nl) = lung_of(Organ::LeftLung);
            let (or, nr) = lung_of(Organ::RightLung);
            assert_eq!(ol + or, air, "pneumothorax must lie inside the lungs");
            let frac = if ol > 0 { ol as f32 / nl as f32 } else { or as f32 / nr as f32 };
            assert!(ol == 0 || or == 0, "pneumothorax in one lung only");
            assert!(frac >= 0.2, "seed {seed}: pneumothorax covers {frac} of its lung");
        }
    }

    #[test]
    fn view_moves_masks_and_image_together() {
        let zoomed = Style { fov: 1.2, jitter: 0.05, noise: 0.0, ..Style::default() };
        let plain = Style { noise: 0.0, ..Style::default() };
        let size = 96;
        let (mut moved, mut checked) = (0, 0);
        for seed in 0..20 {
            let a = render(&plain, &ALL_03, seed, size);
            let b = render(&zoomed, &ALL_03, seed, size);
            let lungs = |p: &Phantom| -> Vec<u8> {
                p.organ_masks[1].iter().zip(&p.organ_masks[2]).map(|(x, y)| x | y).collect()
            };
            let (la, lb) = (lungs(&a), lungs(&b));
            if la != lb {
                moved += 1;
            }
            let matched = mean_under(&b.image, &lb);
            let plain_lung = mean_under(&a.image, &la);
            assert!((matched - plain_lung).abs() < 0.05, "seed {seed}: zoomed lungs {matched} vs {plain_lung}");
            // Where the two lung masks disagree, the zoomed image must follow its own mask: pixels
            // that became lung are dark, pixels that stopped being lung (now mediastinum, heart or
            // chest wall) are bright. A mask left behind by the view would fail this.
            let gained: Vec<u8> = lb.iter().zip(&la).map(|(b, a)| b & (1 - a)).collect();
            let lost: Vec<u8> = la.iter().zip(&lb).map(|(a, b)| a & (1 - b)).collect();
            if gained.contains(&1) && lost.iter().filter(|&&v| v == 1).count() >= 10 {
                let (g, l) = (mean_under(&b.image, &gained), mean_under(&b.image, &lost));
                assert!(g + 0.15 < l, "seed {seed}: newly lung {g} vs no longer lung {l}");
                checked += 1;
            }
            // Zoom shows the lungs larger.
            let area = |m: &[u8]| m.iter().filter(|&&v| v == 1).count() as f32;
            assert!(area(&lb) > 1.25 * area(&la));
        }
        assert_eq!(moved, 20);
        assert!(checked >= 15, "only {checked} seeds had both gained and lost lung pixels");
    }

    #[test]
    fn extreme_sizes_and_styles_do_not_break() {
        let wild = Style { contrast: 3.0, brightness: 0.5, gamma: 0.2, noise: 0.3, blur: 0.05, fov: 3.0, jitter: 0.5 };
        for (style, size) in
            [(Style::default(), 1), (Style::default(), 1024), (wild.clone(), 48), (Style { fov: 0.5, ..wild }, 40)]
        {
            let p = render(&style, &[1.0; 5], 3, size);
            assert_eq!(p.image.len(), size * size);
            assert!(p.image.iter().all(|v| (0.0..=1.0).contains(v)));
            assert_eq!(p.present, [true; 5]);
        }
        let p = render(&Style::default(), &[1.0; 5], 3, 0);
        assert!(p.image.is_empty() && p.finding_boxes.is_empty());
    }
}
