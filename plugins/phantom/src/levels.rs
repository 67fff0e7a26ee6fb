//! Intensity levels of the composite (before patient exposure and site style). Chosen so that the
//! anatomy reads like a PA film: black air, grey soft tissue, dark lungs, bright mediastinum.

pub(crate) const BACKGROUND: f32 = 0.02;
pub(crate) const SOFT_EDGE: f32 = 0.28;
pub(crate) const SOFT_CENTRE: f32 = 0.52;
pub(crate) const ABDOMEN_EXTRA: f32 = 0.14;
pub(crate) const MEDIASTINUM: f32 = 0.72;
pub(crate) const LUNG_TOP: f32 = 0.19;
pub(crate) const LUNG_BASE: f32 = 0.28;
pub(crate) const LUNG_TEXTURE: f32 = 0.08;
pub(crate) const VESSEL: f32 = 0.12;
pub(crate) const PNEUMO_AIR: f32 = 0.05;
pub(crate) const PNEUMO_COLLAPSED_EXTRA: f32 = 0.07;
pub(crate) const PLEURAL_LINE: f32 = 0.20;
pub(crate) const FLUID: f32 = 0.60;
pub(crate) const NODULE: f32 = 0.32;
pub(crate) const CONSOLIDATION: f32 = 0.36;
pub(crate) const RIB_POSTERIOR: f32 = 0.12;
pub(crate) const RIB_ANTERIOR: f32 = 0.05;
pub(crate) const CLAVICLE: f32 = 0.17;
pub(crate) const SPINE: f32 = 0.06;
pub(crate) const TRACHEA: f32 = 0.22;
pub(crate) const HEART_DROP: f32 = 0.08;
/// Rounding of the heart–mediastinum junction (the cardiac "waist"), in patient units.
pub(crate) const WAIST: f32 = 0.05;
