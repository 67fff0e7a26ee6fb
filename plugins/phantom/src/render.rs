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
//!
//! This module holds the public types and the pixel pass; the layers it composes are `anatomy`,
//! `vessels`, `findings` and `film` (with `streams`, `levels` and `coords` beneath them).

use crate::anatomy::*;
use crate::coords::View;
use crate::film::*;
use crate::findings::*;
use crate::levels::*;
use crate::streams::*;
use crate::vessels::{draw_vessels, make_vessels};

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

/// Running bounding box of mask pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BoxAcc {
    pub(crate) x0: usize,
    pub(crate) y0: usize,
    pub(crate) x1: usize,
    pub(crate) y1: usize,
}

impl BoxAcc {
    pub(crate) const EMPTY: BoxAcc = BoxAcc { x0: usize::MAX, y0: usize::MAX, x1: 0, y1: 0 };

    #[inline]
    pub(crate) fn add(&mut self, i: usize, j: usize) {
        self.x0 = self.x0.min(i);
        self.y0 = self.y0.min(j);
        self.x1 = self.x1.max(i + 1);
        self.y1 = self.y1.max(j + 1);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.x0 == usize::MAX
    }

    pub(crate) fn to_box(self) -> [f32; 4] {
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
