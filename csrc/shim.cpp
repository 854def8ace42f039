// The few libtorch switches tch does not expose: autocast per device, TF32 on CUDA, channels-last
// memory format, and the CUDA caching allocator's statistics. Compiled by build.rs with the cc
// crate against $LIBTORCH/include, like torch-sys's own libtch/torch_api.cpp.
//
// Tensors cross the boundary as tch's `C_tensor*`, which is a heap `torch::Tensor*` (see
// torch-sys libtch/torch_api.h): a returned pointer is a new tensor owned by the Rust caller
// (`Tensor::from_ptr`). Every function catches C++ exceptions; failures return a negative value
// or a null pointer, never unwind into Rust.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/record_function.h>
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/core/GradMode.h>
#include <cstdint>

namespace {
at::DeviceType device_type(int cuda) { return cuda ? at::kCUDA : at::kCPU; }

// FLOP counting: a thread-local RecordFunction observer (the mechanism of PyTorch's profiler)
// adds 2 × multiply-accumulates of every convolution and matrix product it sees.
thread_local double flops = 0.0;
thread_local bool counting = false;
thread_local at::CallbackHandle handle = 0;

std::vector<int64_t> sizes(const c10::IValue &v) {
  if (v.isTensor()) return v.toTensor().sizes().vec();
  return {};
}

std::vector<int64_t> ints(const c10::IValue &v) {
  if (v.isIntList()) return v.toIntVector();
  return {};
}

std::unique_ptr<at::ObserverContext> on_op(const at::RecordFunction &fn) {
  if (!counting) return nullptr;
  const std::string name = fn.name();
  auto in = fn.inputs();
  if (name == "aten::convolution" && in.size() >= 9) {
    auto x = sizes(in[0]), w = sizes(in[1]);
    auto stride = ints(in[3]), pad = ints(in[4]), dil = ints(in[5]);
    bool transposed = in[6].isBool() && in[6].toBool();
    if (x.size() < 3 || w.size() != x.size()) return nullptr;
    double per_out = 1.0;  // MACs per output element: (Cin/groups) × kernel volume
    for (size_t i = 1; i < w.size(); ++i) per_out *= static_cast<double>(w[i]);
    if (transposed) {
      // Every input element meets (Cout/groups) × kernel volume weights.
      double n = 1.0;
      for (auto d : x) n *= static_cast<double>(d);
      flops += 2.0 * n * per_out;
      return nullptr;
    }
    double out = static_cast<double>(x[0]) * static_cast<double>(w[0]);
    for (size_t i = 2; i < x.size(); ++i) {
      size_t j = i - 2;
      int64_t s = j < stride.size() ? stride[j] : 1, p = j < pad.size() ? pad[j] : 0, d = j < dil.size() ? dil[j] : 1;
      int64_t o = (x[i] + 2 * p - d * (w[i] - 1) - 1) / s + 1;
      out *= static_cast<double>(o);
    }
    flops += 2.0 * out * per_out;
  } else if ((name == "aten::addmm" && in.size() >= 3) || (name == "aten::mm" && in.size() >= 2) ||
             (name == "aten::bmm" && in.size() >= 2)) {
    size_t first = name == "aten::addmm" ? 1 : 0;
    auto a = sizes(in[first]), b = sizes(in[first + 1]);
    if (a.size() < 2 || b.size() < 2) return nullptr;
    double n = 2.0 * static_cast<double>(b.back());
    for (auto d : a) n *= static_cast<double>(d);
    flops += n;
  }
  return nullptr;
}
}  // namespace

extern "C" {

// Turns bf16 autocast on for a device and enters one autocast nesting level. Writes the previous
// enabled flag and dtype (a c10::ScalarType code) so that mt_autocast_exit can restore them.
int mt_autocast_enter(int cuda, int *prev_enabled, int *prev_dtype) {
  try {
    auto dev = device_type(cuda);
    *prev_enabled = at::autocast::is_autocast_enabled(dev) ? 1 : 0;
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::set_autocast_dtype(dev, at::kBFloat16);
    at::autocast::increment_nesting();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Restores what mt_autocast_enter saw and, leaving the outermost level, drops the cache of
// bf16 weight copies (stale once the weights change, e.g. after an optimiser step).
int mt_autocast_exit(int cuda, int prev_enabled, int prev_dtype) {
  try {
    auto dev = device_type(cuda);
    at::autocast::set_autocast_enabled(dev, prev_enabled != 0);
    at::autocast::set_autocast_dtype(dev, static_cast<at::ScalarType>(prev_dtype));
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    return 0;
  } catch (...) {
    return -1;
  }
}

// 1 while autocast is on for the device (for tests).
int mt_autocast_is_enabled(int cuda) {
  try {
    return at::autocast::is_autocast_enabled(device_type(cuda)) ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// CUDA matmuls in TF32 (enabled) or IEEE fp32 (libtorch's default). cuDNN convolutions use TF32
// either way (libtorch's default, left alone). Through torch.set_float32_matmul_precision's setter,
// which keeps the legacy and the per-backend precision settings consistent. Process-wide.
int mt_set_tf32(int enabled) {
  try {
    at::globalContext().setFloat32MatmulPrecision(enabled ? "high" : "highest");
    return 0;
  } catch (...) {
    return -1;
  }
}

// A channels-last copy (or the tensor itself when already so) of a 4-d tensor; null on failure.
void *mt_channels_last(void *t) {
  try {
    auto *x = static_cast<at::Tensor *>(t);
    return new at::Tensor(x->contiguous(at::MemoryFormat::ChannelsLast));
  } catch (...) {
    return nullptr;
  }
}

// Re-lays a variable's storage out as channels-last in place (its identity, gradient flag and
// optimiser state stay), like PyTorch's `module.to(memory_format=torch.channels_last)`.
int mt_channels_last_(void *t) {
  try {
    auto *x = static_cast<at::Tensor *>(t);
    if (x->dim() != 4) return 0;
    at::NoGradGuard no_grad;
    x->set_data(x->contiguous(at::MemoryFormat::ChannelsLast));
    return 0;
  } catch (...) {
    return -1;
  }
}

// 1 when the tensor's strides are channels-last.
int mt_is_channels_last(void *t) {
  try {
    auto *x = static_cast<at::Tensor *>(t);
    return x->is_contiguous(at::MemoryFormat::ChannelsLast) && x->dim() == 4 ? 1 : 0;
  } catch (...) {
    return -1;
  }
}

// The CUDA caching allocator's peak allocated bytes on a device since the last reset; -1 when
// there is no CUDA allocator (a CPU-only libtorch) or it fails.
int64_t mt_cuda_peak_bytes(int device) {
  try {
    auto *a = c10::getDeviceAllocator(at::kCUDA);
    if (!a->initialized()) return 0;
    return a->getDeviceStats(static_cast<c10::DeviceIndex>(device)).allocated_bytes[0].peak;
  } catch (...) {
    return -1;
  }
}

// Resets the peak statistics; -1 on failure.
int mt_cuda_reset_peak(int device) {
  try {
    auto *a = c10::getDeviceAllocator(at::kCUDA);
    if (!a->initialized()) return 0;
    a->resetPeakStats(static_cast<c10::DeviceIndex>(device));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Returns cached, unused blocks to the driver (after an out-of-memory probe); -1 on failure.
int mt_cuda_empty_cache() {
  try {
    auto *a = c10::getDeviceAllocator(at::kCUDA);
    if (a->initialized()) a->emptyCache();
    return 0;
  } catch (...) {
    return -1;
  }
}

// Starts counting the FLOPs (2 × multiply-accumulates of convolutions and matrix products) of
// the operations this thread runs; -1 on failure.
int mt_flops_begin() {
  try {
    if (handle != 0) at::removeCallback(handle);
    flops = 0.0;
    counting = true;
    handle = at::addThreadLocalCallback(at::RecordFunctionCallback(&on_op).needsInputs(true));
    return 0;
  } catch (...) {
    return -1;
  }
}

// Stops counting and returns the FLOPs counted since mt_flops_begin.
double mt_flops_end() {
  counting = false;
  try {
    if (handle != 0) at::removeCallback(handle);
  } catch (...) {
  }
  handle = 0;
  return flops;
}

// Denormals flushed to zero in this thread's CPU arithmetic (torch.set_flush_denormal); 1 if supported.
int mt_set_flush_denormal(int on) { return at::globalContext().setFlushDenormal(on != 0) ? 1 : 0; }

}  // extern "C"
