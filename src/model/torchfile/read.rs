//! Reading `torch.save` archives: a zip holding `<name>/data.pkl` (the pickled object) and one
//! `<name>/data/<key>` entry per storage, raw little-endian bytes. Tensors are rebuilt from their
//! storage, offset, size and stride; everything else stays a [`Value`].
use super::pickle::{self, Value};
use crate::error::{Error, Result};
use std::cell::Cell;
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
    /// Bytes of tensors rebuilt so far, and the most allowed (see [`BUILD_FACTOR`]).
    built: Cell<u64>,
    build_limit: u64,
}

/// Rebuilt tensors may take at most this many times the file's size: entries share storages
/// (tied weights, views), but a crafted file could make ten thousand tensors of one storage.
const BUILD_FACTOR: u64 = 16;

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
        let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
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
        // Every byte an entry claims must be in the file, and entries must not overlap: a crafted
        // directory could otherwise claim exabytes, or point a thousand names at one large entry.
        let mut unread = file_len;
        let corrupt = |what: String| Error::checkpoint(path, format!("{what}; the archive is corrupt (re-save it with torch.save)"));
        let mut read_entry = |name: &str| -> Result<Vec<u8>> {
            let f = zip
                .by_name(name)
                .map_err(|e| Error::context(format!("checkpoint {}: cannot read `{name}` in the archive", path.display()), e))?;
            let size = f.size();
            if size > file_len {
                return Err(corrupt(format!("`{name}` claims {size} bytes but the whole file has {file_len}")));
            }
            if size > unread {
                return Err(corrupt(format!("its entries hold more bytes than the file ({file_len}): entries overlap")));
            }
            unread -= size;
            let mut out = Vec::with_capacity(size as usize);
            // One byte more than claimed, to notice an entry longer than its header says.
            f.take(size + 1).read_to_end(&mut out).map_err(|e| {
                Error::context(
                    format!("checkpoint {}: `{name}` in the archive is damaged; re-save or re-download the file", path.display()),
                    e,
                )
            })?;
            if out.len() as u64 != size {
                return Err(corrupt(format!("`{name}` holds {} bytes but its header says {size}", out.len())));
            }
            Ok(out)
        };
        if names.contains(&format!("{prefix}byteorder")) && read_entry(&format!("{prefix}byteorder"))? != b"little" {
            return Err(Error::checkpoint(path, "holds big-endian tensors; re-save it on a little-endian machine"));
        }
        let data = read_entry(&pkl)?;
        let (root, _) = pickle::unpickle(&data).map_err(|e| {
            Error::checkpoint(path, format!("cannot unpickle `{pkl}`: {e}; the file is damaged or was not written by torch.save"))
        })?;
        let mut storages = HashMap::new();
        let data_prefix = format!("{prefix}data/");
        for name in names.iter().filter(|n| n.starts_with(&data_prefix)) {
            storages.insert(name[data_prefix.len()..].to_string(), read_entry(name)?);
        }
        Ok(Archive { root, storages, built: Cell::new(0), build_limit: file_len.saturating_mul(BUILD_FACTOR) })
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
                let [storage, offset, size, stride, ..] = &call.args[..] else {
                    return Err(format!("{name} with {} arguments", call.args.len()));
                };
                let ints = |v: &Value, what: &str| -> std::result::Result<Vec<i64>, String> {
                    let items = v.items().ok_or_else(|| format!("its {what} is {}, not a tuple", v.describe()))?;
                    items.iter().map(|x| x.as_int().ok_or_else(|| format!("its {what} holds {}, not an integer", x.describe()))).collect()
                };
                let (size, stride) = (ints(size, "size")?, ints(stride, "stride")?);
                let offset = offset.as_int().ok_or_else(|| format!("its storage offset is {}, not an integer", offset.describe()))?;
                self.view(storage, offset, &size, &stride).map(Some)
            }
            "torch._utils._rebuild_parameter" | "torch._utils._rebuild_parameter_with_state" => match call.args.first() {
                Some(data) => self.tensor(data),
                None => Err(format!("{name} without data")),
            },
            _ => Ok(None),
        }
    }

    /// Rebuilds the view (`offset`, `size`, `stride`, in elements) of a storage, contiguous. Every
    /// number comes from the file: the view must lie inside the storage, computed without overflow,
    /// and have no more elements than the storage (a stride-0 view of a few bytes could otherwise
    /// claim terabytes).
    fn view(&self, storage: &Value, offset: i64, size: &[i64], stride: &[i64]) -> std::result::Result<Tensor, String> {
        const CORRUPT: &str = "the file is corrupt or crafted";
        if size.len() != stride.len() {
            return Err(format!("size {size:?} and stride {stride:?} differ in length; {CORRUPT}"));
        }
        if size.iter().any(|&n| n < 0) {
            return Err(format!("size {size:?} has a negative dimension; {CORRUPT}"));
        }
        if stride.iter().any(|&s| s < 0) {
            return Err(format!("stride {stride:?} has a negative step; {CORRUPT}"));
        }
        if offset < 0 {
            return Err(format!("storage offset {offset} is negative; {CORRUPT}"));
        }
        let (bytes, kind, numel) = self.storage(storage)?;
        let count = size
            .iter()
            .try_fold(1i64, |acc, &n| acc.checked_mul(n))
            .ok_or_else(|| format!("a view of size {size:?} has more elements than 64 bits can count; {CORRUPT}"))?;
        if count == 0 {
            return Tensor::f_zeros(size, (kind, tch::Device::Cpu)).map_err(|e| e.to_string());
        }
        let last = size
            .iter()
            .zip(stride)
            .try_fold(offset, |acc, (&n, &s)| (n - 1).checked_mul(s).and_then(|step| acc.checked_add(step)))
            .ok_or_else(|| format!("a view of size {size:?}, stride {stride:?} at offset {offset} overflows 64-bit indices; {CORRUPT}"))?;
        if last >= numel {
            return Err(format!(
                "a view of size {size:?}, stride {stride:?} at offset {offset} reaches element {last} of a storage of {numel} elements; \
                 {CORRUPT}"
            ));
        }
        if count > numel {
            return Err(format!(
                "a view of {count} elements over a storage of {numel} repeats elements (a zero stride), which state dicts do \
                 not use; save `t.contiguous()` instead"
            ));
        }
        let elt = kind.elt_size_in_bytes() as u64;
        let built = self.built.get() + count as u64 * elt;
        if built > self.build_limit {
            return Err(format!(
                "its tensors take more than {BUILD_FACTOR} times the file's size: many entries view the same storage, which a \
                 state dict does not do; {CORRUPT}"
            ));
        }
        self.built.set(built);
        // Only the elements the view spans are copied out of the storage.
        let span = &bytes[(offset as u64 * elt) as usize..((last as u64 + 1) * elt) as usize];
        let flat = Tensor::f_from_data_size(span, &[last - offset + 1], kind).map_err(|e| e.to_string())?;
        let view = flat.f_as_strided(size, stride, 0).map_err(|e| e.to_string())?;
        view.f_contiguous().map_err(|e| e.to_string())
    }

    /// The storage a persistent id names: its bytes (exactly the declared elements), element
    /// kind and element count.
    fn storage(&self, pid: &Value) -> std::result::Result<(&[u8], Kind, i64), String> {
        let Value::PersistentId(pid) = pid else { return Err(format!("a tensor whose storage is {}", pid.describe())) };
        let items = pid.items().unwrap_or_default();
        let [tag, ty, key, _location, numel, ..] = items.as_slice() else { return Err("a malformed storage reference".into()) };
        if tag.as_str() != Some("storage") {
            return Err("a storage reference without the `storage` tag".into());
        }
        let kind = storage_kind(ty).ok_or_else(|| format!("storages of type {} are not supported", ty.describe()))?;
        let key = key.as_str().ok_or("a storage key that is not a string")?;
        let numel = numel.as_int().ok_or("a storage size that is not an integer")?;
        if numel < 0 {
            return Err(format!("storage `{key}` declares {numel} elements; the file is corrupt or crafted"));
        }
        let bytes = self.storages.get(key).ok_or_else(|| format!("storage `{key}` is missing from the archive"))?;
        let want = (numel as u64).checked_mul(kind.elt_size_in_bytes() as u64).filter(|&w| w <= bytes.len() as u64);
        let Some(want) = want else {
            return Err(format!(
                "storage `{key}` holds {} bytes, too few for {numel} {} elements; the file is truncated or corrupt",
                bytes.len(),
                format!("{kind:?}").to_lowercase()
            ));
        };
        Ok((&bytes[..want as usize], kind, numel))
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

#[cfg(test)]
mod tests {
    use super::*;
    use pickle::*;
    use std::path::PathBuf;

    fn str(p: &mut Vec<u8>, s: &str) {
        p.push(BINUNICODE);
        p.extend((s.len() as u32).to_le_bytes());
        p.extend(s.as_bytes());
    }

    fn int(p: &mut Vec<u8>, v: i64) {
        p.extend([LONG1, 8]);
        p.extend(v.to_le_bytes());
    }

    fn ints(p: &mut Vec<u8>, vs: &[i64]) {
        p.push(MARK);
        for &v in vs {
            int(p, v);
        }
        p.push(TUPLE);
    }

    /// Appends a `_rebuild_tensor_v2` call: a view (offset, size, stride) of float storage `0`,
    /// which declares `numel` elements.
    fn tensor_call(p: &mut Vec<u8>, numel: i64, offset: i64, size: &[i64], stride: &[i64]) {
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
        p.extend([MARK, MARK]);
        str(p, "storage");
        p.extend(b"ctorch\nFloatStorage\n");
        str(p, "0");
        str(p, "cpu");
        int(p, numel);
        p.extend([TUPLE, BINPERSID]);
        int(p, offset);
        ints(p, size);
        ints(p, stride);
        p.extend([TUPLE, REDUCE]);
    }

    /// A pickled state dict `{"w": <tensor>}` (see [`tensor_call`]).
    fn tensor_pickle(numel: i64, offset: i64, size: &[i64], stride: &[i64]) -> Vec<u8> {
        let mut p = vec![PROTO, 2, EMPTY_DICT];
        str(&mut p, "w");
        tensor_call(&mut p, numel, offset, size, stride);
        p.extend([SETITEM, STOP]);
        p
    }

    /// A torch.save-like zip written by the zip crate.
    fn archive(path: &Path, entries: &[(&str, &[u8])]) -> PathBuf {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
        let stored = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            zip.start_file(*name, stored).unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap();
        path.to_path_buf()
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }

    /// An entry of [`hand_zip`]: name, data, the entry whose local header to point at (its own
    /// when `None`), the claimed uncompressed size (the real one when `None`; above 32 bits it goes
    /// into a zip64 extra field).
    type Entry<'a> = (&'a str, &'a [u8], Option<usize>, Option<u64>);

    /// A stored zip written byte by byte.
    fn hand_zip(entries: &[Entry]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut offsets = Vec::new();
        for (i, (name, data, points_at, _)) in entries.iter().enumerate() {
            offsets.push(out.len() as u32);
            if points_at.is_some_and(|t| t != i) {
                continue;
            }
            out.extend(0x0403_4b50u32.to_le_bytes());
            out.extend([45, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method, time, date
            out.extend(crc32(data).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((data.len() as u32).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend(0u16.to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(*data);
        }
        let cd_start = out.len() as u32;
        for (i, (name, _, points_at, claimed)) in entries.iter().enumerate() {
            let target = points_at.unwrap_or(i);
            let (_, tdata, _, _) = entries[target];
            let claimed = claimed.unwrap_or(tdata.len() as u64);
            let zip64 = claimed >= u64::from(u32::MAX);
            out.extend(0x0201_4b50u32.to_le_bytes());
            out.extend([45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, method, time, date
            out.extend(crc32(tdata).to_le_bytes());
            out.extend((tdata.len() as u32).to_le_bytes());
            out.extend((if zip64 { u32::MAX } else { claimed as u32 }).to_le_bytes());
            out.extend((name.len() as u16).to_le_bytes());
            out.extend((if zip64 { 12u16 } else { 0 }).to_le_bytes());
            out.extend([0; 10]); // comment length, disk, attributes
            out.extend(offsets[target].to_le_bytes());
            out.extend(name.as_bytes());
            if zip64 {
                out.extend(1u16.to_le_bytes());
                out.extend(8u16.to_le_bytes());
                out.extend(claimed.to_le_bytes());
            }
        }
        let cd_len = out.len() as u32 - cd_start;
        out.extend(0x0605_4b50u32.to_le_bytes());
        out.extend([0; 4]);
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend((entries.len() as u16).to_le_bytes());
        out.extend(cd_len.to_le_bytes());
        out.extend(cd_start.to_le_bytes());
        out.extend([0; 2]);
        out
    }

    fn floats(n: usize) -> Vec<u8> {
        (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
    }

    #[test]
    fn hand_made_zips_read_like_the_crate_written_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ok.pt");
        let pkl = tensor_pickle(4, 0, &[2, 2], &[2, 1]);
        std::fs::write(&path, hand_zip(&[("archive/data.pkl", &pkl, None, None), ("archive/data/0", &floats(4), None, None)])).unwrap();
        let sd = read_state_dict(&path).unwrap();
        assert_eq!(sd[0].1.size(), [2, 2]);
        assert_eq!(Vec::<f32>::try_from(sd[0].1.flatten(0, -1)).unwrap(), [0.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn entries_claiming_more_than_the_file_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let pkl = tensor_pickle(4, 0, &[4], &[1]);
        let data = floats(4);
        for claimed in [1u64 << 62, u64::from(u32::MAX) - 1, 1 << 30] {
            let path = dir.path().join(format!("claims{claimed}.pt"));
            std::fs::write(&path, hand_zip(&[("archive/data.pkl", &pkl, None, Some(claimed)), ("archive/data/0", &data, None, None)]))
                .unwrap();
            let e = read_state_dict(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("`archive/data.pkl` claims {claimed} bytes")) && e.contains("the whole file has"), "{e}");
        }
        // An entry longer than its header says.
        let path = dir.path().join("short_claim.pt");
        std::fs::write(
            &path,
            hand_zip(&[("archive/data.pkl", &pkl, None, Some(pkl.len() as u64 - 1)), ("archive/data/0", &data, None, None)]),
        )
        .unwrap();
        let e = read_state_dict(&path).unwrap_err().to_string();
        assert!(e.contains(&format!("`archive/data.pkl` holds {} bytes but its header says {}", pkl.len(), pkl.len() - 1)), "{e}");
        // A thousand storages that all point at the same 256 KiB: 256 MiB read from a 300 KiB file.
        let big = floats(1 << 16);
        let names: Vec<String> = (0..1000).map(|i| format!("archive/data/{i}")).collect();
        let mut entries: Vec<Entry> = vec![("archive/data.pkl", b"\x80\x02}.", None, None)];
        entries.extend(names.iter().map(|n| (n.as_str(), &big[..], Some(1), None)));
        let path = dir.path().join("overlap.pt");
        std::fs::write(&path, hand_zip(&entries)).unwrap();
        let e = read_state_dict(&path).unwrap_err().to_string();
        assert!(e.contains("entries hold more bytes than the file") && e.contains("overlap"), "{e}");
    }

    #[test]
    fn tensor_views_must_fit_their_storage() {
        let dir = tempfile::tempdir().unwrap();
        let data = floats(4);
        let read = |numel: i64, offset: i64, size: &[i64], stride: &[i64]| {
            let path = dir.path().join("t.pt");
            archive(&path, &[("archive/data.pkl", &tensor_pickle(numel, offset, size, stride)), ("archive/data/0", &data)]);
            read_state_dict(&path)
        };
        let t = &read(4, 1, &[3], &[1]).unwrap()[0].1;
        assert_eq!(Vec::<f32>::try_from(t).unwrap(), [1.0, 2.0, 3.0]);
        let t = &read(4, 0, &[2, 2], &[1, 2]).unwrap()[0].1;
        assert_eq!(Vec::<f32>::try_from(t.flatten(0, -1)).unwrap(), [0.0, 2.0, 1.0, 3.0]);
        assert_eq!(read(4, 0, &[0, 5], &[5, 1]).unwrap()[0].1.size(), [0, 5]);
        for (numel, offset, size, stride, want) in [
            (4, 0, &[0, -1][..], &[1, 1][..], "entry `w`: size [0, -1] has a negative dimension"),
            (4, 0, &[3], &[-1], "entry `w`: stride [-1] has a negative step"),
            (4, -1, &[2], &[1], "entry `w`: storage offset -1 is negative"),
            (4, 3, &[2], &[1], "entry `w`: a view of size [2], stride [1] at offset 3 reaches element 4 of a storage of 4"),
            (4, 0, &[1 << 40], &[0], "entry `w`: a view of 1099511627776 elements over a storage of 4"),
            (4, 0, &[i64::MAX, 2], &[2, 1], "entry `w`: a view of size [9223372036854775807, 2]"),
            (4, i64::MAX, &[2], &[1], "entry `w`: a view of size [2], stride [1] at offset 9223372036854775807"),
            (4, 0, &[2], &[1, 1], "entry `w`: size [2] and stride [1, 1] differ in length"),
            (1 << 62, 0, &[1], &[1], "entry `w`: storage `0` holds 16 bytes, too few for 4611686018427387904 float elements"),
            (-1, 0, &[1], &[1], "entry `w`: storage `0` declares -1 elements"),
            (5, 0, &[1], &[1], "entry `w`: storage `0` holds 16 bytes, too few for 5 float elements"),
        ] {
            let e = read(numel, offset, size, stride).unwrap_err().to_string();
            assert!(e.contains(want), "{e}\n  wanted: {want}");
        }
    }

    #[test]
    fn many_entries_viewing_one_storage_are_bounded() {
        // 100 entries, each the whole of one 64 KiB storage: 6.4 MB of tensors from a 70 KB file.
        let dir = tempfile::tempdir().unwrap();
        let mut p = vec![PROTO, 2, EMPTY_DICT, MARK];
        for i in 0..100 {
            str(&mut p, &format!("w{i}"));
            tensor_call(&mut p, 16384, 0, &[16384], &[1]);
        }
        p.extend([SETITEMS, STOP]);
        let path = archive(&dir.path().join("shared.pt"), &[("archive/data.pkl", &p), ("archive/data/0", &floats(16384))]);
        let e = read_state_dict(&path).unwrap_err().to_string();
        assert!(e.contains("shared.pt") && e.contains("take more than 16 times the file's size"), "{e}");
        // Tied weights, a few entries sharing a storage, still read.
        let mut p = vec![PROTO, 2, EMPTY_DICT, MARK];
        for i in 0..4 {
            str(&mut p, &format!("w{i}"));
            tensor_call(&mut p, 16384, 0, &[128, 128], &[128, 1]);
        }
        p.extend([SETITEMS, STOP]);
        let path = archive(&dir.path().join("tied.pt"), &[("archive/data.pkl", &p), ("archive/data/0", &floats(16384))]);
        assert_eq!(read_state_dict(&path).unwrap().len(), 4);
    }

    #[test]
    fn deep_pickles_in_archives_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut pkl = vec![PROTO, 2];
        pkl.extend([EMPTY_LIST].repeat(100_000));
        pkl.extend([APPEND].repeat(99_999));
        pkl.push(STOP);
        let path = archive(&dir.path().join("deep.pt"), &[("archive/data.pkl", &pkl)]);
        let e = read_state_dict(&path).unwrap_err().to_string();
        assert!(e.contains("deep.pt") && e.contains("cannot unpickle `archive/data.pkl`") && e.contains("nested deeper than 256"), "{e}");
    }
}
