//! The random streams. Separate streams keep each aspect's randomness independent of the others
//! (see `render`); the domain tag keeps phantom seeds apart from other users of `mix`.

use fx_data::rng::{mix, Rng};

pub(crate) const DOMAIN: u64 = 0x0050_4841_4E54_4F4D; // "PHANTOM"
pub(crate) const S_LABELS: u64 = 1;
pub(crate) const S_ANATOMY: u64 = 2;
pub(crate) const S_HEART: u64 = 3;
pub(crate) const S_PNEUMO: u64 = 4;
pub(crate) const S_EFFUSION: u64 = 5;
pub(crate) const S_NODULE: u64 = 6;
pub(crate) const S_CONSOL: u64 = 7;
pub(crate) const S_VESSELS: u64 = 8;
pub(crate) const S_TEXTURE: u64 = 9;
pub(crate) const S_VIEW: u64 = 10;
pub(crate) const S_PIXELS: u64 = 11;

pub(crate) fn stream(seed: u64, tag: u64) -> Rng {
    Rng::new(mix(&[DOMAIN, seed, tag]))
}
