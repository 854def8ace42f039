//! Content digests (SHA-256, hex): what identifies a checkpoint, a dataset split, a run or a
//! study cell independently of where the files live.
//!
//! ```
//! use mtrobust::digest::{bytes_digest, json_digest};
//! assert_eq!(bytes_digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
//! // Equal values give equal digests, whatever the order the fields were built in.
//! assert_eq!(json_digest(&serde_json::json!({"a": 1, "b": 2})), json_digest(&serde_json::json!({"b": 2, "a": 1})));
//! ```
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Hex SHA-256 of `bytes`.
pub fn bytes_digest(bytes: impl AsRef<[u8]>) -> String {
    hex(&Sha256::digest(bytes.as_ref()))
}

/// Hex SHA-256 of the canonical JSON of `value` (serde's field order is the declaration order,
/// so the same value always gives the same digest).
pub fn json_digest(value: &impl serde::Serialize) -> String {
    bytes_digest(serde_json::to_vec(value).expect("serialisable"))
}

/// Hex SHA-256 of the files' contents, in order.
///
/// # Errors
/// An unreadable file.
pub fn files_digest(paths: &[&Path]) -> Result<String> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    for path in paths {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(*path, e))?;
        loop {
            let n = f.read(&mut buf).map_err(|e| Error::io(*path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(bytes_digest(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "a").unwrap();
        std::fs::write(&b, "bc").unwrap();
        assert_eq!(files_digest(&[&a, &b]).unwrap(), bytes_digest(b"abc"));
    }
}
