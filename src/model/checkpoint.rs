//! Checkpoints: weights as safetensors (`NAME.safetensors`) plus a JSON sidecar (`NAME.json`)
//! holding everything needed to rebuild the model (backbone, tasks, layout, head, input space),
//! so a checkpoint alone is enough. Loading is strict: every variable must be present with its
//! exact shape and nothing unexpected may be in the file.
use super::tree::ModelConfig;
use crate::data::InputSpace;
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Tensor;
use tch::nn::VarStore;

/// Version of the sidecar format.
pub const SIDECAR_FORMAT: u32 = 1;

/// The JSON sidecar of a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sidecar {
    /// Sidecar format version ([`SIDECAR_FORMAT`]).
    pub format: u32,
    /// mtrobust version that wrote it.
    pub mtrobust: String,
    /// The architecture.
    pub model: ModelConfig,
    /// How pixels map to network inputs.
    pub input: InputSpace,
    /// TreeMTL model index of the layout, when it came from one.
    #[serde(default)]
    pub layout_index: Option<usize>,
    /// What produced the weights (training run record), free-form.
    #[serde(default)]
    pub provenance: Option<serde_json::Value>,
}

/// The sidecar path of a checkpoint (`x.safetensors` → `x.json`).
pub fn sidecar_path(weights: &Path) -> PathBuf {
    weights.with_extension("json")
}

/// Checks that a checkpoint path names a `.safetensors` file.
///
/// # Errors
/// Any other extension.
pub fn check_weights_path(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        return Err(Error::checkpoint(path, "checkpoints are `.safetensors` files (with a `.json` sidecar beside them)"));
    }
    Ok(())
}

/// Writes weights and sidecar through the one atomic write path: both are staged in fresh
/// temporary files (never through a link), then renamed, so an interrupted save or a full disk
/// never leaves a half-written checkpoint.
///
/// # Errors
/// I/O failures.
pub fn save(vs: &VarStore, sidecar: &Sidecar, path: &Path) -> Result<()> {
    check_weights_path(path)?;
    let weights =
        safetensors_bytes(vs).map_err(|e| Error::context(format!("checkpoint {}: cannot serialise the weights", path.display()), e))?;
    let text = serde_json::to_string_pretty(sidecar).expect("the sidecar serialises");
    crate::files::write_files_atomic(&[(path, &weights), (&sidecar_path(path), text.as_bytes())])
}

/// The variables of `vs` as a `.safetensors` file's bytes (the format `VarStore::save` writes).
fn safetensors_bytes(vs: &VarStore) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    use safetensors::tensor::{Dtype, TensorView};
    let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buffers = Vec::with_capacity(named.len());
    for (name, t) in &named {
        let t = t.detach().to_device(tch::Device::Cpu).contiguous();
        let dtype = match t.kind() {
            tch::Kind::Float => Dtype::F32,
            tch::Kind::Double => Dtype::F64,
            tch::Kind::Half => Dtype::F16,
            tch::Kind::BFloat16 => Dtype::BF16,
            tch::Kind::Int64 => Dtype::I64,
            other => return Err(format!("`{name}` is a {other:?} tensor, which checkpoints do not store").into()),
        };
        let mut bytes = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, t.numel())?;
        let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
        buffers.push((name.clone(), dtype, shape, bytes));
    }
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((name.as_str(), TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()?;
    Ok(safetensors::tensor::serialize(views, &None)?)
}

/// Reads a checkpoint's sidecar.
///
/// # Errors
/// A missing or malformed sidecar.
pub fn read_sidecar(path: &Path) -> Result<Sidecar> {
    check_weights_path(path)?;
    // Name the missing weights, not the sidecar that would be read next.
    if !path.is_file() {
        return Err(Error::checkpoint(
            path,
            "no such file; a checkpoint is a .safetensors file with a .json sidecar beside it, made by `mtrobust train` or `mtrobust model init`",
        ));
    }
    let json_path = sidecar_path(path);
    let text = std::fs::read_to_string(&json_path).map_err(|e| {
        Error::checkpoint(
            path,
            format!(
                "cannot read its sidecar {}: {e}; a checkpoint is a .safetensors file plus a .json file of the same name",
                json_path.display()
            ),
        )
    })?;
    let sidecar: Sidecar =
        serde_json::from_str(&text).map_err(|e| Error::context(format!("checkpoint {}: malformed sidecar", json_path.display()), e))?;
    if sidecar.format != SIDECAR_FORMAT {
        return Err(Error::checkpoint(
            &json_path,
            format!("sidecar format {} is not supported (expected {SIDECAR_FORMAT})", sidecar.format),
        ));
    }
    sidecar.model.check().map_err(|e| Error::checkpoint(&json_path, e.to_string()))?;
    check_input_space(&sidecar.input).map_err(|reason| Error::checkpoint(&json_path, reason))?;
    // The model is built from the sidecar before the weights are read: a sidecar describing more
    // parameters than the weights file could hold (2 bytes each at least) must not be built.
    let params = sidecar.model.param_count();
    let bytes = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if params as u64 > bytes / 2 {
        return Err(Error::checkpoint(
            &json_path,
            format!(
                "describes a model of {params} parameters but {} holds {bytes} bytes; the sidecar and the weights do not \
                 belong together (or one is damaged)",
                path.display()
            ),
        ));
    }
    Ok(sidecar)
}

/// A scale of 0 maps every image to one input and a negative one flips the budget's sign, so both
/// are refused along with non-finite means.
fn check_input_space(input: &InputSpace) -> std::result::Result<(), String> {
    if !(input.scale.is_finite() && input.scale > 0.0) {
        return Err(format!("`input.scale` is {}; it must be a positive number (1 for the 0..255 pixel scale)", input.scale));
    }
    if let Some(m) = input.mean.iter().find(|m| !m.is_finite()) {
        return Err(format!("`input.mean` holds {m}; the per-channel means must be finite grey levels"));
    }
    Ok(())
}

/// Why a tensor read from a checkpoint cannot be used: a NaN or infinite value anywhere, or a
/// negative batch-norm variance (its square root would be NaN).
pub(crate) fn invalid_values(name: &str, t: &Tensor) -> Option<String> {
    let bad = i64::try_from(t.isfinite().logical_not().sum(tch::Kind::Int64)).unwrap_or(i64::MAX);
    if bad > 0 {
        return Some(format!("`{name}` holds {bad} NaN or infinite value(s)"));
    }
    if name.ends_with("running_var") {
        let negative = i64::try_from(t.lt(0.0).sum(tch::Kind::Int64)).unwrap_or(i64::MAX);
        if negative > 0 {
            return Some(format!("`{name}` holds {negative} negative variance(s)"));
        }
    }
    None
}

/// Copies the tensors of a safetensors file into `vs`, strictly: every variable present with its
/// shape, no extra tensor in the file, values converted to the store's dtype and device.
///
/// # Errors
/// A missing, extra or mis-shaped tensor (named), or an unreadable file.
pub fn load_weights(vs: &mut VarStore, path: &Path, hint: &str) -> Result<()> {
    if !path.exists() {
        return Err(Error::checkpoint(path, "file not found"));
    }
    let tensors: HashMap<String, Tensor> = Tensor::read_safetensors(path)
        .map_err(|e| Error::context(format!("checkpoint {}: not a readable safetensors file", path.display()), e))?
        .into_iter()
        .collect();
    let mut variables = vs.variables();
    let mut missing: Vec<&String> = variables.keys().filter(|k| !tensors.contains_key(*k)).collect();
    missing.sort();
    if let Some(name) = missing.first() {
        return Err(Error::checkpoint(path, format!("lacks `{name}` ({} missing in all); {hint}", missing.len())));
    }
    let mut extra: Vec<&String> = tensors.keys().filter(|k| !variables.contains_key(*k)).collect();
    extra.sort();
    if let Some(name) = extra.first() {
        return Err(Error::checkpoint(
            path,
            format!("holds `{name}`, which the model does not have ({} unexpected in all); {hint}", extra.len()),
        ));
    }
    let _guard = tch::no_grad_guard();
    for (name, var) in variables.iter_mut() {
        let src = &tensors[name];
        if src.size() != var.size() {
            return Err(Error::checkpoint(
                path,
                format!("`{name}` has shape {:?}, the model expects {:?}; {hint}", src.size(), var.size()),
            ));
        }
        // Checked after the conversion: a value can overflow to infinity on the way to float32.
        let value = src.to_kind(var.kind());
        if let Some(reason) = invalid_values(name, &value) {
            return Err(Error::checkpoint(
                path,
                format!("{reason}; the weights are corrupt (a diverged run or a damaged file): retrain, or use an earlier checkpoint"),
            ));
        }
        var.f_copy_(&value.to_device(var.device()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testutil::{small_model, three_tasks};

    #[test]
    fn sidecars_are_checked_before_the_model_is_built() {
        let model = small_model(&three_tasks(), 0, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        model.save(&path, None).unwrap();
        let json = std::fs::read_to_string(super::sidecar_path(&path)).unwrap();
        let load = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            edit(&mut v);
            std::fs::write(super::sidecar_path(&path), v.to_string()).unwrap();
            crate::model::Model::load(&path, tch::Device::Cpu).expect_err("the sidecar is refused").to_string()
        };
        // Negative channels made Model::new panic in libtorch.
        let e = load(&|v| v["model"]["tasks"][0]["channels"] = (-1).into());
        assert!(e.contains("m.json") && e.contains("`segment_semantic` has -1 output channels; a head has 1 to 65536"), "{e}");
        let e = load(&|v| v["model"]["head"]["rates"] = vec![0].into());
        assert!(e.contains("rates of 1 to 1024") && e.contains("got 1 rates [0]"), "{e}");
        // Heads 60 000 wide: 10^11 parameters, which the weights file cannot hold.
        let e = load(&|v| v["model"]["head"]["width"] = 60_000.into());
        assert!(e.contains("m.json") && e.contains("describes a model of") && e.contains("do not belong together"), "{e}");
    }

    #[test]
    fn a_failed_save_leaves_no_partial_files_and_no_checkpoint() {
        let model = small_model(&three_tasks(), 0, 1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        // The sidecar's name is taken by a directory: nothing is written, not even the weights.
        std::fs::create_dir(dir.path().join("m.json")).unwrap();
        assert!(model.save(&path, None).unwrap_err().to_string().contains("is a directory"));
        let names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names, vec!["m.json".to_string()], "only the obstacle is left");
        // A symlink planted at a temporary-looking name beside it is never written through.
        std::fs::remove_dir(dir.path().join("m.json")).unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("m.json.partial")).unwrap();
        model.save(&path, None).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }
}
