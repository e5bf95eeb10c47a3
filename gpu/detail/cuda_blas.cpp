#include "gpu/detail/cuda_blas.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"

namespace satemu::gpu::detail {

namespace {

// The pointer types must be cuBLAS's own: resolving each overloaded name to
// the member's type in an unevaluated context fails to compile otherwise,
// without referencing (linking) the library.
using api = cublas_api;
static_assert(std::is_same_v<decltype(static_cast<decltype(api::create)>(&::cublasCreate_v2)),
                             decltype(api::create)>);
static_assert(std::is_same_v<decltype(static_cast<decltype(api::destroy)>(&::cublasDestroy_v2)),
                             decltype(api::destroy)>);
static_assert(
    std::is_same_v<decltype(static_cast<decltype(api::set_stream)>(&::cublasSetStream_v2)),
                   decltype(api::set_stream)>);
static_assert(
    std::is_same_v<decltype(static_cast<decltype(api::set_math_mode)>(&::cublasSetMathMode)),
                   decltype(api::set_math_mode)>);
static_assert(std::is_same_v<
              decltype(static_cast<decltype(api::status_string)>(&::cublasGetStatusString)),
              decltype(api::status_string)>);
static_assert(std::is_same_v<decltype(static_cast<decltype(api::gemm_ex)>(&::cublasGemmEx)),
                             decltype(api::gemm_ex)>);
static_assert(std::is_same_v<decltype(static_cast<decltype(api::gemm_strided_batched_ex)>(
                                 &::cublasGemmStridedBatchedEx)),
                             decltype(api::gemm_strided_batched_ex)>);

const std::string library_name = absl::StrCat("libcublas.so.", CUBLAS_VER_MAJOR);

// Where a CUDA install keeps its libraries, for systems whose loader path
// does not name it: $CUDA_HOME/lib64, then /usr/local/cuda/lib64. (The CUDA
// runtime is linked in statically, so nothing else points there.)
std::vector<std::string> cuda_library_dirs() {
  std::vector<std::string> dirs;
  if (const char* home = std::getenv("CUDA_HOME"); home != nullptr && *home != '\0')
    dirs.push_back(absl::StrCat(home, "/lib64/"));
  dirs.emplace_back("/usr/local/cuda/lib64/");
  return dirs;
}

absl::StatusOr<cublas_api> load() {
  void* lib = dlopen(library_name.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string why = lib == nullptr ? dlerror() : "";
  for (const std::string& dir : cuda_library_dirs()) {
    if (lib != nullptr)
      break;
    lib = dlopen((dir + library_name).c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr)
      absl::StrAppend(&why, "; ", dlerror());
  }
  if (lib == nullptr)
    return absl::UnavailableError(absl::StrCat("compute backend 'cuda': cannot load ",
                                               library_name, ": ", why));
  cublas_api a;
  absl::Status missing = absl::OkStatus();
  auto bind = [&](auto& fn, const char* symbol) {
    void* p = dlsym(lib, symbol);
    if (p == nullptr && missing.ok())
      missing = absl::UnavailableError(absl::StrCat("compute backend 'cuda': ", library_name,
                                                    " lacks ", symbol));
    fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(p);
  };
  bind(a.create, "cublasCreate_v2");
  bind(a.destroy, "cublasDestroy_v2");
  bind(a.set_stream, "cublasSetStream_v2");
  bind(a.set_math_mode, "cublasSetMathMode");
  bind(a.status_string, "cublasGetStatusString");
  bind(a.gemm_ex, "cublasGemmEx");
  bind(a.gemm_strided_batched_ex, "cublasGemmStridedBatchedEx");
  if (!missing.ok())
    return missing;
  return a;
}

} // namespace

absl::StatusOr<const cublas_api*> load_cublas() {
  static const absl::StatusOr<cublas_api> loaded = load();
  if (!loaded.ok())
    return loaded.status();
  return &*loaded;
}

} // namespace satemu::gpu::detail
