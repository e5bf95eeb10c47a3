/// @file cuda_blas.hpp
/// Private to gpu/ (CUDA builds only): the cuBLAS entry points the cuda
/// backend uses, loaded with dlopen on first use. Linking cuBLAS directly would
/// make every program that links satemu_gpu (the CLI, every test binary) load
/// cuBLAS and cuBLASLt at start-up, about 70 ms per process with a warm page
/// cache and a second with a cold one, whether or not it ever uses a GPU.
#pragma once

#include <cublas_api.h>
#include <cuda_runtime_api.h>

#include "absl/status/statusor.h"

namespace satemu::gpu::detail {

/// The functions, with cuBLAS's own signatures (checked against its headers).
struct cublas_api {
  cublasStatus_t (*create)(cublasHandle_t*) = nullptr;
  cublasStatus_t (*destroy)(cublasHandle_t) = nullptr;
  cublasStatus_t (*set_stream)(cublasHandle_t, cudaStream_t) = nullptr;
  cublasStatus_t (*set_math_mode)(cublasHandle_t, cublasMath_t) = nullptr;
  const char* (*status_string)(cublasStatus_t) = nullptr;
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                            const void*, const void*, cudaDataType, int, const void*,
                            cudaDataType, int, const void*, void*, cudaDataType, int,
                            cublasComputeType_t, cublasGemmAlgo_t) = nullptr;
  cublasStatus_t (*gemm_strided_batched_ex)(cublasHandle_t, cublasOperation_t,
                                            cublasOperation_t, int, int, int, const void*,
                                            const void*, cudaDataType, int, long long int,
                                            const void*, cudaDataType, int, long long int,
                                            const void*, void*, cudaDataType, int,
                                            long long int, int, cublasComputeType_t,
                                            cublasGemmAlgo_t) = nullptr;
};

/// The loaded functions (loaded once per process; the library stays loaded).
/// Unavailable naming the library and the loader's message when it or one of
/// the functions is missing.
absl::StatusOr<const cublas_api*> load_cublas();

} // namespace satemu::gpu::detail
