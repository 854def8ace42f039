//! Safe wrappers over `csrc/shim.cpp` (compiled by build.rs): libtorch switches tch does not
//! expose. Tensors cross as tch's raw `C_tensor` pointers; a returned pointer is a new tensor the
//! caller owns (torch-sys's convention).
use std::ffi::c_void;
use tch::{Device, Tensor};

unsafe extern "C" {
    fn mt_autocast_enter(cuda: i32, prev_enabled: *mut i32, prev_dtype: *mut i32) -> i32;
    fn mt_autocast_exit(cuda: i32, prev_enabled: i32, prev_dtype: i32) -> i32;
    fn mt_autocast_is_enabled(cuda: i32) -> i32;
    fn mt_set_tf32(enabled: i32) -> i32;
    fn mt_channels_last(t: *mut c_void) -> *mut c_void;
    fn mt_channels_last_(t: *mut c_void) -> i32;
    fn mt_is_channels_last(t: *mut c_void) -> i32;
    fn mt_cuda_peak_bytes(device: i32) -> i64;
    fn mt_cuda_reset_peak(device: i32) -> i32;
    fn mt_cuda_empty_cache() -> i32;
    fn mt_flops_begin() -> i32;
    fn mt_flops_end() -> f64;
    fn mt_set_flush_denormal(on: i32) -> i32;
}

fn is_cuda(device: Device) -> i32 {
    i32::from(matches!(device, Device::Cuda(_)))
}

fn ptr(t: &Tensor) -> *mut c_void {
    t.as_ptr() as *mut c_void
}

/// bf16 autocast on `device`'s type while alive (thread-local in libtorch, like PyTorch's
/// `torch.autocast`); dropping it restores the previous state and clears the weight-cast cache.
#[derive(Debug)]
pub struct AutocastGuard {
    cuda: i32,
    prev_enabled: i32,
    prev_dtype: i32,
}

/// Enters bf16 autocast for `device`.
pub fn autocast_bf16(device: Device) -> AutocastGuard {
    let (mut prev_enabled, mut prev_dtype) = (0, 0);
    let cuda = is_cuda(device);
    // SAFETY: plain values and two out-pointers to live locals.
    let rc = unsafe { mt_autocast_enter(cuda, &mut prev_enabled, &mut prev_dtype) };
    assert_eq!(rc, 0, "libtorch refused to enable autocast");
    AutocastGuard { cuda, prev_enabled, prev_dtype }
}

impl Drop for AutocastGuard {
    fn drop(&mut self) {
        // SAFETY: plain values.
        unsafe { mt_autocast_exit(self.cuda, self.prev_enabled, self.prev_dtype) };
    }
}

/// Whether autocast is on for `device`'s type in this thread.
pub fn autocast_enabled(device: Device) -> bool {
    // SAFETY: a plain value.
    unsafe { mt_autocast_is_enabled(is_cuda(device)) == 1 }
}

/// Whether [`set_tf32`] last turned TF32 matmuls on.
static TF32: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// CUDA matmuls in TF32 (`true`) or IEEE fp32 (libtorch's default), like
/// `torch.set_float32_matmul_precision("high" | "highest")`; cuDNN convolutions stay in TF32,
/// libtorch's default. Process-wide. Only a change from the last call touches libtorch, so an
/// fp32 model leaves a precision its library user set alone.
pub fn set_tf32(enabled: bool) {
    if TF32.swap(enabled, std::sync::atomic::Ordering::SeqCst) != enabled {
        // SAFETY: a plain value.
        let rc = unsafe { mt_set_tf32(i32::from(enabled)) };
        debug_assert_eq!(rc, 0, "libtorch refused the matmul precision");
    }
}

/// `x` in channels-last memory format (same values, NHWC strides); other ranks unchanged.
pub fn channels_last(x: &Tensor) -> Tensor {
    if x.dim() != 4 {
        return x.shallow_clone();
    }
    // SAFETY: `x` is a live tensor; the result is a new heap tensor whose ownership passes to us.
    let p = unsafe { mt_channels_last(ptr(x)) };
    assert!(!p.is_null(), "libtorch failed to make a channels-last copy of a {:?} tensor", x.size());
    // SAFETY: `p` is a fresh `torch::Tensor*` (torch-sys's C_tensor).
    unsafe { Tensor::from_ptr(p as *mut _) }
}

/// Re-lays a 4-d variable out as channels-last in place (other ranks untouched).
pub fn channels_last_in_place(x: &Tensor) {
    // SAFETY: `x` is a live tensor; set_data keeps its identity.
    unsafe { mt_channels_last_(ptr(x)) };
}

/// Whether a 4-d tensor has channels-last strides.
pub fn is_channels_last(x: &Tensor) -> bool {
    // SAFETY: `x` is a live tensor.
    unsafe { mt_is_channels_last(ptr(x)) == 1 }
}

/// The CUDA caching allocator's peak allocated bytes on `device` since the last reset (None on
/// CPU or without CUDA).
pub fn cuda_peak_bytes(device: Device) -> Option<u64> {
    let Device::Cuda(i) = device else { return None };
    // SAFETY: a plain value.
    let b = unsafe { mt_cuda_peak_bytes(i as i32) };
    u64::try_from(b).ok()
}

/// Resets the CUDA peak statistics of `device` (nothing on CPU).
pub fn cuda_reset_peak(device: Device) {
    if let Device::Cuda(i) = device {
        // SAFETY: a plain value.
        unsafe { mt_cuda_reset_peak(i as i32) };
    }
}

/// Returns cached unused CUDA blocks to the driver (after an out-of-memory probe).
pub fn cuda_empty_cache() {
    // SAFETY: no arguments.
    unsafe { mt_cuda_empty_cache() };
}

/// The FLOPs of what `f` runs on this thread: 2 × the multiply-accumulates of every convolution
/// (from its input and weight shapes, stride, padding and dilation) and matrix product
/// (addmm, mm, bmm), counted by a libtorch RecordFunction observer as PyTorch's profiler does.
/// Element-wise operations, normalisation and pooling are not counted (conventional, and
/// negligible next to the convolutions).
pub fn count_flops<T>(f: impl FnOnce() -> T) -> (T, f64) {
    // SAFETY: no arguments; the observer is thread-local and removed by mt_flops_end.
    unsafe { mt_flops_begin() };
    let out = f();
    // SAFETY: as above.
    let flops = unsafe { mt_flops_end() };
    (out, flops)
}

/// Flushes denormal floats to zero (`on`) or keeps them (libtorch's default) in this thread's
/// CPU arithmetic, like `torch.set_flush_denormal`; false when the CPU cannot (no SSE3).
pub fn set_flush_denormal(on: bool) -> bool {
    // SAFETY: a plain value.
    unsafe { mt_set_flush_denormal(i32::from(on)) == 1 }
}
