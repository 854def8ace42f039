//! Reading `torch.save` archives: a zip holding `<name>/data.pkl` (the pickled object) and one
//! `<name>/data/<key>` entry per storage, raw little-endian bytes. Tensors are rebuilt from their
//! storage, offset, size and stride; everything else stays a [`Value`].
use super::pickle::{self, Value};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// The first bytes of a zip archive (the current `torch.save` format).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// The first bytes of a pre-1.6 `torch.save` file: a pickled magic number.
const LEGACY_MAGIC: &[u8] = &[0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// An opened `torch.save` archive: its unpickled object and the storages it refers to.
pub struct Archive {
    /// The unpickled object (tensors still as calls; see [`Archive::tensor`]).
    pub root: Value,
    storages: HashMap<String, Vec<u8>>,
}

/// Whether `path` starts like a zip archive (a `torch.save` or TorchScript file).
pub fn is_zip(path: &Path) -> bool {
    let mut head = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head == ZIP_MAGIC
}

impl Archive {
    /// Opens a `torch.save` file.
    ///
    /// # Errors
    /// A file that is not a `torch.save` zip archive (the legacy format and TorchScript modules are
    /// recognised and explained), a malformed pickle, big-endian data.
    pub fn open(path: &Path) -> Result<Archive> {
        let mut head = Vec::with_capacity(LEGACY_MAGIC.len());
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        (&file).take(LEGACY_MAGIC.len() as u64).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
        if head.starts_with(LEGACY_MAGIC) {
            return Err(Error::checkpoint(
                path,
                "is in the legacy (PyTorch < 1.6) torch.save format; load and re-save it with a recent PyTorch: \
                 `torch.save(torch.load(F), F2)`",
            ));
        }
        if !head.starts_with(ZIP_MAGIC) {
            return Err(Error::checkpoint(path, "is neither a torch.save archive (.pt/.pth/.model) nor a safetensors file"));
        }
        // Read from the file, not a copy in memory: full-size checkpoints are hundreds of MB.
        let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
            .map_err(|e| Error::context(format!("checkpoint {}: is not a readable zip archive", path.display()), e))?;
        let names: Vec<String> = zip.file_names().map(str::to_string).collect();
        let Some(pkl) = names.iter().find(|n| n.ends_with("data.pkl") && n.matches('/').count() == 1).cloned() else {
            let hint = if names.iter().any(|n| n.ends_with("/constants.pkl") || n.contains("/code/")) {
                "it is a TorchScript module, not a state dict (save `model.state_dict()` with torch.save instead)"
            } else {
                "it has no `data.pkl`"
            };
            return Err(Error::checkpoint(path, format!("is a zip archive but not a torch.save file: {hint}")));
        };
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let mut read_entry = |name: &str| -> Result<Vec<u8>> {
            let mut f = zip
                .by_name(name)
                .map_err(|e| Error::context(format!("checkpoint {}: cannot read `{name}` in the archive", path.display()), e))?;
            let mut out = Vec::with_capacity(f.size() as usize);
            f.read_to_end(&mut out).map_err(|e| Error::io(path, e))?;
            Ok(out)
        };
        if names.contains(&format!("{prefix}byteorder")) && read_entry(&format!("{prefix}byteorder"))? != b"little" {
            return Err(Error::checkpoint(path, "holds big-endian tensors; re-save it on a little-endian machine"));
        }
        let data = read_entry(&pkl)?;
        let (root, _) = pickle::unpickle(&data).map_err(|e| Error::checkpoint(path, format!("cannot unpickle `{pkl}`: {e}")))?;
        let mut storages = HashMap::new();
        let data_prefix = format!("{prefix}data/");
        for name in names.iter().filter(|n| n.starts_with(&data_prefix)) {
            storages.insert(name[data_prefix.len()..].to_string(), read_entry(name)?);
        }
        Ok(Archive { root, storages })
    }

    /// Rebuilds the tensor a pickled value stands for (`torch._utils._rebuild_tensor_v2` or
    /// `_rebuild_parameter`), contiguous, on the CPU; `None` for any other value.
    ///
    /// # Errors
    /// A tensor whose storage is missing, of an unknown type, or too small for its view.
    pub fn tensor(&self, value: &Value) -> std::result::Result<Option<Tensor>, String> {
        let Value::Call(call) = value else { return Ok(None) };
        let call = call.borrow();
        let name = call.callable.global_name().unwrap_or_default();
        match name.as_str() {
            "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_tensor" => {
                let [storage, offset, size, stride, ..] = call.args.as_slice() else {
                    return Err(format!("{name} with {} arguments", call.args.len()));
                };
                let ints = |v: &Value| -> std::result::Result<Vec<i64>, String> {
                    v.items().unwrap_or_default().iter().map(|x| x.as_int().ok_or_else(|| "a non-integer size".to_string())).collect()
                };
                let (size, stride) = (ints(size)?, ints(stride)?);
                let offset = offset.as_int().ok_or("a non-integer storage offset")?;
                let (flat, numel) = self.storage(storage)?;
                if size.len() != stride.len() {
                    return Err(format!("size {size:?} and stride {stride:?} differ in length"));
                }
                let last = offset + size.iter().zip(&stride).map(|(&n, &s)| (n - 1).max(0) * s).sum::<i64>();
                if size.iter().all(|&n| n > 0) && (offset < 0 || last >= numel) {
                    return Err(format!("a view of size {size:?} at offset {offset} overruns its storage of {numel} elements"));
                }
                if size.contains(&0) {
                    return Ok(Some(Tensor::zeros(size.as_slice(), (flat.kind(), tch::Device::Cpu))));
                }
                let view = flat.f_as_strided(size.as_slice(), stride.as_slice(), offset).map_err(|e| e.to_string())?;
                Ok(Some(view.contiguous()))
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match call.args.first() {
                Some(data) => self.tensor(data),
                None => Err(format!("{name} without data")),
            },
            _ => Ok(None),
        }
    }

    /// The storage a persistent id names, as a flat tensor, and its element count.
    fn storage(&self, pid: &Value) -> std::result::Result<(Tensor, i64), String> {
        let Value::PersistentId(pid) = pid else { return Err(format!("a tensor whose storage is {}", pid.describe())) };
        let items = pid.items().unwrap_or_default();
        let [tag, ty, key, _location, numel, ..] = items.as_slice() else { return Err("a malformed storage reference".into()) };
        if tag.as_str() != Some("storage") {
            return Err("a storage reference without the `storage` tag".into());
        }
        let kind = storage_kind(ty).ok_or_else(|| format!("storages of type {} are not supported", ty.describe()))?;
        let key = key.as_str().ok_or("a storage key that is not a string")?;
        let numel = numel.as_int().ok_or("a storage size that is not an integer")?;
        let bytes = self.storages.get(key).ok_or_else(|| format!("storage `{key}` is missing from the archive"))?;
        let want = numel as usize * kind.elt_size_in_bytes();
        if bytes.len() < want {
            return Err(format!("storage `{key}` has {} bytes, {want} expected", bytes.len()));
        }
        Ok((Tensor::f_from_data_size(&bytes[..want], &[numel], kind).map_err(|e| e.to_string())?, numel))
    }
}

/// The element kind of a pickled storage class (`torch.FloatStorage`, …).
fn storage_kind(ty: &Value) -> Option<Kind> {
    let name = ty.global_name()?;
    Some(match name.strip_prefix("torch.")? {
        "FloatStorage" => Kind::Float,
        "DoubleStorage" => Kind::Double,
        "HalfStorage" => Kind::Half,
        "BFloat16Storage" => Kind::BFloat16,
        "LongStorage" => Kind::Int64,
        "IntStorage" => Kind::Int,
        "ShortStorage" => Kind::Int16,
        "CharStorage" => Kind::Int8,
        "ByteStorage" => Kind::Uint8,
        "BoolStorage" => Kind::Bool,
        _ => return None,
    })
}

/// Reads a state dict — named tensors — from a `torch.save` file holding either the state dict
/// itself or a dict with the state dict under `state_dict` (a training checkpoint), or from a
/// safetensors file. Names keep their order in the file.
///
/// # Errors
/// An unreadable file, a pickle that is not a state dict (what it holds is said), or an entry that
/// is not a tensor (named).
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    if !path.exists() {
        return Err(Error::checkpoint(path, "file not found"));
    }
    if !is_zip(path) && looks_like_safetensors(path) {
        return Tensor::read_safetensors(path)
            .map_err(|e| Error::context(format!("checkpoint {}: not a readable safetensors file", path.display()), e));
    }
    let archive = Archive::open(path)?;
    let dict = match archive.root.get("state_dict") {
        Some(d) => d,
        None => archive.root.clone(),
    };
    let Value::Dict(entries) = &dict else {
        return Err(Error::checkpoint(path, format!("holds {}, not a state dict (a dict of tensors)", dict.describe())));
    };
    let mut out = Vec::new();
    for (k, v) in entries.borrow().iter() {
        let Some(name) = k.as_str() else {
            return Err(Error::checkpoint(path, format!("is not a state dict: it has a key that is {}", k.describe())));
        };
        match archive.tensor(v).map_err(|e| Error::checkpoint(path, format!("entry `{name}`: {e}")))? {
            Some(t) => out.push((name.to_string(), t)),
            None => {
                let keys: Vec<String> = entries.borrow().iter().filter_map(|(k, _)| k.as_str().map(str::to_string)).take(6).collect();
                return Err(Error::checkpoint(
                    path,
                    format!(
                        "is not a state dict: `{name}` holds {}, not a tensor (keys: {}); save `model.state_dict()` or \
                         {{'state_dict': model.state_dict()}}",
                        v.describe(),
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(out)
}

/// safetensors files start with an 8-byte header length and then the JSON header.
fn looks_like_safetensors(path: &Path) -> bool {
    let mut head = [0u8; 9];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && head[8] == b'{'
}
