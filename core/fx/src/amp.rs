//! The autocast boundary (`train.precision`): every branch's outputs leave the model in fp32, so
//! that losses, the Hungarian matcher and metrics never run in the lower precision of an autocast
//! region. The regions themselves are fx-shim's `Autocast`.

use tch::{Kind, Tensor};

/// `t` in fp32. (An fp32 tensor comes back as itself: `to_kind` aliases when the dtype already
/// matches.)
pub fn fp32(t: &Tensor) -> Tensor {
    t.to_kind(Kind::Float)
}
