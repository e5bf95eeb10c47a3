#include "gpu/cuda_backend.hpp"

#include <array>
#include <string>

#include "absl/strings/str_cat.h"
#include "gpu/detail/cuda_backend_impl.hpp"
#include "gpu/device.hpp"

namespace satemu::gpu {

namespace {

constexpr std::array<cuda_precision, 4> all_precisions = {
    cuda_precision::bf16, cuda_precision::fp16, cuda_precision::tf32, cuda_precision::fp32};

// Why no cuda backend can be made here, or OK.
absl::Status cuda_unavailable() {
  const device_info& info = probe_devices();
  if (!info.cuda_built)
    return absl::UnavailableError(
        "compute backend 'cuda': this build has no CUDA backend (no CUDA compiler was found, "
        "or SATEMU_WITH_CUDA=OFF); use 'cpu' or 'auto'");
  if (info.cuda_devices == 0)
    return absl::UnavailableError(
        absl::StrCat("compute backend 'cuda': ", info.detail, "; use 'cpu' or 'auto'"));
  return absl::OkStatus();
}

} // namespace

std::string_view cuda_precision_name(cuda_precision p) {
  switch (p) {
    case cuda_precision::bf16: return "bf16";
    case cuda_precision::fp16: return "fp16";
    case cuda_precision::tf32: return "tf32";
    case cuda_precision::fp32: return "fp32";
  }
  return "unknown";
}

absl::StatusOr<cuda_precision> parse_cuda_precision(std::string_view name) {
  std::string accepted;
  for (cuda_precision p : all_precisions) {
    if (cuda_precision_name(p) == name)
      return p;
    absl::StrAppend(&accepted, accepted.empty() ? "" : ", ", std::string(cuda_precision_name(p)));
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown cuda precision '", std::string(name),
                                                 "'; accepted: ", accepted));
}

bool cuda_backend_built() { return probe_devices().cuda_built; }

absl::StatusOr<std::unique_ptr<backend>> make_cuda_backend(const cuda_options& options) {
  if (auto s = cuda_unavailable(); !s.ok())
    return s;
  if (options.device < 0 || options.device >= probe_devices().cuda_devices)
    return absl::InvalidArgumentError(absl::StrCat("compute backend 'cuda': device ",
                                                   options.device, " does not exist (",
                                                   probe_devices().cuda_devices, " answered)"));
#ifdef SATEMU_GPU_HAVE_CUDA
  return detail::new_cuda_backend(options);
#else
  return absl::InternalError("unreachable: no CUDA backend in this build");
#endif
}

absl::StatusOr<double> cuda_gemm_seconds(cuda_precision p, std::int64_t m, std::int64_t n,
                                         std::int64_t k, int iterations) {
  if (auto s = cuda_unavailable(); !s.ok())
    return s;
#ifdef SATEMU_GPU_HAVE_CUDA
  return detail::cuda_gemm_seconds_impl(p, m, n, k, iterations);
#else
  return absl::InternalError("unreachable: no CUDA backend in this build");
#endif
}

absl::StatusOr<double> cuda_quantize_seconds(std::int64_t rows, std::int64_t cols, int bits,
                                             int iterations) {
  if (auto s = cuda_unavailable(); !s.ok())
    return s;
#ifdef SATEMU_GPU_HAVE_CUDA
  return detail::cuda_quantize_seconds_impl(rows, cols, bits, iterations);
#else
  return absl::InternalError("unreachable: no CUDA backend in this build");
#endif
}

absl::StatusOr<double> cuda_copy_seconds(std::int64_t bytes, int iterations) {
  if (auto s = cuda_unavailable(); !s.ok())
    return s;
#ifdef SATEMU_GPU_HAVE_CUDA
  return detail::cuda_copy_seconds_impl(bytes, iterations);
#else
  return absl::InternalError("unreachable: no CUDA backend in this build");
#endif
}

} // namespace satemu::gpu
