//! `train.activation_checkpointing`: the backbone's Swin blocks and the DINO encoder's layers
//! keep only their inputs in the forward and recompute their activations in the backward
//! (timm's `set_grad_checkpointing`, DINO's `use_checkpoint`), through fx-shim's `checkpoint`.
//! Gradients are exactly those of the plain forward: the recomputation replays the forward's
//! random draws (drop path) and autocast state.

use std::sync::Arc;
use tch::{nn, Tensor};

/// The tensors requiring grad that a module reads: what a checkpointed segment hands to the
/// shim so that their gradients leave its backward. A parameter missing here gets no gradient,
/// which the tests of train.activation_checkpointing catch (the run would differ from the plain
/// one).
pub trait Params {
    fn params(&self) -> Vec<Tensor>;
}

impl Params for nn::Linear {
    fn params(&self) -> Vec<Tensor> {
        std::iter::once(&self.ws).chain(&self.bs).map(Tensor::shallow_clone).collect()
    }
}

impl Params for nn::LayerNorm {
    fn params(&self) -> Vec<Tensor> {
        self.ws.iter().chain(&self.bs).map(Tensor::shallow_clone).collect()
    }
}

/// A module held so that a checkpointed segment can share it with the closure the shim keeps
/// until the backward. (tch's Tensor is Send but not Sync, so neither are the modules: hence the
/// lint, and `Shared` below.)
#[allow(clippy::arc_with_non_send_sync)]
pub fn module<T>(m: T) -> Arc<T> {
    Arc::new(m)
}

/// A module shared with the closure the shim keeps until the backward.
struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    // A method, so that the closure captures the whole wrapper (which is Send), not its field.
    fn get(&self) -> &T {
        &self.0
    }
}

// SAFETY: the closure only reads the module (a forward), and libtorch's tensor reference counts
// are atomic; on CUDA the autograd engine calls it on its device thread while the thread that
// built the graph waits in the backward, so the module is never used from two threads at once
// in a way that writes it.
unsafe impl<T: Send> Send for Shared<T> {}

/// `forward(module, inputs)`, checkpointed where anything in it requires grad (a training
/// step of a segment that trains), else a plain call. `forward` may capture only tensors that
/// require no grad (constants such as reference points); what requires grad is an input.
pub fn segment<T, F>(module: &Arc<T>, inputs: &[&Tensor], forward: F) -> Vec<Tensor>
where
    T: Params + Send + 'static,
    F: Fn(&T, &[Tensor]) -> Vec<Tensor> + Send + 'static,
{
    let params = module.params();
    if !inputs.iter().any(|t| t.requires_grad()) && !params.iter().any(Tensor::requires_grad) {
        let owned: Vec<Tensor> = inputs.iter().map(|t| t.shallow_clone()).collect();
        return forward(module, &owned);
    }
    let shared = Shared(module.clone());
    // A failure here is a failing forward (a shape error, out of memory): it panics as the
    // plain call would have; a failing recomputation is an error of the backward instead.
    fx_shim::checkpoint(inputs, &params, move |xs| forward(shared.get(), xs)).unwrap_or_else(|e| panic!("{e:#}"))
}
