//! Tensors across the boundary without a copy: a `torch.Tensor` and a `tch::Tensor` are two
//! handles to one `at::Tensor`, so storage, `requires_grad` and `grad_fn` are shared
//! (torch's own `THPVariable_Wrap` / `THPVariable_Unpack`, through tch's `python-extension`).
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use tch::Tensor;

/// `t` as a `torch.Tensor` (a second handle, same storage and autograd history).
///
/// # Errors
/// A tensor torch cannot wrap (an undefined one).
pub fn to_py<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyAny>> {
    let ptr = t.pyobject_wrap().map_err(|e| PyValueError::new_err(format!("cannot hand a tensor to torch: {e}")))?;
    // SAFETY: THPVariable_Wrap returns a new reference, or null with a Python error set.
    unsafe { Bound::from_owned_ptr_or_err(py, ptr as *mut pyo3::ffi::PyObject) }
}

/// The `tch::Tensor` behind a `torch.Tensor`; `what` names the value in the error otherwise.
///
/// # Errors
/// `obj` is not a `torch.Tensor` (TypeError naming `what`).
pub fn from_py(obj: &Bound<'_, PyAny>, what: &dyn Fn() -> String) -> PyResult<Tensor> {
    let ptr = obj.as_ptr() as *mut tch::python::CPyObject;
    // SAFETY: `obj` is a live Python object and the GIL is held for the duration of the call.
    match unsafe { Tensor::pyobject_unpack(ptr) } {
        Ok(Some(t)) => Ok(t),
        Ok(None) => {
            let kind = obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into());
            Err(PyTypeError::new_err(format!("{}: expected a torch.Tensor, got {kind}", what())))
        }
        Err(e) => Err(PyValueError::new_err(format!("{}: {e}", what()))),
    }
}
