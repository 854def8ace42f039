//! Writing a state dict as a `torch.save` archive that `torch.load` reads (also with
//! `weights_only=True`): an `OrderedDict` of tensors pickled with protocol 2, each tensor a
//! `torch._utils._rebuild_tensor_v2` call on its own storage, stored uncompressed and 64-byte
//! aligned as PyTorch writes them.
use super::pickle::{BININT, BINPERSID, BINUNICODE, EMPTY_TUPLE, GLOBAL, LONG1, MARK, NEWFALSE, PROTO, REDUCE, SETITEMS, STOP, TUPLE};
use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use tch::{Kind, Tensor};

/// The archive's folder name (PyTorch uses `archive` too).
const PREFIX: &str = "archive";

fn storage_class(kind: Kind) -> Option<&'static str> {
    Some(match kind {
        Kind::Float => "FloatStorage",
        Kind::Double => "DoubleStorage",
        Kind::Half => "HalfStorage",
        Kind::BFloat16 => "BFloat16Storage",
        Kind::Int64 => "LongStorage",
        Kind::Int => "IntStorage",
        Kind::Int16 => "ShortStorage",
        Kind::Int8 => "CharStorage",
        Kind::Uint8 => "ByteStorage",
        Kind::Bool => "BoolStorage",
        _ => return None,
    })
}

/// A protocol-2 pickle writer for the few opcodes a state dict needs.
struct Pickler(Vec<u8>);

impl Pickler {
    fn op(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }
    fn global(&mut self, module: &str, name: &str) {
        // GLOBAL takes its two names as text lines.
        self.op(format!("{}{module}\n{name}\n", GLOBAL as char).as_bytes());
    }
    fn str(&mut self, s: &str) {
        self.op(&[BINUNICODE]);
        self.op(&(s.len() as u32).to_le_bytes());
        self.op(s.as_bytes());
    }
    fn int(&mut self, v: i64) {
        if let Ok(small) = i32::try_from(v) {
            self.op(&[BININT]);
            self.op(&small.to_le_bytes());
        } else {
            self.op(&[LONG1, 8]);
            self.op(&v.to_le_bytes());
        }
    }
    fn int_tuple(&mut self, vs: &[i64]) {
        self.op(&[MARK]);
        for &v in vs {
            self.int(v);
        }
        self.op(&[TUPLE]);
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(&[EMPTY_TUPLE, REDUCE]);
    }
}

/// Writes `tensors` (moved to the CPU, made contiguous) as an `OrderedDict` state dict to `path`.
///
/// # Errors
/// A tensor kind PyTorch storages cannot hold, or an I/O failure.
pub fn write_state_dict(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let mut p = Pickler(vec![PROTO, 2]);
    p.empty_ordered_dict();
    p.op(&[MARK]);
    let mut storages = Vec::with_capacity(tensors.len());
    for (i, (name, t)) in tensors.iter().enumerate() {
        let class = storage_class(t.kind())
            .ok_or_else(|| Error::checkpoint(path, format!("`{name}` has kind {:?}, which torch.save cannot hold", t.kind())))?;
        let t = t.to_device(tch::Device::Cpu).contiguous();
        let numel = t.numel();
        let mut bytes = vec![0u8; numel * t.kind().elt_size_in_bytes()];
        t.f_copy_data_u8(&mut bytes, numel)?;
        storages.push(bytes);
        let size = t.size();
        let mut stride = vec![1i64; size.len()];
        for d in (0..size.len().saturating_sub(1)).rev() {
            stride[d] = stride[d + 1] * size[d + 1].max(1);
        }
        p.str(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(&[MARK]);
        // Persistent id: ('storage', torch.<Kind>Storage, key, location, numel).
        p.op(&[MARK]);
        p.str("storage");
        p.global("torch", class);
        p.str(&i.to_string());
        p.str("cpu");
        p.int(numel as i64);
        p.op(&[TUPLE, BINPERSID]);
        p.int(0);
        p.int_tuple(&size);
        p.int_tuple(&stride);
        p.op(&[NEWFALSE]); // requires_grad
        p.empty_ordered_dict(); // backward hooks
        p.op(&[TUPLE, REDUCE]);
    }
    p.op(&[SETITEMS, STOP]);
    // The archive is built in memory (a failure cannot leave a half-written zip, nor make the zip
    // writer complain on drop) and written through the one atomic write path.
    let build = || -> std::io::Result<Vec<u8>> {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored).large_file(false);
        let entry = |zip: &mut zip::ZipWriter<_>, name: String, data: &[u8]| -> std::io::Result<()> {
            zip.start_file_aligned(name, opts, 64).map_err(std::io::Error::other)?;
            zip.write_all(data)
        };
        entry(&mut zip, format!("{PREFIX}/data.pkl"), &p.0)?;
        entry(&mut zip, format!("{PREFIX}/byteorder"), b"little")?;
        for (i, bytes) in storages.iter().enumerate() {
            entry(&mut zip, format!("{PREFIX}/data/{i}"), bytes)?;
        }
        entry(&mut zip, format!("{PREFIX}/version"), b"3\n")?;
        Ok(zip.finish().map_err(std::io::Error::other)?.into_inner())
    };
    let bytes = build().map_err(|e| Error::context(format!("{}: cannot build the archive", path.display()), e))?;
    crate::files::write_bytes_atomic(path, bytes)
}
