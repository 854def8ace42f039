//! Safe output files: every result is written to a temporary file in the same directory and
//! renamed over its final name, so a crash or a full disk never leaves a truncated result, and a
//! symlink at the final name is replaced rather than followed. A directory that a run writes
//! into is locked for the duration of the run (an advisory `flock`, released by the kernel
//! even when the process is killed), so two runs never interleave their files.
//!
//! ```
//! use mtrobust::files::{write_atomic, write_bytes_atomic};
//! use std::io::Write;
//!
//! let dir = std::env::temp_dir().join(format!("mtrobust-doc-files-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("result.txt");
//! write_bytes_atomic(&path, "first")?;
//! write_atomic(&path, |w| w.write_all(b"second"))?;
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
//! // Only the result is there: the temporary file was renamed over it.
//! assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), mtrobust::Error>(())
//! ```
use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `path` atomically: `write` fills a temporary sibling, which is flushed, synced and
/// renamed over `path`. On any error the temporary file is removed and `path` is untouched.
///
/// # Errors
/// I/O failures (named with the path), or whatever `write` returns.
pub fn write_atomic(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().ok_or_else(|| Error::data(path, "is not a file path"))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let result = (|| {
        let mut w = BufWriter::new(File::create_new(&tmp)?);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// [`write_atomic`] of a byte string.
///
/// # Errors
/// I/O failures.
pub fn write_bytes_atomic(path: &Path, bytes: impl AsRef<[u8]>) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes.as_ref()))
}

/// An exclusive lock on a directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

/// The lock file's name inside a locked directory.
pub const LOCK_FILE: &str = ".mtrobust.lock";

impl DirLock {
    /// Creates `dir` if needed and locks it, failing at once when another process holds it.
    ///
    /// # Errors
    /// The directory cannot be created, or another run holds the lock.
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(std::fs::TryLockError::WouldBlock) => {
                Err(Error::data(dir, "another mtrobust run is writing into this directory; wait for it to finish or choose another output"))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_a_symlink_instead_of_following_it() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious.txt");
        std::fs::write(&target, "keep me").unwrap();
        let link = dir.path().join("out.txt");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_bytes_atomic(&link, "result").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "result");
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, "old").unwrap();
        let err = write_atomic(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.unwrap_err().chain().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left behind");
    }

    #[test]
    fn a_directory_is_locked_once() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DirLock::acquire(dir.path()).unwrap();
        let again = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(again.contains("another mtrobust run"), "{again}");
        drop(lock);
        DirLock::acquire(dir.path()).unwrap();
    }
}
