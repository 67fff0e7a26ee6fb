//! Lung markings: a branching vessel tree from each hilum, drawn into their own layer so the main
//! pass can hide them where there is no aerated lung (pneumothorax air, fluid, outside the lungs).

use crate::anatomy::{seg_dist, Anatomy};
use crate::coords::View;
use crate::findings::Pneumo;
use crate::levels::VESSEL;
use crate::streams::{stream, S_VESSELS};
use fx_data::rng::Rng;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Vessel {
    pub(crate) x0: f32,
    pub(crate) y0: f32,
    pub(crate) x1: f32,
    pub(crate) y1: f32,
    pub(crate) width: f32,
    pub(crate) amp: f32,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn grow(
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

pub(crate) fn make_vessels(seed: u64, an: &Anatomy, pn: &Option<Pneumo>) -> Vec<Vessel> {
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

/// Rasterises the vessel tree into `layer` (max-composited, in intensity units).
pub(crate) fn draw_vessels(layer: &mut [f32], vessels: &[Vessel], view: &View, size: usize) {
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
