//! Safe output files, the one way mtrobust writes anything: every result is written to a fresh
//! temporary file in the same directory (created exclusively, so a planted symlink is never
//! followed), synced, and renamed over its final name, so a crash or a full disk never leaves a
//! truncated result, and a symlink at the final name is replaced rather than followed. Commands
//! refuse to replace an existing output unless told to ([`check_new_output`]). A directory that a
//! run writes into is locked for the duration of the run (an advisory `flock`, released by the
//! kernel even when the process is killed), so two runs never interleave their files.
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
    let staged = stage(path, write)?;
    staged.commit()
}

/// A temporary file written and synced beside its final name, renamed over it by
/// [`Staged::commit`] and removed when dropped uncommitted.
#[derive(Debug)]
pub struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the temporary file over the final name.
    ///
    /// # Errors
    /// The rename fails (the temporary file is removed).
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `path`'s content to a fresh temporary sibling (created exclusively: never through a
/// link) and syncs it, without renaming yet; see [`write_files_atomic`].
///
/// # Errors
/// I/O failures, named with the final path.
pub fn stage(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<Staged> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let name = path.file_name().ok_or_else(|| Error::data(path, "is not a file path"))?.to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
    let file = File::create_new(&tmp).map_err(|e| Error::io(path, e))?;
    let staged = Staged { tmp, path: path.to_path_buf(), committed: false };
    let result = (|| {
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    })();
    result.map_err(|e| Error::io(path, e))?;
    Ok(staged)
}

/// Writes several files that belong together (a checkpoint's weights and sidecar): every one is
/// staged first, then all are renamed in order, so a failure while writing (a full disk) leaves
/// every final name untouched.
///
/// # Errors
/// I/O failures; no temporary file is left behind.
pub fn write_files_atomic(files: &[(&Path, &[u8])]) -> Result<()> {
    // A directory at a final name would make its rename fail after the others: refuse it first.
    if let Some((path, _)) = files.iter().find(|(p, _)| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())) {
        return Err(Error::data(path, "is a directory; nothing was written"));
    }
    let staged = files.iter().map(|(path, bytes)| stage(path, |w| w.write_all(bytes))).collect::<Result<Vec<_>>>()?;
    staged.into_iter().try_for_each(Staged::commit)
}

/// Encodes `image` as PNG in memory and writes it atomically.
///
/// # Errors
/// Encoding or I/O failures, named with the path.
pub fn write_png<P, C>(path: &Path, image: &image::ImageBuffer<P, C>) -> Result<()>
where
    P: image::PixelWithColorType,
    [P::Subpixel]: image::EncodableLayout,
    C: std::ops::Deref<Target = [P::Subpixel]>,
{
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::context(format!("{}: cannot encode the PNG", path.display()), e))?;
    write_bytes_atomic(path, png)
}

/// Refuses an output path that already exists (a file, a symlink, anything) unless `force`; a
/// directory is refused even with `force`. The check every command makes before writing a file
/// the user named.
///
/// # Errors
/// The path exists: the error says how to proceed.
pub fn check_new_output(path: &Path, force: bool) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => Err(Error::data(path, "is a directory; give a file name")),
        Ok(_) if force => Ok(()),
        Ok(m) => {
            let what = if m.file_type().is_symlink() { "a symlink" } else { "a file" };
            Err(Error::data(path, format!("already exists ({what}); choose another output, or pass --force to replace it")))
        }
    }
}

/// Refuses to write into `dir` when it holds entries that `ours` does not recognise (files a user
/// put there, another program's output): a run writes only into a new or empty directory, or one
/// of its own runs. A missing directory is fine.
///
/// # Errors
/// `dir` is a file, or holds foreign entries (up to three are named).
pub fn refuse_foreign_entries(dir: &Path, ours: impl Fn(&Path) -> bool) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir()) {
        return Err(Error::data(dir, "is not a directory; give a new or empty directory"));
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut foreign: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_name() != LOCK_FILE && !ours(&e.path()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    foreign.sort();
    let shown = foreign.iter().take(3).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
    let more = if foreign.len() > 3 { format!(" and {} more", foreign.len() - 3) } else { String::new() };
    Err(Error::data(
        dir,
        format!(
            "holds files mtrobust did not write ({shown}{more}); choose a new or empty directory, so that nothing of yours is overwritten"
        ),
    ))
}

/// Opens `path` for appending (created when absent) without following a symlink at it.
///
/// # Errors
/// I/O failures, a symlink at `path` among them.
pub fn open_append(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().create(true).append(true).custom_flags(libc::O_NOFOLLOW).open(path).map_err(|e| Error::io(path, e))
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
    fn staged_files_are_renamed_together_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("w.safetensors"), dir.path().join("w.json"));
        write_files_atomic(&[(&a, b"weights"), (&b, b"sidecar")]).unwrap();
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "sidecar");
        // A second file that cannot be staged (its folder is a file) leaves the first untouched.
        let bad = dir.path().join("w.safetensors").join("x.json");
        assert!(write_files_atomic(&[(&a, b"new"), (&bad, b"x")]).is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "weights");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2, "no temporary file left behind");
    }

    #[test]
    fn existing_outputs_and_symlinks_are_refused_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fig.png");
        assert!(check_new_output(&file, false).is_ok());
        std::fs::write(&file, "x").unwrap();
        assert!(check_new_output(&file, false).unwrap_err().to_string().contains("--force"));
        assert!(check_new_output(&file, true).is_ok());
        let link = dir.path().join("link.png");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert!(check_new_output(&link, false).unwrap_err().to_string().contains("a symlink"));
        assert!(check_new_output(dir.path(), true).is_err());
        // Appending never goes through a link.
        assert!(open_append(&link).is_err());
        assert_eq!(std::fs::read_to_string("/etc/passwd").map(|t| t.is_empty()).ok(), Some(false));
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
