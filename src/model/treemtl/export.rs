//! Writing a model as a TreeMTL state dict (`torch.save` of an `OrderedDict`), so the reference's
//! `model.load_state_dict(torch.load(F))` takes it. Batch-norm counters, which we do not keep,
//! are written as 0 (they only steer the momentum default during training).
use super::{Scheme, key_map};
use crate::error::Result;
use crate::model::Model;
use crate::model::torchfile::write_state_dict;
use std::path::Path;
use tch::Tensor;

/// Writes `model`'s weights with `scheme`'s key names to `path` (float32 as stored, on the CPU).
///
/// # Errors
/// A scheme the backbone has no names in, or an I/O failure.
pub fn export(model: &Model, scheme: Scheme, path: &Path) -> Result<()> {
    let vars = model.vs.variables();
    let tensors: Vec<(String, Tensor)> = key_map(model.config(), scheme)?
        .into_iter()
        .map(|p| {
            let t = match &p.ours {
                Some(ours) => vars[ours].detach(),
                None => Tensor::from(0i64),
            };
            (p.theirs, t)
        })
        .collect();
    write_state_dict(path, &tensors)
}
