//! Results on stdout without panics. `print!`/`println!` panic when stdout is closed
//! (`mtrobust … | head`) or full (`> /dev/full`); [`out!`] and [`outln!`] write through the locked
//! stdout instead and keep the first error: later output is dropped, the command finishes (its
//! files are written), and `main` turns the error into the exit status with [`finish`].
use std::io::Write;
use std::sync::Mutex;

/// The first error writing to stdout, if any.
static FAILED: Mutex<Option<std::io::Error>> = Mutex::new(None);

/// Writes `args` to stdout unless an earlier write failed.
pub fn write(args: std::fmt::Arguments) {
    let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none()
        && let Err(e) = std::io::stdout().lock().write_fmt(args)
    {
        *failed = Some(e);
    }
}

/// Flushes stdout; returns the first error of any write or of the flush.
pub fn finish() -> Option<std::io::Error> {
    let mut failed = FAILED.lock().unwrap_or_else(|e| e.into_inner());
    if failed.is_none()
        && let Err(e) = std::io::stdout().lock().flush()
    {
        *failed = Some(e);
    }
    failed.take()
}

/// `print!` that never panics (see the module docs).
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!($($arg)*)) };
}

/// `println!` that never panics (see the module docs).
macro_rules! outln {
    () => { $crate::cli::output::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::output::write(format_args!("{}\n", format_args!($($arg)*))) };
}
