//! Loading a TreeMTL state dict into our tree network, strictly: every key the layout needs must
//! be there with its exact shape, and every key in the file must belong to the model — a
//! checkpoint of another layout, backbone or task list is refused, never half loaded.
use super::{KeyPair, Scheme, key_map};
use crate::data::InputSpace;
use crate::error::{Error, Result};
use crate::model::checkpoint::invalid_values;
use crate::model::torchfile::read_state_dict;
use crate::model::{Model, ModelConfig};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use tch::{Device, Tensor};

/// Removes the `module.` prefix `nn.DataParallel` puts on every key, when every key has it.
pub fn strip_module_prefix(tensors: Vec<(String, Tensor)>) -> Vec<(String, Tensor)> {
    if !tensors.is_empty() && tensors.iter().all(|(k, _)| k.starts_with("module.")) {
        tensors.into_iter().map(|(k, t)| (k["module.".len()..].to_string(), t)).collect()
    } else {
        tensors
    }
}

/// Builds a model with `config` and the reference's input space, and fills it from the TreeMTL
/// checkpoint at `path` (`.model`/`.pt`/`.pth` torch.save files, bare state dicts or training
/// checkpoints with a `state_dict` entry, or `.safetensors` with the same keys). The key scheme is
/// read from the keys; `scheme`, when given, must agree.
///
/// # Errors
/// An unreadable file, a file that is not a state dict, keys of the other scheme, a missing,
/// unexpected or mis-shaped key (named, with what the file and the model hold).
pub fn import(path: &Path, config: ModelConfig, scheme: Option<Scheme>, device: Device) -> Result<(Model, Scheme)> {
    let tensors = strip_module_prefix(read_state_dict(path)?);
    let found = Scheme::detect(tensors.iter().map(|(k, _)| k.as_str())).map_err(|e| Error::checkpoint(path, e))?;
    let scheme = match (found, scheme) {
        (Some(f), Some(s)) if f != s => {
            return Err(Error::checkpoint(path, format!("has {} keys but the scheme {} was asked for", f.class_name(), s.name())));
        }
        (Some(f), _) => f,
        (None, _) => {
            let first: Vec<&str> = tensors.iter().take(3).map(|(k, _)| k.as_str()).collect();
            return Err(Error::checkpoint(
                path,
                format!(
                    "has no TreeMTL backbone keys (`backbone.mtl_blocks.{{i}}.residual_block.…` or `….compute_nodes.{{j}}.basicOp.…`); \
                     its first keys are: {}",
                    if first.is_empty() { "(none: the state dict is empty)".to_string() } else { first.join(", ") }
                ),
            ));
        }
    };
    let map = key_map(&config, scheme)?;
    let mut model = Model::new(config, InputSpace::reference(), device, 0)?;
    fill(&mut model, path, &map, tensors, scheme)?;
    Ok((model, scheme))
}

/// What the file's keys say about the architecture, for error messages.
fn outline(keys: impl Iterator<Item = String>) -> (usize, BTreeSet<String>) {
    let mut blocks = BTreeSet::new();
    let mut heads = BTreeSet::new();
    for k in keys {
        let parts: Vec<&str> = k.split('.').collect();
        match parts.as_slice() {
            ["backbone", "mtl_blocks", i, ..] => {
                blocks.insert(i.parse::<usize>().unwrap_or(usize::MAX));
            }
            ["heads", task, ..] => {
                heads.insert(task.to_string());
            }
            _ => {}
        }
    }
    (blocks.len(), heads)
}

fn fill(model: &mut Model, path: &Path, map: &[KeyPair], tensors: Vec<(String, Tensor)>, scheme: Scheme) -> Result<()> {
    let cfg = model.config()?.clone();
    let hint = || {
        let (file_blocks, file_heads) = outline(tensors.iter().map(|(k, _)| k.clone()));
        let (want_blocks, want_heads) = outline(map.iter().map(|p| p.theirs.clone()));
        format!(
            "the file has {file_blocks} backbone block copies and heads [{}]; backbone `{}` with layout `{}` and tasks [{}] has \
             {want_blocks} and [{}] ({} keys); check --backbone, --tasks and --index/--layout",
            file_heads.into_iter().collect::<Vec<_>>().join(", "),
            cfg.backbone.name(),
            cfg.layout,
            cfg.tasks.iter().map(|t| format!("{}:{}", t.kind, t.channels)).collect::<Vec<_>>().join(", "),
            want_heads.into_iter().collect::<Vec<_>>().join(", "),
            scheme.class_name()
        )
    };
    let file: HashMap<&str, &Tensor> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
    let missing: Vec<&KeyPair> = map.iter().filter(|p| !file.contains_key(p.theirs.as_str())).collect();
    if let Some(first) = missing.first() {
        return Err(Error::checkpoint(path, format!("lacks `{}` ({} keys missing in all); {}", first.theirs, missing.len(), hint())));
    }
    let known: std::collections::HashSet<&str> = map.iter().map(|p| p.theirs.as_str()).collect();
    let extra: Vec<&str> = tensors.iter().map(|(k, _)| k.as_str()).filter(|k| !known.contains(k)).collect();
    if let Some(first) = extra.first() {
        return Err(Error::checkpoint(
            path,
            format!("holds `{first}`, which the model does not have ({} unexpected keys in all); {}", extra.len(), hint()),
        ));
    }
    let mut vars = model.vs.variables();
    let _guard = tch::no_grad_guard();
    // Check every tensor before copying anything: its shape, and its values as the model will hold
    // them (loading refuses NaN or infinite weights, so an import must not write them).
    let mut values = Vec::with_capacity(map.len());
    for p in map {
        let Some(ours) = &p.ours else { continue };
        let (src, var) = (file[p.theirs.as_str()], &vars[ours]);
        if src.size() != var.size() {
            return Err(Error::checkpoint(
                path,
                format!(
                    "`{}` has shape {:?}, the model expects {:?} (for `{ours}`); {}",
                    p.theirs,
                    src.size(),
                    var.size(),
                    if p.theirs.starts_with("heads.") {
                        "the heads' width, rates or output channels differ: check the head width and the task channels".to_string()
                    } else {
                        hint()
                    }
                ),
            ));
        }
        let value = src.f_to_kind(var.kind())?;
        if let Some(reason) = invalid_values(&p.theirs, &value) {
            return Err(Error::checkpoint(
                path,
                format!("{reason}; the source weights are corrupt (a diverged run or a damaged file): import an earlier checkpoint"),
            ));
        }
        values.push((ours, value));
    }
    for (ours, value) in values {
        let var = vars.get_mut(ours).expect("mapped variables exist");
        var.f_copy_(&value.to_device(var.device()))?;
    }
    Ok(())
}
