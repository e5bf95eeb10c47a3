// The cuda backend's host side: argument checks (shared with the cpu
// backend), device memory, copies, cuBLAS calls and kernel launches.
#include "gpu/detail/cuda_backend_impl.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"
#include "gpu/detail/cuda_blas.hpp"
#include "gpu/detail/cuda_kernels.hpp"
#include "gpu/detail/kernel_checks.hpp"
#include "gpu/layers.hpp"

/// Returns an Internal status naming `what` when the CUDA call `expr` fails.
#define SATEMU_GPU_CUDA_TRY(expr, what)                                                   \
  SATEMU_GPU_RETURN_IF_ERROR(::satemu::gpu::detail::cuda_status((expr), (what)))

namespace satemu::gpu::detail {

namespace {

absl::Status cuda_status(cudaError_t e, std::string_view what) {
  if (e == cudaSuccess)
    return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuda backend: ", std::string(what), ": ",
                                          cudaGetErrorName(e), ": ", cudaGetErrorString(e)));
}

absl::Status blas_status(const cublas_api& blas, cublasStatus_t s, std::string_view what) {
  if (s == CUBLAS_STATUS_SUCCESS)
    return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("cuda backend: ", std::string(what), ": ", blas.status_string(s)));
}

// The storage format and cuBLAS types of a precision.
cuda_storage storage_of(cuda_precision p) {
  switch (p) {
    case cuda_precision::bf16: return cuda_storage::bf16;
    case cuda_precision::fp16: return cuda_storage::f16;
    default: return cuda_storage::f32;
  }
}
cudaDataType gemm_input_type(cuda_storage s) {
  switch (s) {
    case cuda_storage::bf16: return CUDA_R_16BF;
    case cuda_storage::f16: return CUDA_R_16F;
    default: return CUDA_R_32F;
  }
}
cublasComputeType_t gemm_compute_type(cuda_precision p) {
  return p == cuda_precision::tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}
std::int64_t storage_bytes(cuda_storage s) { return s == cuda_storage::f32 ? 4 : 2; }

// C = beta C on the host: a GEMM with K = 0, as the cpu backend does it.
void scale_host(float* c, std::int64_t n, float beta) {
  if (beta == 0.0f)
    std::fill(c, c + n, 0.0f);
  else
    for (std::int64_t i = 0; i < n; ++i)
      c[i] *= beta;
}

// Copies `batch` blocks of `block` elements of `elem` bytes from `src`
// (blocks `src_stride` elements apart) to `dst` (`dst_stride` apart).
cudaError_t copy_blocks(void* dst, std::int64_t dst_stride, const void* src,
                        std::int64_t src_stride, std::int64_t block, std::int64_t batch,
                        std::int64_t elem, cudaMemcpyKind kind, cudaStream_t stream) {
  if (block <= 0 || batch <= 0)
    return cudaSuccess;
  const auto width = static_cast<std::size_t>(block * elem);
  if (batch == 1 || (src_stride == block && dst_stride == block))
    return cudaMemcpyAsync(dst, src, width * static_cast<std::size_t>(batch), kind, stream);
  constexpr std::int64_t max_pitch = std::int64_t{1} << 30;
  if (src_stride * elem < max_pitch && dst_stride * elem < max_pitch)
    return cudaMemcpy2DAsync(dst, static_cast<std::size_t>(dst_stride * elem), src,
                             static_cast<std::size_t>(src_stride * elem), width,
                             static_cast<std::size_t>(batch), kind, stream);
  for (std::int64_t i = 0; i < batch; ++i)
    if (auto e = cudaMemcpyAsync(static_cast<char*>(dst) + i * dst_stride * elem,
                                 static_cast<const char*>(src) + i * src_stride * elem, width,
                                 kind, stream);
        e != cudaSuccess)
      return e;
  return cudaSuccess;
}

// Device memory for one call at a time: a bump allocator over chunks that
// grow on demand. reset() (at the start of every call, when the previous
// call's work has finished) merges the chunks into one of their total size,
// so a repeated workload stops allocating after its first call.
class device_arena {
public:
  device_arena() = default;
  device_arena(const device_arena&) = delete;
  device_arena& operator=(const device_arena&) = delete;
  ~device_arena() { release(); }

  absl::Status reset() {
    if (chunks_.size() > 1) {
      std::size_t total = 0;
      for (const chunk& c : chunks_)
        total += c.size;
      release();
      SATEMU_GPU_RETURN_IF_ERROR(add_chunk(total));
    }
    for (chunk& c : chunks_)
      c.used = 0;
    return absl::OkStatus();
  }

  /// n elements of T (256-byte aligned; never null).
  template <typename T>
  absl::StatusOr<T*> alloc(std::int64_t n) {
    SATEMU_GPU_CHECK(n >= 0, "negative allocation ", n);
    std::size_t bytes = (static_cast<std::size_t>(n) * sizeof(T) + 255) & ~std::size_t{255};
    bytes = std::max<std::size_t>(bytes, 256);
    if (chunks_.empty() || chunks_.back().used + bytes > chunks_.back().size) {
      const std::size_t grow = chunks_.empty() ? min_chunk : 2 * chunks_.back().size;
      SATEMU_GPU_RETURN_IF_ERROR(add_chunk(std::max(bytes, grow)));
    }
    chunk& c = chunks_.back();
    void* p = c.data + c.used;
    c.used += bytes;
    return static_cast<T*>(p);
  }

private:
  static constexpr std::size_t min_chunk = std::size_t{16} << 20;
  struct chunk {
    char* data;
    std::size_t size;
    std::size_t used;
  };

  absl::Status add_chunk(std::size_t bytes) {
    void* p = nullptr;
    SATEMU_GPU_CUDA_TRY(cudaMalloc(&p, bytes),
                        absl::StrCat("cudaMalloc of ", bytes, " bytes"));
    chunks_.push_back({static_cast<char*>(p), bytes, 0});
    return absl::OkStatus();
  }
  void release() {
    for (const chunk& c : chunks_)
      cudaFree(c.data);
    chunks_.clear();
  }

  std::vector<chunk> chunks_;
};

class cuda_backend final : public backend {
public:
  static absl::StatusOr<std::unique_ptr<backend>> create(const cuda_options& o);
  ~cuda_backend() override;

  std::string_view name() const override { return "cuda"; }

  absl::Status gemm(const gemm_op& o, const_matrix_view a, const_matrix_view b,
                    matrix_view c) override;
  absl::Status gemm_strided_batched(const gemm_op& o, std::int64_t batch, const_matrix_view a,
                                    std::int64_t stride_a, const_matrix_view b,
                                    std::int64_t stride_b, matrix_view c,
                                    std::int64_t stride_c) override;
  absl::Status gemm_grouped(const gemm_op& o, std::span<const gemm_problem> problems) override;

  absl::StatusOr<tensor> rmsnorm(const_matrix_view x, const_matrix_view weight,
                                 float eps) override;
  absl::Status rope(const attention_config& cfg, matrix_view q, matrix_view k,
                    std::span<const std::int64_t> positions) override;
  using backend::attention_prefill;
  absl::StatusOr<tensor> attention_prefill(const attention_config& cfg, const_matrix_view q,
                                           const_matrix_view k, const_matrix_view v,
                                           std::span<const std::int64_t> seq_offsets,
                                           std::span<const std::int64_t> query_offsets) override;
  absl::StatusOr<tensor> attention_decode(const attention_config& cfg, const_matrix_view q,
                                          const kv_cache& cache,
                                          std::span<const std::int64_t> lengths) override;
  absl::Status kv_store(kv_cache& cache, const_matrix_view k, const_matrix_view v,
                        std::span<const std::int64_t> slot,
                        std::span<const std::int64_t> position) override;
  absl::StatusOr<tensor> silu_mul(const_matrix_view gate, const_matrix_view up) override;
  absl::StatusOr<tensor> gelu_mul(const_matrix_view gate, const_matrix_view up) override;
  absl::Status add(matrix_view y, const_matrix_view x) override;
  absl::Status add_gated(matrix_view y, const_matrix_view x, const_matrix_view gate) override;

  absl::StatusOr<moe_routing> router_topk(const_matrix_view logits, std::int64_t k,
                                          bool renormalise) override;
  absl::StatusOr<tensor> moe_gather(const_matrix_view x, const moe_routing& r) override;
  absl::StatusOr<tensor> moe_combine(const_matrix_view y, const moe_routing& r) override;

  absl::StatusOr<quantized_activations> quantize(const_matrix_view x, int bits) override;
  absl::StatusOr<tensor> dequantize(const quantized_activations& q) override;
  absl::StatusOr<sparse_activations> sparsify_topk(const_matrix_view x,
                                                   std::int64_t k) override;
  absl::StatusOr<tensor> densify(const sparse_activations& s) override;
  absl::StatusOr<half_activations> cast_half(const_matrix_view x, half_type t) override;
  absl::StatusOr<tensor> uncast_half(const half_activations& h) override;

  absl::Status keep_resident(const_matrix_view w) override;
  void drop_resident() override;
  std::int64_t resident_bytes() const override { return resident_bytes_; }

  absl::StatusOr<extend_result> layer_extend(const decoder_config& cfg,
                                             const decoder_layer_weights& w, const_matrix_view x,
                                             std::span<const std::int64_t> seq_offsets,
                                             std::span<const past_kv> past) override;
  double last_layer_device_seconds() const override { return last_layer_device_seconds_; }

private:
  cuda_backend(const cuda_options& o, const cublas_api* blas)
      : opt_(o), storage_(storage_of(o.precision)), blas_(blas) {}

  // Starts a call: the backend's device made current, scratch memory reset.
  absl::Status begin();
  // Waits for the call's work; reports asynchronous errors naming `kernel`.
  absl::Status finish(std::string_view kernel);
  // silu_mul and gelu_mul (`kind`).
  absl::StatusOr<tensor> glu(op kind, const_matrix_view gate, const_matrix_view up);

  template <typename T>
  absl::StatusOr<T*> upload(const T* host, std::int64_t n) {
    SATEMU_GPU_ASSIGN_OR_RETURN(T * d, mem_.alloc<T>(n));
    if (n > 0)
      SATEMU_GPU_CUDA_TRY(cudaMemcpyAsync(d, host, static_cast<std::size_t>(n) * sizeof(T),
                                          cudaMemcpyHostToDevice, stream_),
                          "copy to the device");
    return d;
  }
  // Uploads a host temporary of the call and keeps it until the next begin():
  // an asynchronous copy from pageable memory may read its source after
  // cudaMemcpyAsync has returned (where the device reads host memory
  // directly), so the source must outlive the call's finish().
  template <typename T>
  absl::StatusOr<T*> upload_kept(std::vector<T> host) {
    auto kept = std::make_shared<const std::vector<T>>(std::move(host));
    kept_.push_back(kept);
    return upload(kept->data(), static_cast<std::int64_t>(kept->size()));
  }
  template <typename T>
  absl::Status download(T* host, const T* dev, std::int64_t n) {
    if (n > 0)
      SATEMU_GPU_CUDA_TRY(cudaMemcpyAsync(host, dev, static_cast<std::size_t>(n) * sizeof(T),
                                          cudaMemcpyDeviceToHost, stream_),
                          "copy to the host");
    return absl::OkStatus();
  }
  // `batch` fp32 matrices of `size` elements, `stride` apart on the host
  // (0: one shared matrix), packed on the device and converted to the GEMM
  // input format. Sets *dev_stride to the device stride in elements. A
  // single matrix kept resident is not copied.
  absl::StatusOr<const void*> gemm_operand(const float* host, std::int64_t size,
                                           std::int64_t batch, std::int64_t stride,
                                           std::int64_t* dev_stride);
  // n fp32 values on the device in the GEMM input format: rounded to TF32 in
  // place (tf32), converted into scratch memory (fp16, bf16) or as they are.
  absl::StatusOr<const void*> activation_operand(float* dev, std::int64_t n);
  // c `[rows, w.rows]` = a w^T (+ bias on every row) on the device (a:
  // `[rows, w.cols]` in the GEMM input format), rounded to the storage format
  // like the result of `linear`'s gemm (whose C holds the bias rows, beta 1).
  // Without `round` c is left as the GEMM wrote it, for kernels that round
  // what they read (all of this file's) and nothing else.
  absl::Status linear_dev(const void* a, std::int64_t rows, const_matrix_view w, float* c,
                          std::span<const float> bias = {}, bool round = true);
  // RoPE's positions and frequencies (as the cpu backend computes them) on
  // the device.
  struct rope_tables {
    const std::int64_t* positions;
    const double* inv_freq;
  };
  absl::StatusOr<rope_tables> upload_rope_tables(const attention_config& cfg,
                                                 std::span<const std::int64_t> positions);
  // RoPE in place on `rows` rows of q and k on the device.
  absl::Status rope_dev(const attention_config& cfg, float* q, float* k, std::int64_t rows,
                        const rope_tables& tables);
  // Attention tiles on the device.
  struct device_tiles {
    const attention_tile* data;
    std::int64_t n;
  };
  absl::StatusOr<device_tiles> upload_tiles(std::vector<attention_tile> tiles);
  // Attention of the tiles' rows on the device, into `out` or with
  // `half_out` as the 16-bit GEMM input format (launch_attention).
  absl::Status attention_dev(const attention_config& cfg, const float* q, const float* k,
                             const float* v, float* out, const device_tiles& tiles,
                             void* half_out = nullptr);
  // The tiles of causal attention over the sequences of `seq_offsets` whose
  // queries are in rows `query_offsets` (backend::attention_prefill).
  std::vector<attention_tile> prefill_tiles(const attention_config& cfg,
                                            std::span<const std::int64_t> seq_offsets,
                                            std::span<const std::int64_t> query_offsets);
  // cuBLAS on device operands: row-major C = alpha op(A) op(B) + beta C for
  // `batch` problems (strides in elements).
  absl::Status run_gemm(const gemm_op& o, const gemm_dims& d, const void* a, std::int64_t lda,
                        std::int64_t stride_a, const void* b, std::int64_t ldb,
                        std::int64_t stride_b, float* c, std::int64_t stride_c,
                        std::int64_t batch);
  // The body of gemm and gemm_strided_batched after the checks.
  absl::Status batched_gemm(std::string_view kernel, const gemm_op& o, const gemm_dims& d,
                            std::int64_t batch, const_matrix_view a, std::int64_t stride_a,
                            const_matrix_view b, std::int64_t stride_b, matrix_view c,
                            std::int64_t stride_c);
  absl::Status attention_limits(std::string_view kernel, const attention_config& cfg) const;
  absl::StatusOr<tensor> run_attention(const attention_config& cfg, const_matrix_view q,
                                       const float* k_dev, const float* v_dev,
                                       std::vector<attention_tile> tiles);

  cuda_options opt_;
  cuda_storage storage_;
  const cublas_api* blas_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t handle_ = nullptr;
  device_arena mem_;
  // keep_resident's copies, in the GEMM input format, by (host data, size).
  std::map<std::pair<const float*, std::int64_t>, void*> resident_;
  std::int64_t resident_bytes_ = 0;
  // upload_kept's host temporaries, released by the next begin().
  std::vector<std::shared_ptr<const void>> kept_;
  // Around the kernels of a layer_extend on the device.
  cudaEvent_t layer_start_ = nullptr;
  cudaEvent_t layer_end_ = nullptr;
  double last_layer_device_seconds_ = 0.0;
};

absl::StatusOr<std::unique_ptr<backend>> cuda_backend::create(const cuda_options& o) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const cublas_api* blas, load_cublas());
  SATEMU_GPU_CUDA_TRY(cudaSetDevice(o.device), "cudaSetDevice");
  int major = 0;
  int minor = 0;
  SATEMU_GPU_CUDA_TRY(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, o.device),
                      "cudaDeviceGetAttribute");
  SATEMU_GPU_CUDA_TRY(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, o.device),
                      "cudaDeviceGetAttribute");
  if (major < 8)
    return absl::UnavailableError(
        absl::StrCat("compute backend 'cuda': device ", o.device, " has compute capability ",
                     major, ".", minor, "; this build targets 8.0 and newer"));
  std::unique_ptr<cuda_backend> b(new cuda_backend(o, blas));
  SATEMU_GPU_CUDA_TRY(cudaStreamCreateWithFlags(&b->stream_, cudaStreamNonBlocking),
                      "cudaStreamCreate");
  SATEMU_GPU_RETURN_IF_ERROR(blas_status(*blas, blas->create(&b->handle_), "cublasCreate"));
  SATEMU_GPU_RETURN_IF_ERROR(
      blas_status(*blas, blas->set_stream(b->handle_, b->stream_), "cublasSetStream"));
  // Default math: fp32 GEMMs stay fp32 unless the compute type asks for TF32.
  SATEMU_GPU_RETURN_IF_ERROR(
      blas_status(*blas, blas->set_math_mode(b->handle_, CUBLAS_DEFAULT_MATH),
                  "cublasSetMathMode"));
  SATEMU_GPU_CUDA_TRY(cudaEventCreate(&b->layer_start_), "cudaEventCreate");
  SATEMU_GPU_CUDA_TRY(cudaEventCreate(&b->layer_end_), "cudaEventCreate");
  return std::unique_ptr<backend>(std::move(b));
}

cuda_backend::~cuda_backend() {
  cudaSetDevice(opt_.device);
  drop_resident();
  if (stream_ != nullptr)
    cudaStreamSynchronize(stream_);
  if (handle_ != nullptr)
    blas_->destroy(handle_);
  for (cudaEvent_t e : {layer_start_, layer_end_})
    if (e != nullptr)
      cudaEventDestroy(e);
  if (stream_ != nullptr)
    cudaStreamDestroy(stream_);
}

absl::Status cuda_backend::begin() {
  SATEMU_GPU_CUDA_TRY(cudaSetDevice(opt_.device), "cudaSetDevice");
  // Normally idle already; after a call that failed half-way, its queued
  // work must end before the scratch memory is reused.
  SATEMU_GPU_CUDA_TRY(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
  kept_.clear();
  return mem_.reset();
}

absl::Status cuda_backend::finish(std::string_view kernel) {
  SATEMU_GPU_CUDA_TRY(cudaStreamSynchronize(stream_), kernel);
  return absl::OkStatus();
}

absl::StatusOr<const void*> cuda_backend::gemm_operand(const float* host, std::int64_t size,
                                                       std::int64_t batch, std::int64_t stride,
                                                       std::int64_t* dev_stride) {
  const std::int64_t copies = stride == 0 ? 1 : batch;
  *dev_stride = stride == 0 ? 0 : size;
  if (copies == 1)
    if (auto it = resident_.find({host, size}); it != resident_.end())
      return static_cast<const void*>(it->second);
  SATEMU_GPU_ASSIGN_OR_RETURN(float* f, mem_.alloc<float>(size * copies));
  SATEMU_GPU_CUDA_TRY(copy_blocks(f, size, host, stride, size, copies, sizeof(float),
                                  cudaMemcpyHostToDevice, stream_),
                      "copy to the device");
  return activation_operand(f, size * copies);
}

absl::StatusOr<const void*> cuda_backend::activation_operand(float* dev, std::int64_t n) {
  if (opt_.precision == cuda_precision::tf32)
    SATEMU_GPU_CUDA_TRY(launch_round_tf32(dev, n, stream_), "round_tf32");
  if (storage_ == cuda_storage::f32)
    return static_cast<const void*>(dev);
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * h, mem_.alloc<std::uint16_t>(n));
  SATEMU_GPU_CUDA_TRY(launch_to_half(dev, h, n, storage_, stream_), "to_half");
  return static_cast<const void*>(h);
}

absl::Status cuda_backend::keep_resident(const_matrix_view w) {
  if (w.size() == 0 || resident_.contains({w.data, w.size()}))
    return absl::OkStatus();
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  std::int64_t unused = 0;
  SATEMU_GPU_ASSIGN_OR_RETURN(const void* converted, gemm_operand(w.data, w.size(), 1, 0, &unused));
  const std::int64_t bytes = w.size() * storage_bytes(storage_);
  void* dev = nullptr;
  SATEMU_GPU_CUDA_TRY(cudaMalloc(&dev, static_cast<std::size_t>(bytes)),
                      absl::StrCat("cudaMalloc of ", bytes, " bytes for a resident weight"));
  absl::Status s = cuda_status(cudaMemcpyAsync(dev, converted, static_cast<std::size_t>(bytes),
                                               cudaMemcpyDeviceToDevice, stream_),
                               "copy of a resident weight");
  if (s.ok())
    s = finish("keep_resident");
  if (!s.ok()) {
    cudaStreamSynchronize(stream_);
    cudaFree(dev);
    return s;
  }
  resident_.emplace(std::pair{w.data, w.size()}, dev);
  resident_bytes_ += bytes;
  return absl::OkStatus();
}

void cuda_backend::drop_resident() {
  if (resident_.empty())
    return;
  cudaSetDevice(opt_.device);
  cudaStreamSynchronize(stream_);
  for (const auto& [key, dev] : resident_)
    cudaFree(dev);
  resident_.clear();
  resident_bytes_ = 0;
}

absl::Status cuda_backend::linear_dev(const void* a, std::int64_t rows, const_matrix_view w,
                                      float* c, std::span<const float> bias, bool round) {
  std::int64_t unused = 0;
  SATEMU_GPU_ASSIGN_OR_RETURN(const void* w_dev, gemm_operand(w.data, w.size(), 1, 0, &unused));
  gemm_op o{.trans_b = true};
  if (!bias.empty()) {
    // Every row of c is the bias (row 0 of it, gathered), as C enters gemm.
    SATEMU_GPU_ASSIGN_OR_RETURN(const float* b_dev, upload(bias.data(), w.rows));
    SATEMU_GPU_ASSIGN_OR_RETURN(const std::int64_t* zeros,
                                upload_kept(std::vector<std::int64_t>(rows, 0)));
    SATEMU_GPU_CUDA_TRY(launch_gather_rows(b_dev, zeros, c, rows, w.rows, stream_), "bias rows");
    SATEMU_GPU_CUDA_TRY(launch_round(c, rows * w.rows, storage_, stream_), "round");
    o.beta = 1.0f;
  }
  SATEMU_GPU_RETURN_IF_ERROR(run_gemm(o, gemm_dims{rows, w.rows, w.cols}, a, w.cols, 0, w_dev,
                                      w.cols, 0, c, 0, 1));
  if (round)
    SATEMU_GPU_CUDA_TRY(launch_round(c, rows * w.rows, storage_, stream_), "round");
  return absl::OkStatus();
}

absl::Status cuda_backend::run_gemm(const gemm_op& o, const gemm_dims& d, const void* a,
                                    std::int64_t lda, std::int64_t stride_a, const void* b,
                                    std::int64_t ldb, std::int64_t stride_b, float* c,
                                    std::int64_t stride_c, std::int64_t batch) {
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: cuBLAS
  // gets B first, each stored matrix read as its own transpose.
  const cublasOperation_t op_a = o.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = o.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cudaDataType in = gemm_input_type(storage_);
  const cublasComputeType_t compute = gemm_compute_type(opt_.precision);
  const float alpha = o.alpha;
  const float beta = o.beta;
  const auto m = static_cast<int>(d.m);
  const auto n = static_cast<int>(d.n);
  const auto k = static_cast<int>(d.k);
  if (batch == 1)
    return blas_status(*blas_,
                       blas_->gemm_ex(handle_, op_b, op_a, n, m, k, &alpha, b, in,
                                      static_cast<int>(ldb), a, in, static_cast<int>(lda), &beta,
                                      c, CUDA_R_32F, n, compute, CUBLAS_GEMM_DEFAULT),
                       "cublasGemmEx");
  const std::int64_t elem = storage_bytes(storage_);
  constexpr std::int64_t max_batch = 65535;
  for (std::int64_t first = 0; first < batch; first += max_batch) {
    const std::int64_t count = std::min(max_batch, batch - first);
    SATEMU_GPU_RETURN_IF_ERROR(blas_status(
        *blas_,
        blas_->gemm_strided_batched_ex(
            handle_, op_b, op_a, n, m, k, &alpha,
            static_cast<const char*>(b) + first * stride_b * elem, in, static_cast<int>(ldb),
            stride_b, static_cast<const char*>(a) + first * stride_a * elem, in,
            static_cast<int>(lda), stride_a, &beta, c + first * stride_c, CUDA_R_32F, n,
            stride_c, static_cast<int>(count), compute, CUBLAS_GEMM_DEFAULT),
        "cublasGemmStridedBatchedEx"));
  }
  return absl::OkStatus();
}

absl::Status cuda_backend::batched_gemm(std::string_view kernel, const gemm_op& o,
                                        const gemm_dims& d, std::int64_t batch,
                                        const_matrix_view a, std::int64_t stride_a,
                                        const_matrix_view b, std::int64_t stride_b,
                                        matrix_view c, std::int64_t stride_c) {
  if (batch == 0 || d.m == 0 || d.n == 0)
    return absl::OkStatus();
  if (d.k == 0) {
    for (std::int64_t i = 0; i < batch; ++i)
      scale_host(c.data + i * stride_c, c.size(), o.beta);
    return absl::OkStatus();
  }
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  std::int64_t dev_stride_a = 0;
  std::int64_t dev_stride_b = 0;
  SATEMU_GPU_ASSIGN_OR_RETURN(
      const void* a_dev,
      gemm_operand(a.data, a.size(), batch, batch == 1 ? 0 : stride_a, &dev_stride_a));
  SATEMU_GPU_ASSIGN_OR_RETURN(
      const void* b_dev,
      gemm_operand(b.data, b.size(), batch, batch == 1 ? 0 : stride_b, &dev_stride_b));
  const std::int64_t c_size = c.size();
  SATEMU_GPU_ASSIGN_OR_RETURN(float* c_dev, mem_.alloc<float>(c_size * batch));
  if (o.beta != 0.0f) {
    SATEMU_GPU_CUDA_TRY(copy_blocks(c_dev, c_size, c.data, stride_c, c_size, batch,
                                    sizeof(float), cudaMemcpyHostToDevice, stream_),
                        "copy to the device");
    SATEMU_GPU_CUDA_TRY(launch_round(c_dev, c_size * batch, storage_, stream_), "round");
  }
  SATEMU_GPU_RETURN_IF_ERROR(run_gemm(o, d, a_dev, a.cols, dev_stride_a, b_dev, b.cols,
                                      dev_stride_b, c_dev, c_size, batch));
  SATEMU_GPU_CUDA_TRY(launch_round(c_dev, c_size * batch, storage_, stream_), "round");
  SATEMU_GPU_CUDA_TRY(copy_blocks(c.data, stride_c, c_dev, c_size, c_size, batch, sizeof(float),
                                  cudaMemcpyDeviceToHost, stream_),
                      "copy to the host");
  return finish(kernel);
}

absl::Status cuda_backend::gemm(const gemm_op& o, const_matrix_view a, const_matrix_view b,
                                matrix_view c) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const gemm_dims d, gemm_shape("gemm", o, a, b, c));
  count_launch(op::gemm);
  return batched_gemm("gemm", o, d, 1, a, 0, b, 0, c, 0);
}

absl::Status cuda_backend::gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                                const_matrix_view a, std::int64_t stride_a,
                                                const_matrix_view b, std::int64_t stride_b,
                                                matrix_view c, std::int64_t stride_c) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const gemm_dims d,
                              check_gemm_strided_batched(o, batch, a, stride_a, b, stride_b, c,
                                                         stride_c));
  count_launch(op::gemm_strided_batched);
  return batched_gemm("gemm_strided_batched", o, d, batch, a, stride_a, b, stride_b, c,
                      stride_c);
}

absl::Status cuda_backend::gemm_grouped(const gemm_op& o, std::span<const gemm_problem> problems) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::vector<gemm_dims> dims,
                              check_gemm_grouped(o, problems));
  count_launch(op::gemm_grouped);
  bool on_device = false;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const gemm_dims& d = dims[i];
    if (d.m == 0 || d.n == 0)
      continue;
    if (d.k == 0)
      scale_host(problems[i].c.data, problems[i].c.size(), o.beta);
    else
      on_device = true;
  }
  if (!on_device)
    return absl::OkStatus();
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  // One cublasGemmEx per problem, all queued before one wait.
  std::vector<float*> c_dev(problems.size(), nullptr);
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const gemm_dims& d = dims[i];
    const gemm_problem& p = problems[i];
    if (d.m == 0 || d.n == 0 || d.k == 0)
      continue;
    std::int64_t unused = 0;
    SATEMU_GPU_ASSIGN_OR_RETURN(const void* a_dev,
                                gemm_operand(p.a.data, p.a.size(), 1, 0, &unused));
    SATEMU_GPU_ASSIGN_OR_RETURN(const void* b_dev,
                                gemm_operand(p.b.data, p.b.size(), 1, 0, &unused));
    if (o.beta != 0.0f) {
      SATEMU_GPU_ASSIGN_OR_RETURN(c_dev[i], upload(p.c.data, p.c.size()));
      SATEMU_GPU_CUDA_TRY(launch_round(c_dev[i], p.c.size(), storage_, stream_), "round");
    } else {
      SATEMU_GPU_ASSIGN_OR_RETURN(c_dev[i], mem_.alloc<float>(p.c.size()));
    }
    SATEMU_GPU_RETURN_IF_ERROR(
        run_gemm(o, d, a_dev, p.a.cols, 0, b_dev, p.b.cols, 0, c_dev[i], 0, 1));
  }
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (c_dev[i] == nullptr)
      continue;
    SATEMU_GPU_CUDA_TRY(launch_round(c_dev[i], problems[i].c.size(), storage_, stream_), "round");
    SATEMU_GPU_RETURN_IF_ERROR(download(problems[i].c.data, c_dev[i], problems[i].c.size()));
  }
  return finish("gemm_grouped");
}

absl::StatusOr<tensor> cuda_backend::rmsnorm(const_matrix_view x, const_matrix_view weight,
                                             float eps) {
  SATEMU_GPU_RETURN_IF_ERROR(check_rmsnorm(x, weight, eps));
  count_launch(op::rmsnorm);
  tensor out({x.rows, x.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* w_dev, upload(weight.data, weight.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* y_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(launch_rmsnorm(x_dev, w_dev, y_dev, x.rows, x.cols, eps, storage_, stream_),
                      "rmsnorm");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), y_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("rmsnorm"));
  return out;
}

absl::Status cuda_backend::rope(const attention_config& cfg, matrix_view q, matrix_view k,
                                std::span<const std::int64_t> positions) {
  SATEMU_GPU_RETURN_IF_ERROR(check_rope(cfg, q, k, positions));
  count_launch(op::rope);
  if (q.rows == 0)
    return absl::OkStatus();
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(float* q_dev, upload(q.data, q.size()));
  float* k_dev = nullptr;
  if (k.rows != 0) {
    SATEMU_GPU_ASSIGN_OR_RETURN(k_dev, upload(k.data, k.size()));
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(const rope_tables tables, upload_rope_tables(cfg, positions));
  SATEMU_GPU_RETURN_IF_ERROR(rope_dev(cfg, q_dev, k_dev, q.rows, tables));
  SATEMU_GPU_RETURN_IF_ERROR(download(q.data, q_dev, q.size()));
  if (k.rows != 0)
    SATEMU_GPU_RETURN_IF_ERROR(download(k.data, k_dev, k.size()));
  return finish("rope");
}

absl::StatusOr<cuda_backend::rope_tables> cuda_backend::upload_rope_tables(
    const attention_config& cfg, std::span<const std::int64_t> positions) {
  rope_tables t{};
  SATEMU_GPU_ASSIGN_OR_RETURN(
      t.positions, upload(positions.data(), static_cast<std::int64_t>(positions.size())));
  SATEMU_GPU_ASSIGN_OR_RETURN(
      t.inv_freq, upload_kept(rope_inv_freq(static_cast<double>(cfg.rope_theta), cfg.head_dim,
                                            cfg.rope_scaling)));
  return t;
}

absl::Status cuda_backend::rope_dev(const attention_config& cfg, float* q, float* k,
                                    std::int64_t rows, const rope_tables& tables) {
  SATEMU_GPU_CUDA_TRY(launch_rope(q, cfg.n_heads, k, k != nullptr ? cfg.n_kv_heads : 0, rows,
                                  cfg.head_dim, tables.positions, tables.inv_freq, storage_,
                                  stream_),
                      "rope");
  return absl::OkStatus();
}

absl::Status cuda_backend::attention_limits(std::string_view kernel,
                                            const attention_config& cfg) const {
  if (cfg.head_dim > attention_max_head_dim)
    return invalid(kernel, "the cuda backend takes head_dim up to ", attention_max_head_dim,
                   ", got ", cfg.head_dim);
  if (cfg.n_kv_heads > 65535)
    return invalid(kernel, "the cuda backend takes up to 65535 kv heads, got ", cfg.n_kv_heads);
  // A block serves up to attention_warps query heads of a group, and the
  // groups' blocks are the grid's z dimension.
  if (cfg.n_kv_heads > 0 && cfg.n_heads / cfg.n_kv_heads > std::int64_t{attention_warps} * 65535)
    return invalid(kernel, "the cuda backend takes up to ", attention_warps * 65535,
                   " query heads per kv head, got ", cfg.n_heads / cfg.n_kv_heads);
  return absl::OkStatus();
}

absl::StatusOr<tensor> cuda_backend::run_attention(const attention_config& cfg,
                                                   const_matrix_view q, const float* k_dev,
                                                   const float* v_dev,
                                                   std::vector<attention_tile> tiles) {
  tensor out({q.rows, q.cols});
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* q_dev, upload(q.data, q.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const device_tiles tiles_dev, upload_tiles(std::move(tiles)));
  SATEMU_GPU_RETURN_IF_ERROR(attention_dev(cfg, q_dev, k_dev, v_dev, out_dev, tiles_dev));
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  return out;
}

absl::StatusOr<cuda_backend::device_tiles> cuda_backend::upload_tiles(
    std::vector<attention_tile> tiles) {
  const auto n = static_cast<std::int64_t>(tiles.size());
  SATEMU_GPU_ASSIGN_OR_RETURN(const attention_tile* data, upload_kept(std::move(tiles)));
  return device_tiles{data, n};
}

absl::Status cuda_backend::attention_dev(const attention_config& cfg, const float* q,
                                         const float* k, const float* v, float* out,
                                         const device_tiles& tiles, void* half_out) {
  SATEMU_GPU_CUDA_TRY(launch_attention(q, k, v, out, tiles.data, tiles.n, cfg.n_heads,
                                       cfg.n_kv_heads, cfg.head_dim, cfg.softmax_scale(),
                                       cfg.window, storage_, stream_, half_out),
                      "attention");
  return absl::OkStatus();
}

std::vector<attention_tile> cuda_backend::prefill_tiles(
    const attention_config& cfg, std::span<const std::int64_t> seq_offsets,
    std::span<const std::int64_t> query_offsets) {
  // Tiles of consecutive query rows of one sequence; its query at position i
  // sees its keys 0..i.
  const int rows_per_tile = attention_rows_per_tile(
      static_cast<int>(cfg.n_heads / cfg.n_kv_heads), cfg.head_dim, storage_);
  std::vector<attention_tile> tiles;
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s) {
    const std::int64_t first = seq_offsets[s];
    const std::int64_t len = seq_offsets[s + 1] - first;
    const std::int64_t past = len - (query_offsets[s + 1] - query_offsets[s]);
    for (std::int64_t i0 = past; i0 < len; i0 += rows_per_tile)
      tiles.push_back({query_offsets[s] + (i0 - past), first,
                       static_cast<std::int32_t>(std::min<std::int64_t>(rows_per_tile, len - i0)),
                       static_cast<std::int32_t>(i0 + 1), 1});
  }
  return tiles;
}

absl::StatusOr<tensor> cuda_backend::attention_prefill(
    const attention_config& cfg, const_matrix_view q, const_matrix_view k, const_matrix_view v,
    std::span<const std::int64_t> seq_offsets, std::span<const std::int64_t> query_offsets) {
  SATEMU_GPU_RETURN_IF_ERROR(
      check_attention_prefill(cfg, q, k, v, seq_offsets, query_offsets).status());
  SATEMU_GPU_RETURN_IF_ERROR(attention_limits("attention_prefill", cfg));
  count_launch(op::attention_prefill);
  if (q.rows == 0)
    return tensor({q.rows, q.cols});
  std::vector<attention_tile> tiles = prefill_tiles(cfg, seq_offsets, query_offsets);
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* k_dev, upload(k.data, k.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* v_dev, upload(v.data, v.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor out, run_attention(cfg, q, k_dev, v_dev, std::move(tiles)));
  SATEMU_GPU_RETURN_IF_ERROR(finish("attention_prefill"));
  return out;
}

absl::StatusOr<tensor> cuda_backend::attention_decode(const attention_config& cfg,
                                                      const_matrix_view q, const kv_cache& cache,
                                                      std::span<const std::int64_t> lengths) {
  SATEMU_GPU_RETURN_IF_ERROR(check_attention_decode(cfg, q, cache, lengths));
  SATEMU_GPU_RETURN_IF_ERROR(attention_limits("attention_decode", cfg));
  count_launch(op::attention_decode);
  if (q.rows == 0)
    return tensor({q.rows, q.cols});
  // Only the used prefix of each slot goes to the device: slot s's first
  // max_len positions, packed max_len rows apart.
  const std::int64_t max_len = *std::max_element(lengths.begin(), lengths.end());
  const std::int64_t kvd = cache.kv_dim();
  std::vector<attention_tile> tiles;
  tiles.reserve(lengths.size());
  for (std::size_t s = 0; s < lengths.size(); ++s)
    tiles.push_back({static_cast<std::int64_t>(s), static_cast<std::int64_t>(s) * max_len, 1,
                     static_cast<std::int32_t>(lengths[s]), 0});
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(float* k_dev, mem_.alloc<float>(q.rows * max_len * kvd));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* v_dev, mem_.alloc<float>(q.rows * max_len * kvd));
  SATEMU_GPU_CUDA_TRY(copy_blocks(k_dev, max_len * kvd, cache.k.data(), cache.capacity() * kvd,
                                  max_len * kvd, q.rows, sizeof(float), cudaMemcpyHostToDevice,
                                  stream_),
                      "copy to the device");
  SATEMU_GPU_CUDA_TRY(copy_blocks(v_dev, max_len * kvd, cache.v.data(), cache.capacity() * kvd,
                                  max_len * kvd, q.rows, sizeof(float), cudaMemcpyHostToDevice,
                                  stream_),
                      "copy to the device");
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor out, run_attention(cfg, q, k_dev, v_dev, std::move(tiles)));
  SATEMU_GPU_RETURN_IF_ERROR(finish("attention_decode"));
  return out;
}

absl::Status cuda_backend::kv_store(kv_cache& cache, const_matrix_view k, const_matrix_view v,
                                    std::span<const std::int64_t> slot,
                                    std::span<const std::int64_t> position) {
  SATEMU_GPU_RETURN_IF_ERROR(check_kv_store(cache, k, v, slot, position));
  count_launch(op::kv_store);
  const std::int64_t kvd = cache.kv_dim();
  if (k.rows == 0 || kvd == 0)
    return absl::OkStatus();
  // Cache rows in ascending order with the input row that writes each; a
  // row written twice keeps the later input row, as the cpu's copies do.
  std::vector<std::pair<std::int64_t, std::int64_t>> writes; // (cache row, input row)
  writes.reserve(slot.size());
  for (std::size_t t = 0; t < slot.size(); ++t)
    writes.emplace_back(slot[t] * cache.capacity() + position[t], static_cast<std::int64_t>(t));
  std::sort(writes.begin(), writes.end());
  std::vector<std::int64_t> dest;
  std::vector<std::int64_t> source;
  for (std::size_t i = 0; i < writes.size(); ++i) {
    if (i + 1 < writes.size() && writes[i + 1].first == writes[i].first)
      continue;
    dest.push_back(writes[i].first);
    source.push_back(writes[i].second);
  }
  const auto n = static_cast<std::int64_t>(dest.size());
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* k_dev, upload(k.data, k.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* v_dev, upload(v.data, v.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::int64_t* src_dev, upload(source.data(), n));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* k_rows, mem_.alloc<float>(n * kvd));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* v_rows, mem_.alloc<float>(n * kvd));
  SATEMU_GPU_CUDA_TRY(launch_gather_rows(k_dev, src_dev, k_rows, n, kvd, stream_), "kv_store");
  SATEMU_GPU_CUDA_TRY(launch_gather_rows(v_dev, src_dev, v_rows, n, kvd, stream_), "kv_store");
  // The rows are in cache order: copy back each run of adjacent cache rows.
  for (std::int64_t i = 0; i < n;) {
    std::int64_t j = i + 1;
    while (j < n && dest[static_cast<std::size_t>(j)] == dest[static_cast<std::size_t>(j - 1)] + 1)
      ++j;
    const std::int64_t row = dest[static_cast<std::size_t>(i)];
    const std::int64_t n_floats = (j - i) * kvd;
    SATEMU_GPU_RETURN_IF_ERROR(download(cache.k.data() + row * kvd, k_rows + i * kvd, n_floats));
    SATEMU_GPU_RETURN_IF_ERROR(download(cache.v.data() + row * kvd, v_rows + i * kvd, n_floats));
    i = j;
  }
  return finish("kv_store");
}

absl::StatusOr<tensor> cuda_backend::silu_mul(const_matrix_view gate, const_matrix_view up) {
  return glu(op::silu_mul, gate, up);
}

absl::StatusOr<tensor> cuda_backend::gelu_mul(const_matrix_view gate, const_matrix_view up) {
  return glu(op::gelu_mul, gate, up);
}

absl::StatusOr<tensor> cuda_backend::glu(op kind, const_matrix_view gate, const_matrix_view up) {
  const std::string_view kernel = op_name(kind);
  SATEMU_GPU_RETURN_IF_ERROR(check_glu(kernel, gate, up));
  count_launch(kind);
  tensor out({gate.rows, gate.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* g_dev, upload(gate.data, gate.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* u_dev, upload(up.data, up.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* y_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(launch_glu(kind == op::gelu_mul, g_dev, u_dev, y_dev, out.numel(), storage_,
                                 stream_),
                      kernel);
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), y_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish(kernel));
  return out;
}

absl::Status cuda_backend::add(matrix_view y, const_matrix_view x) {
  SATEMU_GPU_RETURN_IF_ERROR(check_add(y, x));
  count_launch(op::add);
  if (y.size() == 0)
    return absl::OkStatus();
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(float* y_dev, upload(y.data, y.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_CUDA_TRY(launch_add(y_dev, x_dev, y.size(), storage_, stream_), "add");
  SATEMU_GPU_RETURN_IF_ERROR(download(y.data, y_dev, y.size()));
  return finish("add");
}

absl::Status cuda_backend::add_gated(matrix_view y, const_matrix_view x, const_matrix_view gate) {
  SATEMU_GPU_RETURN_IF_ERROR(check_add_gated(y, x, gate));
  count_launch(op::add_gated);
  if (y.size() == 0)
    return absl::OkStatus();
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(float* y_dev, upload(y.data, y.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* g_dev, upload(gate.data, gate.size()));
  SATEMU_GPU_CUDA_TRY(launch_add_gated(y_dev, x_dev, g_dev, y.rows, y.cols, storage_, stream_),
                      "add_gated");
  SATEMU_GPU_RETURN_IF_ERROR(download(y.data, y_dev, y.size()));
  return finish("add_gated");
}

absl::StatusOr<moe_routing> cuda_backend::router_topk(const_matrix_view logits, std::int64_t k,
                                                      bool renormalise) {
  SATEMU_GPU_RETURN_IF_ERROR(check_router_topk(logits, k));
  count_launch(op::router_topk);
  moe_routing r;
  r.tokens = logits.rows;
  r.n_experts = logits.cols;
  r.k = k;
  const auto slots = static_cast<std::size_t>(r.tokens * k);
  r.expert.resize(slots);
  r.weight.resize(slots);
  if (slots > 0) {
    SATEMU_GPU_RETURN_IF_ERROR(begin());
    SATEMU_GPU_ASSIGN_OR_RETURN(const float* l_dev, upload(logits.data, logits.size()));
    SATEMU_GPU_ASSIGN_OR_RETURN(std::int32_t * e_dev, mem_.alloc<std::int32_t>(r.tokens * k));
    SATEMU_GPU_ASSIGN_OR_RETURN(float* w_dev, mem_.alloc<float>(r.tokens * k));
    SATEMU_GPU_CUDA_TRY(
        launch_router_topk(l_dev, r.tokens, r.n_experts, k, renormalise, e_dev, w_dev, stream_),
        "router_topk");
    SATEMU_GPU_RETURN_IF_ERROR(download(r.expert.data(), e_dev, r.tokens * k));
    SATEMU_GPU_RETURN_IF_ERROR(download(r.weight.data(), w_dev, r.tokens * k));
    SATEMU_GPU_RETURN_IF_ERROR(finish("router_topk"));
  }
  for (std::int32_t e : r.expert)
    SATEMU_GPU_CHECK(e >= 0 && e < r.n_experts, "router_topk kernel chose expert ", e);
  plan_dispatch(r);
  return r;
}

absl::StatusOr<tensor> cuda_backend::moe_gather(const_matrix_view x, const moe_routing& r) {
  SATEMU_GPU_RETURN_IF_ERROR(check_moe_gather(x, r));
  count_launch(op::moe_gather);
  tensor out({r.tokens * r.k, x.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::int64_t* rows_dev,
                              upload(r.row_of_slot.data(), r.tokens * r.k));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  // Rows no slot names stay zero, as on the cpu.
  SATEMU_GPU_CUDA_TRY(cudaMemsetAsync(out_dev, 0, static_cast<std::size_t>(out.numel()) * 4,
                                      stream_),
                      "cudaMemset");
  SATEMU_GPU_CUDA_TRY(launch_moe_gather(x_dev, rows_dev, out_dev, r.tokens, r.k, x.cols, stream_),
                      "moe_gather");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("moe_gather"));
  return out;
}

absl::StatusOr<tensor> cuda_backend::moe_combine(const_matrix_view y, const moe_routing& r) {
  SATEMU_GPU_RETURN_IF_ERROR(check_moe_combine(y, r));
  count_launch(op::moe_combine);
  tensor out({r.tokens, y.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* y_dev, upload(y.data, y.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* w_dev, upload(r.weight.data(), r.tokens * r.k));
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::int64_t* rows_dev,
                              upload(r.row_of_slot.data(), r.tokens * r.k));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(
      launch_moe_combine(y_dev, w_dev, rows_dev, out_dev, r.tokens, r.k, y.cols, stream_),
      "moe_combine");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("moe_combine"));
  return out;
}

absl::StatusOr<quantized_activations> cuda_backend::quantize(const_matrix_view x, int bits) {
  SATEMU_GPU_RETURN_IF_ERROR(check_quantize(x, bits));
  count_launch(op::quantize);
  auto q = quantized_activations::zeros(x.rows, x.cols, bits);
  if (q.rows == 0)
    return q;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint8_t * codes_dev,
                              mem_.alloc<std::uint8_t>(q.rows * q.row_bytes()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* scales_dev, mem_.alloc<float>(q.rows));
  SATEMU_GPU_CUDA_TRY(launch_quantize(x_dev, x.rows, x.cols, bits, codes_dev, scales_dev, stream_),
                      "quantize");
  SATEMU_GPU_RETURN_IF_ERROR(download(q.codes.data(), codes_dev, q.rows * q.row_bytes()));
  SATEMU_GPU_RETURN_IF_ERROR(download(q.scales.data(), scales_dev, q.rows));
  SATEMU_GPU_RETURN_IF_ERROR(finish("quantize"));
  return q;
}

absl::StatusOr<tensor> cuda_backend::dequantize(const quantized_activations& q) {
  SATEMU_GPU_RETURN_IF_ERROR(check_dequantize(q));
  count_launch(op::dequantize);
  tensor out({q.rows, q.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::uint8_t* codes_dev,
                              upload(q.codes.data(), static_cast<std::int64_t>(q.codes.size())));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* scales_dev, upload(q.scales.data(), q.rows));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(launch_dequantize(codes_dev, scales_dev, q.rows, q.cols, q.bits, out_dev,
                                        stream_),
                      "dequantize");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("dequantize"));
  return out;
}

absl::StatusOr<sparse_activations> cuda_backend::sparsify_topk(const_matrix_view x,
                                                               std::int64_t k) {
  SATEMU_GPU_RETURN_IF_ERROR(check_sparsify_topk(x, k));
  count_launch(op::sparsify);
  auto s = sparse_activations::zeros(x.rows, x.cols, k);
  if (x.rows * k == 0)
    return s;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* values_dev, mem_.alloc<float>(x.rows * k));
  SATEMU_GPU_ASSIGN_OR_RETURN(std::int32_t * indices_dev, mem_.alloc<std::int32_t>(x.rows * k));
  SATEMU_GPU_CUDA_TRY(
      launch_sparsify_topk(x_dev, x.rows, x.cols, k, values_dev, indices_dev, stream_),
      "sparsify_topk");
  SATEMU_GPU_RETURN_IF_ERROR(download(s.values.data(), values_dev, x.rows * k));
  SATEMU_GPU_RETURN_IF_ERROR(download(s.indices.data(), indices_dev, x.rows * k));
  SATEMU_GPU_RETURN_IF_ERROR(finish("sparsify_topk"));
  return s;
}

absl::StatusOr<tensor> cuda_backend::densify(const sparse_activations& s) {
  SATEMU_GPU_RETURN_IF_ERROR(check_densify(s));
  count_launch(op::densify);
  tensor out({s.rows, s.cols});
  if (out.numel() == 0 || s.k == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* values_dev, upload(s.values.data(), s.rows * s.k));
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::int32_t* indices_dev,
                              upload(s.indices.data(), s.rows * s.k));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(cudaMemsetAsync(out_dev, 0, static_cast<std::size_t>(out.numel()) * 4,
                                      stream_),
                      "cudaMemset");
  SATEMU_GPU_CUDA_TRY(
      launch_densify(values_dev, indices_dev, s.rows, s.cols, s.k, out_dev, stream_), "densify");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("densify"));
  return out;
}

absl::StatusOr<half_activations> cuda_backend::cast_half(const_matrix_view x, half_type t) {
  SATEMU_GPU_RETURN_IF_ERROR(check_cast_half(x, t));
  count_launch(op::cast_half);
  auto h = half_activations::zeros(x.rows, x.cols, t);
  if (x.size() == 0)
    return h;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * bits_dev, mem_.alloc<std::uint16_t>(x.size()));
  SATEMU_GPU_CUDA_TRY(
      launch_cast_half(x_dev, bits_dev, x.size(), t == half_type::bf16, stream_), "cast_half");
  SATEMU_GPU_RETURN_IF_ERROR(download(h.bits.data(), bits_dev, x.size()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("cast_half"));
  return h;
}

absl::StatusOr<tensor> cuda_backend::uncast_half(const half_activations& h) {
  SATEMU_GPU_RETURN_IF_ERROR(check_uncast_half(h));
  count_launch(op::uncast_half);
  tensor out({h.rows, h.cols});
  if (out.numel() == 0)
    return out;
  SATEMU_GPU_RETURN_IF_ERROR(begin());
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::uint16_t* bits_dev, upload(h.bits.data(), out.numel()));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out_dev, mem_.alloc<float>(out.numel()));
  SATEMU_GPU_CUDA_TRY(
      launch_uncast_half(bits_dev, out_dev, out.numel(), h.type == half_type::bf16, stream_),
      "uncast_half");
  SATEMU_GPU_RETURN_IF_ERROR(download(out.data(), out_dev, out.numel()));
  SATEMU_GPU_RETURN_IF_ERROR(finish("uncast_half"));
  return out;
}

// --- Whole layers ------------------------------------------------------------------------

// decoder_layer_extend_from_kernels with the activations on the device: the
// same kernels in the same order, each rounding its output to the storage
// format as the per-call path does, so the numbers are the same; only x, the
// cached keys and values, the norms and the weights not kept resident are
// copied in, and the output and new keys and values out.
absl::StatusOr<extend_result> cuda_backend::layer_extend(const decoder_config& cfg,
                                                         const decoder_layer_weights& w,
                                                         const_matrix_view x,
                                                         std::span<const std::int64_t> seq_offsets,
                                                         std::span<const past_kv> past) {
  last_layer_device_seconds_ = 0.0;
  const auto* mlp = std::get_if<swiglu_weights>(&w.ffn);
  const absl::StatusOr<extend_plan> plan = plan_extend(cfg, w, x, seq_offsets, past);
  // The kernels' checks of the scalars the layer hands them (the shapes are
  // plan_extend's).
  auto scalars = [&]() -> absl::Status {
    SATEMU_GPU_RETURN_IF_ERROR(check_rmsnorm(w.attn_norm, w.attn_norm, cfg.rms_eps));
    SATEMU_GPU_RETURN_IF_ERROR(check_rope(cfg.attn, const_matrix_view{nullptr, 0, cfg.attn.q_dim()},
                                          const_matrix_view{}, {}));
    SATEMU_GPU_RETURN_IF_ERROR(check_attention_config("attention_prefill", cfg.attn));
    return attention_limits("attention_prefill", cfg.attn);
  };
  // MoE layers, and anything a kernel may refuse, go call by call (which
  // reports the errors).
  if (mlp == nullptr || !plan.ok() || !scalars().ok() || mlp->gate.dim(0) == 0 ||
      x.rows + plan->past_rows > INT32_MAX)
    return decoder_layer_extend_from_kernels(*this, cfg, w, x, seq_offsets, past);
  const std::int64_t past_rows = plan->past_rows;
  // The launches of the call-by-call layer, in its order.
  std::vector<op> launches = {op::rmsnorm, op::gemm, op::gemm, op::gemm};
  if (cfg.qk_norm)
    launches.insert(launches.end(), {op::rmsnorm, op::rmsnorm});
  launches.insert(launches.end(), {op::rope, op::attention_prefill, op::gemm});
  if (cfg.sandwich_norm)
    launches.push_back(op::rmsnorm);
  launches.insert(launches.end(), {op::add, op::rmsnorm, op::gemm, op::gemm,
                                   cfg.activation == mlp_activation::gelu_tanh ? op::gelu_mul
                                                                               : op::silu_mul,
                                   op::gemm});
  if (cfg.sandwich_norm)
    launches.push_back(op::rmsnorm);
  launches.push_back(op::add);
  for (const op k : launches)
    count_launch(k);
  const std::int64_t t = x.rows;
  const std::int64_t d = cfg.hidden;
  const std::int64_t qd = cfg.attn.q_dim();
  const std::int64_t kvd = cfg.attn.kv_dim();
  const std::int64_t hd = cfg.attn.head_dim;
  const std::int64_t f = mlp->gate.dim(0);
  extend_result r{tensor({t, d}), tensor({t, kvd}), tensor({t, kvd})};
  if (t == 0)
    return r;
  const std::size_t n_seq = seq_offsets.size() - 1;

  SATEMU_GPU_RETURN_IF_ERROR(begin());
  // Every host input goes to the device before the first kernel, so that no
  // copy from pageable memory waits behind the kernels queued before it.
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* x_dev, upload(x.data, x.size()));
  auto upload_norm = [&](const tensor& weight, bool used) -> absl::StatusOr<const float*> {
    if (!used)
      return nullptr;
    return upload(weight.data(), weight.numel());
  };
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* attn_norm, upload_norm(w.attn_norm, true));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* mlp_norm, upload_norm(w.mlp_norm, true));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* q_norm, upload_norm(w.q_norm, cfg.qk_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* k_norm, upload_norm(w.k_norm, cfg.qk_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* attn_out_norm,
                              upload_norm(w.attn_out_norm, cfg.sandwich_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(const float* mlp_out_norm,
                              upload_norm(w.mlp_out_norm, cfg.sandwich_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(const rope_tables rope_in,
                              upload_rope_tables(cfg.attn, plan->positions));
  // With cached rows, each sequence's keys and values are its cached ones
  // followed by its new ones (as decoder_layer_extend_from_kernels), in ka
  // and va: the cached ones copied in now, the new ones after RoPE.
  float* ka = nullptr;
  float* va = nullptr;
  std::vector<std::int64_t> kv_offsets{0};
  auto copy = [&](float* to, const float* from, std::int64_t n_floats, cudaMemcpyKind kind) {
    return cuda_status(n_floats == 0 ? cudaSuccess
                                     : cudaMemcpyAsync(to, from,
                                                       static_cast<std::size_t>(n_floats) *
                                                           sizeof(float),
                                                       kind, stream_),
                       "copy of attention rows");
  };
  if (past_rows != 0) {
    SATEMU_GPU_ASSIGN_OR_RETURN(ka, mem_.alloc<float>((t + past_rows) * kvd));
    SATEMU_GPU_ASSIGN_OR_RETURN(va, mem_.alloc<float>((t + past_rows) * kvd));
    for (std::size_t s = 0; s < n_seq; ++s) {
      const std::int64_t at = kv_offsets.back();
      const std::int64_t n_past = past[s].k.rows;
      SATEMU_GPU_RETURN_IF_ERROR(
          copy(ka + at * kvd, past[s].k.data, n_past * kvd, cudaMemcpyHostToDevice));
      SATEMU_GPU_RETURN_IF_ERROR(
          copy(va + at * kvd, past[s].v.data, n_past * kvd, cudaMemcpyHostToDevice));
      kv_offsets.push_back(at + n_past + seq_offsets[s + 1] - seq_offsets[s]);
    }
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(
      const device_tiles tiles,
      upload_tiles(prefill_tiles(
          cfg.attn, past_rows != 0 ? std::span<const std::int64_t>(kv_offsets) : seq_offsets,
          seq_offsets)));
  SATEMU_GPU_CUDA_TRY(cudaEventRecord(layer_start_, stream_), "cudaEventRecord");
  // rmsnorm of `rows` rows of `cols` with weight `w_dev` into y, or with
  // `half` into it in the 16-bit GEMM input format (launch_rmsnorm).
  auto norm_into = [&](const float* in, std::int64_t rows, std::int64_t cols,
                       const float* w_dev, float* y, void* half) -> absl::Status {
    SATEMU_GPU_CUDA_TRY(
        launch_rmsnorm(in, w_dev, y, rows, cols, cfg.rms_eps, storage_, stream_, half),
        "rmsnorm");
    return absl::OkStatus();
  };
  // The same into new fp32 memory.
  auto norm = [&](const float* in, std::int64_t rows, std::int64_t cols,
                  const float* w_dev) -> absl::StatusOr<float*> {
    SATEMU_GPU_ASSIGN_OR_RETURN(float* y, mem_.alloc<float>(rows * cols));
    SATEMU_GPU_RETURN_IF_ERROR(norm_into(in, rows, cols, w_dev, y, nullptr));
    return y;
  };
  // rmsnorm(in) `[t, d]` in the GEMM input format: written as such by the
  // kernel where that has 16 bits.
  auto norm_operand = [&](const float* in, const float* w_dev) -> absl::StatusOr<const void*> {
    if (storage_ == cuda_storage::f32) {
      SATEMU_GPU_ASSIGN_OR_RETURN(float* y, norm(in, t, d, w_dev));
      return activation_operand(y, t * d);
    }
    SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * y, mem_.alloc<std::uint16_t>(t * d));
    SATEMU_GPU_RETURN_IF_ERROR(norm_into(in, t, d, w_dev, nullptr, y));
    return static_cast<const void*>(y);
  };
  // Attention block: n1 = rmsnorm(x); q, k, v = n1 wq^T + bq, ...; per-head
  // q/k norms; RoPE. The kernels round what they read, so a GEMM result read
  // only by them is not rounded first; v is (it is returned), and k is
  // rounded by RoPE, which rewrites every element (head_dim is even).
  SATEMU_GPU_ASSIGN_OR_RETURN(const void* n1_op, norm_operand(x_dev, attn_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* q, mem_.alloc<float>(t * qd));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* k, mem_.alloc<float>(t * kvd));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* v, mem_.alloc<float>(t * kvd));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(n1_op, t, w.wq, q, w.bq.values(), false));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(n1_op, t, w.wk, k, w.bk.values(), false));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(n1_op, t, w.wv, v, w.bv.values()));
  if (cfg.qk_norm) {
    SATEMU_GPU_ASSIGN_OR_RETURN(q, norm(q, t * cfg.attn.n_heads, hd, q_norm));
    SATEMU_GPU_ASSIGN_OR_RETURN(k, norm(k, t * cfg.attn.n_kv_heads, hd, k_norm));
  }
  SATEMU_GPU_RETURN_IF_ERROR(rope_dev(cfg.attn, q, k, t, rope_in));
  // The attention output, written as the GEMM input format where that has
  // 16 bits.
  float* attn = nullptr;
  std::uint16_t* attn_half = nullptr;
  if (storage_ == cuda_storage::f32) {
    SATEMU_GPU_ASSIGN_OR_RETURN(attn, mem_.alloc<float>(t * qd));
  } else {
    SATEMU_GPU_ASSIGN_OR_RETURN(attn_half, mem_.alloc<std::uint16_t>(t * qd));
  }
  if (past_rows == 0) {
    SATEMU_GPU_RETURN_IF_ERROR(attention_dev(cfg.attn, q, k, v, attn, tiles, attn_half));
  } else {
    // The new keys and values after each sequence's cached ones; the new
    // queries attend to them in place.
    for (std::size_t s = 0; s < n_seq; ++s) {
      const std::int64_t first = seq_offsets[s];
      const std::int64_t n_new = seq_offsets[s + 1] - first;
      const std::int64_t to = kv_offsets[s + 1] - n_new;
      SATEMU_GPU_RETURN_IF_ERROR(
          copy(ka + to * kvd, k + first * kvd, n_new * kvd, cudaMemcpyDeviceToDevice));
      SATEMU_GPU_RETURN_IF_ERROR(
          copy(va + to * kvd, v + first * kvd, n_new * kvd, cudaMemcpyDeviceToDevice));
    }
    SATEMU_GPU_RETURN_IF_ERROR(attention_dev(cfg.attn, q, ka, va, attn, tiles, attn_half));
  }
  // h = x + N_a(attn wo^T), N_a the sandwich norm if the layer has it.
  const void* attn_op = attn_half;
  if (attn != nullptr) {
    SATEMU_GPU_ASSIGN_OR_RETURN(attn_op, activation_operand(attn, t * qd));
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(float* h, mem_.alloc<float>(t * d));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(attn_op, t, w.wo, h, {}, false));
  if (cfg.sandwich_norm) {
    SATEMU_GPU_ASSIGN_OR_RETURN(h, norm(h, t, d, attn_out_norm));
  }
  SATEMU_GPU_CUDA_TRY(launch_add(h, x_dev, t * d, storage_, stream_), "add");
  // MLP block: out = h + N_m(down(act(gate n2) * up n2)), n2 = rmsnorm(h).
  SATEMU_GPU_ASSIGN_OR_RETURN(const void* n2_op, norm_operand(h, mlp_norm));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* g, mem_.alloc<float>(t * f));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* u, mem_.alloc<float>(t * f));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(n2_op, t, mlp->gate, g, {}, false));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(n2_op, t, mlp->up, u, {}, false));
  const bool gelu = cfg.activation == mlp_activation::gelu_tanh;
  const void* a_op = nullptr;
  if (storage_ == cuda_storage::f32) {
    SATEMU_GPU_ASSIGN_OR_RETURN(float* a, mem_.alloc<float>(t * f));
    SATEMU_GPU_CUDA_TRY(launch_glu(gelu, g, u, a, t * f, storage_, stream_),
                        gelu ? "gelu_mul" : "silu_mul");
    SATEMU_GPU_ASSIGN_OR_RETURN(a_op, activation_operand(a, t * f));
  } else {
    SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * a, mem_.alloc<std::uint16_t>(t * f));
    SATEMU_GPU_CUDA_TRY(launch_glu(gelu, g, u, nullptr, t * f, storage_, stream_, a),
                        gelu ? "gelu_mul" : "silu_mul");
    a_op = a;
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(float* out, mem_.alloc<float>(t * d));
  SATEMU_GPU_RETURN_IF_ERROR(linear_dev(a_op, t, mlp->down, out, {}, false));
  if (cfg.sandwich_norm) {
    SATEMU_GPU_ASSIGN_OR_RETURN(out, norm(out, t, d, mlp_out_norm));
  }
  SATEMU_GPU_CUDA_TRY(launch_add(out, h, t * d, storage_, stream_), "add");
  SATEMU_GPU_CUDA_TRY(cudaEventRecord(layer_end_, stream_), "cudaEventRecord");
  SATEMU_GPU_RETURN_IF_ERROR(download(r.out.data(), out, t * d));
  SATEMU_GPU_RETURN_IF_ERROR(download(r.k.data(), k, t * kvd));
  SATEMU_GPU_RETURN_IF_ERROR(download(r.v.data(), v, t * kvd));
  SATEMU_GPU_RETURN_IF_ERROR(finish("decoder layer"));
  float ms = 0.0f;
  SATEMU_GPU_CUDA_TRY(cudaEventElapsedTime(&ms, layer_start_, layer_end_), "cudaEventElapsedTime");
  last_layer_device_seconds_ = static_cast<double>(ms) * 1e-3;
  return r;
}

// --- Device-side timings ------------------------------------------------------------------

// Owns device memory, a stream and events for one timing run.
class timing_session {
public:
  timing_session() = default;
  timing_session(const timing_session&) = delete;
  timing_session& operator=(const timing_session&) = delete;
  ~timing_session() {
    if (stream_ != nullptr)
      cudaStreamSynchronize(stream_);
    for (void* p : buffers_)
      cudaFree(p);
    for (cudaEvent_t e : events_)
      cudaEventDestroy(e);
    if (stream_ != nullptr)
      cudaStreamDestroy(stream_);
  }

  absl::Status start() {
    SATEMU_GPU_CUDA_TRY(cudaSetDevice(0), "cudaSetDevice");
    SATEMU_GPU_CUDA_TRY(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking),
                        "cudaStreamCreate");
    return absl::OkStatus();
  }
  cudaStream_t stream() const { return stream_; }

  template <typename T>
  absl::StatusOr<T*> alloc(std::int64_t n) {
    void* p = nullptr;
    const std::size_t bytes = std::max<std::size_t>(static_cast<std::size_t>(n) * sizeof(T), 1);
    SATEMU_GPU_CUDA_TRY(cudaMalloc(&p, bytes), "cudaMalloc");
    buffers_.push_back(p);
    return static_cast<T*>(p);
  }

  /// Median seconds of `fn` (which enqueues work on stream()) over
  /// `iterations` runs after one warm-up run.
  absl::StatusOr<double> time(int iterations, const std::function<absl::Status()>& fn) {
    iterations = std::max(iterations, 1);
    SATEMU_GPU_RETURN_IF_ERROR(fn());
    SATEMU_GPU_CUDA_TRY(cudaStreamSynchronize(stream_), "warm-up");
    events_.resize(static_cast<std::size_t>(2 * iterations), nullptr);
    for (cudaEvent_t& e : events_)
      SATEMU_GPU_CUDA_TRY(cudaEventCreate(&e), "cudaEventCreate");
    for (int i = 0; i < iterations; ++i) {
      SATEMU_GPU_CUDA_TRY(cudaEventRecord(events_[static_cast<std::size_t>(2 * i)], stream_),
                          "cudaEventRecord");
      SATEMU_GPU_RETURN_IF_ERROR(fn());
      SATEMU_GPU_CUDA_TRY(cudaEventRecord(events_[static_cast<std::size_t>(2 * i + 1)], stream_),
                          "cudaEventRecord");
    }
    SATEMU_GPU_CUDA_TRY(cudaStreamSynchronize(stream_), "timed runs");
    std::vector<double> seconds;
    for (int i = 0; i < iterations; ++i) {
      float ms = 0.0f;
      SATEMU_GPU_CUDA_TRY(cudaEventElapsedTime(&ms, events_[static_cast<std::size_t>(2 * i)],
                                               events_[static_cast<std::size_t>(2 * i + 1)]),
                          "cudaEventElapsedTime");
      seconds.push_back(ms * 1e-3);
    }
    std::nth_element(seconds.begin(), seconds.begin() + iterations / 2, seconds.end());
    return seconds[static_cast<std::size_t>(iterations / 2)];
  }

private:
  cudaStream_t stream_ = nullptr;
  std::vector<void*> buffers_;
  std::vector<cudaEvent_t> events_;
};

// Owns a cuBLAS handle.
struct blas_handle {
  const cublas_api* api = nullptr;
  cublasHandle_t h = nullptr;
  ~blas_handle() {
    if (h != nullptr)
      api->destroy(h);
  }
};

} // namespace

absl::StatusOr<std::unique_ptr<backend>> new_cuda_backend(const cuda_options& options) {
  return cuda_backend::create(options);
}

absl::StatusOr<double> cuda_gemm_seconds_impl(cuda_precision p, std::int64_t m, std::int64_t n,
                                              std::int64_t k, int iterations) {
  if (m <= 0 || n <= 0 || k <= 0 || m > INT32_MAX || n > INT32_MAX || k > INT32_MAX)
    return absl::InvalidArgumentError(
        absl::StrCat("cuda_gemm_seconds: bad shape ", m, " x ", n, " x ", k));
  SATEMU_GPU_ASSIGN_OR_RETURN(const cublas_api* api, load_cublas());
  timing_session t;
  SATEMU_GPU_RETURN_IF_ERROR(t.start());
  blas_handle blas{api};
  SATEMU_GPU_RETURN_IF_ERROR(blas_status(*api, api->create(&blas.h), "cublasCreate"));
  SATEMU_GPU_RETURN_IF_ERROR(
      blas_status(*api, api->set_stream(blas.h, t.stream()), "cublasSetStream"));
  const cuda_storage s = storage_of(p);
  SATEMU_GPU_ASSIGN_OR_RETURN(float* a32, t.alloc<float>(m * k));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* b32, t.alloc<float>(k * n));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* c, t.alloc<float>(m * n));
  SATEMU_GPU_CUDA_TRY(launch_fill(a32, m * k, 1, t.stream()), "fill");
  SATEMU_GPU_CUDA_TRY(launch_fill(b32, k * n, 2, t.stream()), "fill");
  const void* a = a32;
  const void* b = b32;
  if (s != cuda_storage::f32) {
    SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * a16, t.alloc<std::uint16_t>(m * k));
    SATEMU_GPU_ASSIGN_OR_RETURN(std::uint16_t * b16, t.alloc<std::uint16_t>(k * n));
    SATEMU_GPU_CUDA_TRY(launch_to_half(a32, a16, m * k, s, t.stream()), "to_half");
    SATEMU_GPU_CUDA_TRY(launch_to_half(b32, b16, k * n, s, t.stream()), "to_half");
    a = a16;
    b = b16;
  }
  const float alpha = 1.0f;
  const float beta = 0.0f;
  const cudaDataType in = gemm_input_type(s);
  return t.time(iterations, [&]() -> absl::Status {
    // Row-major C = A B as column-major C^T = B^T A^T.
    return blas_status(*api,
                       api->gemm_ex(blas.h, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(n),
                                    static_cast<int>(m), static_cast<int>(k), &alpha, b, in,
                                    static_cast<int>(n), a, in, static_cast<int>(k), &beta, c,
                                    CUDA_R_32F, static_cast<int>(n), gemm_compute_type(p),
                                    CUBLAS_GEMM_DEFAULT),
                       "cublasGemmEx");
  });
}

absl::StatusOr<double> cuda_quantize_seconds_impl(std::int64_t rows, std::int64_t cols, int bits,
                                                  int iterations) {
  if (rows <= 0 || cols <= 0 || rows > INT32_MAX || (bits != 8 && bits != 4))
    return absl::InvalidArgumentError(absl::StrCat("cuda_quantize_seconds: bad shape ", rows,
                                                   " x ", cols, " or bits ", bits));
  timing_session t;
  SATEMU_GPU_RETURN_IF_ERROR(t.start());
  const std::int64_t row_bytes = bits == 8 ? cols : (cols + 1) / 2;
  SATEMU_GPU_ASSIGN_OR_RETURN(float* x, t.alloc<float>(rows * cols));
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint8_t * codes, t.alloc<std::uint8_t>(rows * row_bytes));
  SATEMU_GPU_ASSIGN_OR_RETURN(float* scales, t.alloc<float>(rows));
  SATEMU_GPU_CUDA_TRY(launch_fill(x, rows * cols, 3, t.stream()), "fill");
  return t.time(iterations, [&]() -> absl::Status {
    return cuda_status(launch_quantize(x, rows, cols, bits, codes, scales, t.stream()),
                       "quantize");
  });
}

absl::StatusOr<double> cuda_copy_seconds_impl(std::int64_t bytes, int iterations) {
  if (bytes <= 0)
    return absl::InvalidArgumentError(absl::StrCat("cuda_copy_seconds: bad size ", bytes));
  timing_session t;
  SATEMU_GPU_RETURN_IF_ERROR(t.start());
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint8_t * src, t.alloc<std::uint8_t>(bytes));
  SATEMU_GPU_ASSIGN_OR_RETURN(std::uint8_t * dst, t.alloc<std::uint8_t>(bytes));
  SATEMU_GPU_CUDA_TRY(cudaMemsetAsync(src, 1, static_cast<std::size_t>(bytes), t.stream()),
                      "cudaMemset");
  return t.time(iterations, [&]() -> absl::Status {
    return cuda_status(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(bytes),
                                       cudaMemcpyDeviceToDevice, t.stream()),
                       "cudaMemcpy device to device");
  });
}

} // namespace satemu::gpu::detail
