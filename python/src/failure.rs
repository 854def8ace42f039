//! Python exceptions through the Rust core and back. A callback into Python (the module's
//! forward, a custom loss) that raises turns into an `mtrobust::Error` naming the module or task,
//! so the core's control flow is unchanged; the exception itself is kept here, per thread, and
//! becomes the `__cause__` of the error raised to the caller (a `KeyboardInterrupt` is re-raised
//! as it is, so Ctrl-C stops an attack between two steps).
use pyo3::create_exception;
use pyo3::exceptions::{PyKeyboardInterrupt, PyValueError};
use pyo3::prelude::*;
use std::cell::RefCell;

create_exception!(
    _core,
    MtrobustError,
    PyValueError,
    "An error of mtrobust's core: bad input (a task's output, target or loss), a parameter out of range, data that cannot be read. The message names what and how to fix it; a Python exception that caused it is its __cause__."
);

thread_local! {
    static CAUSE: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Keeps `e` as the cause of the error the current call will raise.
pub fn stash(e: PyErr) {
    CAUSE.with(|c| *c.borrow_mut() = Some(e));
}

/// Forgets a cause left by an earlier call.
pub fn clear() {
    CAUSE.with(|c| c.borrow_mut().take());
}

/// The Python exception for a core error: `MtrobustError` with the core's message (the one the
/// command line prints) and the stashed Python exception as its cause.
pub fn to_py(py: Python<'_>, e: &mtrobust::Error) -> PyErr {
    let cause = CAUSE.with(|c| c.borrow_mut().take());
    if let Some(c) = &cause
        && c.is_instance_of::<PyKeyboardInterrupt>(py)
    {
        return c.clone_ref(py);
    }
    let err = MtrobustError::new_err(e.chain());
    err.set_cause(py, cause);
    err
}

/// A short `Type: message` of a Python exception, for core error messages.
pub fn describe(py: Python<'_>, e: &PyErr) -> String {
    let kind = e.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    format!("{kind}: {}", e.value(py))
}
