#include "gpu/device.hpp"

#ifdef SATEMU_GPU_HAVE_CUDA
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#endif

namespace satemu::gpu {

namespace {

device_info probe() {
  device_info info;
#ifdef SATEMU_GPU_HAVE_CUDA
  info.cuda_built = true;
  int count = 0;
  if (auto err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    // The runtime reports a missing driver as too old a one; say which.
    const bool no_driver = err == cudaErrorInsufficientDriver &&
                           dlopen("libcuda.so.1", RTLD_LAZY | RTLD_NOLOAD) == nullptr;
    info.detail = no_driver ? "no CUDA device: the CUDA driver (libcuda.so.1) is not installed"
                            : std::string("no CUDA device (") + cudaGetErrorString(err) + ")";
    return info;
  }
  info.cuda_devices = count;
  cudaDeviceProp prop{};
  if (count > 0 && cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    info.detail = prop.name;
  else if (count == 0)
    info.detail = "no CUDA device";
  else
    info.detail = "CUDA device 0";
#else
  info.detail = "built without CUDA";
#endif
  return info;
}

} // namespace

const device_info& probe_devices() {
  static const device_info info = probe();
  return info;
}

std::string auto_backend() {
  return probe_devices().cuda_devices > 0 ? "cuda" : "cpu";
}

} // namespace satemu::gpu
