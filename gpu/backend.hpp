/// @file backend.hpp
/// The compute backend interface: the kernels every backend implements on
/// fp32 host tensors, and the factory that picks one. Backends: `cpu`
/// (cpu_backend.hpp: OpenBLAS and plain loops, the reference) and `cuda`
/// (cuda_backend.hpp: cuBLAS and own kernels; each call copies its inputs to
/// the GPU, computes there in bf16, fp16, tf32 or fp32, and copies the
/// results back; weights kept resident and whole layers on the device save
/// most of those copies: keep_resident, layer_extend).
///
/// Layouts (all row-major, see tensor.hpp):
/// - Activations are `[tokens, features]` matrices. Tokens of several
///   sequences are packed back to back ("ragged batch"): sequence `s` owns rows
///   `[seq_offsets[s], seq_offsets[s+1])`, with `seq_offsets` of size n_seq + 1,
///   starting at 0, non-decreasing and ending at the number of rows.
/// - Attention heads are contiguous column blocks: q is `[tokens, n_heads *
///   head_dim]` with head h in columns `[h*head_dim, (h+1)*head_dim)`; k and v
///   are `[tokens, n_kv_heads * head_dim]`. Query head h reads kv head
///   `h / (n_heads / n_kv_heads)` (grouped-query attention as in HF `repeat_kv`).
/// - Linear weights are stored as PyTorch/safetensors do, `[out_features,
///   in_features]`, and applied as `y = x W^T` (GEMM with `trans_b`).
///
/// Errors: shapes and indices that can come from weights or messages are
/// checked and reported as `absl::InvalidArgument` naming the kernel and the
/// shapes; a failed call leaves its outputs unspecified. Null data behind a
/// non-empty view is a programmer error and aborts.
///
/// Launches: each kernel call counts one launch of its kind (`op`), whatever
/// the batch size, so batching can be checked ("one launch per layer"). The
/// composite layers in layers.hpp count the kernels they are built from.
///
/// A backend object is used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/rope.hpp"
#include "gpu/tensor.hpp"

namespace satemu::gpu {

// layers.hpp: the whole-layer calls a backend may run its own way.
struct decoder_config;
struct decoder_layer_weights;
struct past_kv;
struct extend_result;

// --- Launch accounting ---------------------------------------------------

/// The kernel kinds a backend counts.
enum class op : int {
  gemm = 0,
  gemm_strided_batched,
  gemm_grouped,
  rmsnorm,
  rope,
  attention_prefill,
  attention_decode,
  kv_store,
  silu_mul,
  gelu_mul,
  add,
  add_gated,
  router_topk,
  moe_gather,
  moe_combine,
  quantize,
  dequantize,
  sparsify,
  densify,
  cast_half,
  uncast_half,
};
inline constexpr int op_count = static_cast<int>(op::uncast_half) + 1;

/// "gemm", "attention_prefill", ...
std::string_view op_name(op k);

/// Launches per kernel kind since construction or the last reset.
struct launch_counts {
  std::array<std::uint64_t, op_count> by_op{};

  std::uint64_t operator[](op k) const { return by_op[static_cast<std::size_t>(k)]; }
  std::uint64_t total() const;
  /// "gemm=7 rmsnorm=2 ..." listing the non-zero kinds in enum order.
  std::string to_string() const;
};

// --- Argument types -------------------------------------------------------

/// C = alpha * op(A) * op(B) + beta * C, op(X) = X or X^T. op(A) is M x K,
/// op(B) is K x N, C is M x N; A is stored M x K (K x M when trans_a), B is
/// stored K x N (N x K when trans_b). With beta == 0, C is only written (its
/// old contents, even NaN, do not matter).
struct gemm_op {
  bool trans_a = false;
  bool trans_b = false;
  float alpha = 1.0f;
  float beta = 0.0f;
};

/// One independent problem of a grouped GEMM. Problems may have different
/// M, N and K; a problem with M, N or K equal to 0 is valid (for K = 0, C
/// becomes beta * C).
struct gemm_problem {
  const_matrix_view a;
  const_matrix_view b;
  matrix_view c;
};

/// Shapes of multi-head attention.
struct attention_config {
  std::int64_t n_heads = 0;
  std::int64_t n_kv_heads = 0; ///< divides n_heads
  std::int64_t head_dim = 0;   ///< even (RoPE rotates halves)
  /// Softmax scale; 0 means 1 / sqrt(head_dim).
  float scale = 0.0f;
  /// RoPE base (theta); used by the layers in layers.hpp.
  float rope_theta = 10000.0f;
  /// Llama 3 frequency scaling of RoPE (rope.hpp); off by default.
  llama3_rope_scaling rope_scaling{};
  /// Sliding-window attention (Gemma 3's local layers): a query at position p
  /// attends to the keys at positions p - window + 1 .. p only. 0: to every
  /// earlier key.
  std::int64_t window = 0;

  std::int64_t q_dim() const { return n_heads * head_dim; }
  std::int64_t kv_dim() const { return n_kv_heads * head_dim; }
  float softmax_scale() const;
};

/// Keys and values of past tokens, per sequence slot: `k` and `v` are
/// `[n_seq, capacity, n_kv_heads * head_dim]`, row `[s, p]` holding position p
/// of sequence s. Which positions are valid is tracked by the caller
/// (`lengths` in attention_decode).
struct kv_cache {
  tensor k;
  tensor v;

  kv_cache() = default;
  kv_cache(std::int64_t n_seq, std::int64_t capacity, std::int64_t kv_dim)
      : k({n_seq, capacity, kv_dim}), v({n_seq, capacity, kv_dim}) {}
  std::int64_t n_seq() const { return k.rank() == 3 ? k.dim(0) : 0; }
  std::int64_t capacity() const { return k.rank() == 3 ? k.dim(1) : 0; }
  std::int64_t kv_dim() const { return k.rank() == 3 ? k.dim(2) : 0; }
};

/// Top-k routing of tokens to experts, and the dispatch plan that groups the
/// `tokens * k` (token, choice) slots by expert.
struct moe_routing {
  std::int64_t tokens = 0;
  std::int64_t n_experts = 0;
  std::int64_t k = 0;
  /// [tokens * k]: the experts of token t at [t*k, t*k + k), by descending
  /// router probability, ties towards the lower expert index.
  std::vector<std::int32_t> expert;
  /// [tokens * k]: the matching weights: the experts' router probabilities,
  /// renormalised to sum to 1 per token where the router renormalises.
  std::vector<float> weight;
  /// [n_experts + 1]: expert e owns rows [expert_offsets[e], expert_offsets[e+1])
  /// of the dispatched (gathered) buffer. Within an expert, rows follow
  /// ascending token index.
  std::vector<std::int64_t> expert_offsets;
  /// [tokens * k]: the dispatched row of slot (t, j), at index t*k + j.
  std::vector<std::int64_t> row_of_slot;
  /// [tokens * k]: the token behind each dispatched row.
  std::vector<std::int32_t> token_of_row;

  /// Rows routed to expert e.
  std::int64_t expert_rows(std::int64_t e) const {
    return expert_offsets[static_cast<std::size_t>(e + 1)] -
           expert_offsets[static_cast<std::size_t>(e)];
  }
};

/// Fills the dispatch plan of `r` (`expert_offsets`, `row_of_slot`,
/// `token_of_row`) from `tokens`, `n_experts`, `k` and `expert` (every entry
/// in [0, n_experts)): a stable counting sort of the slots by expert. Every
/// backend's router builds its plan with this, on the host.
void plan_dispatch(moe_routing& r);

/// Per-token symmetric integer quantisation of a `[rows, cols]` matrix.
/// Row r has `scale = max|x_r| / qmax` rounded toward zero (qmax = 127 for
/// 8 bits, 7 for 4 bits), so that no restored value exceeds max|x_r| in
/// magnitude (a row holding FLT_MAX restores finite), and codes
/// `q = round_half_even(x / scale)` clamped to [-qmax, qmax]; x is restored as
/// `q * scale`. The scale is 0, and the row restores as zeros, for an all-zero
/// row or one whose max|x| is below qmax x 2^-149 (about 1.8e-43 for 8 bits).
/// Storage of `codes`: 8 bits: one two's-complement byte per element, row
/// stride `cols`. 4 bits: two's-complement nibbles, element 2j of a row in
/// the low nibble of byte j and element 2j+1 in the high nibble; each row
/// takes `ceil(cols / 2)` bytes (an odd row ends with a zero high nibble).
struct quantized_activations {
  int bits = 8; ///< 8 or 4
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<std::uint8_t> codes;
  std::vector<float> scales; ///< [rows]

  std::int64_t row_bytes() const { return bits == 4 ? (cols + 1) / 2 : cols; }
  /// Bytes on the wire: codes plus one fp32 scale per row.
  std::int64_t size_bytes() const;
  /// Zero codes and scales for a `[rows, cols]` matrix at `bits`.
  static quantized_activations zeros(std::int64_t rows, std::int64_t cols, int bits);
};

/// Top-k sparsification of a `[rows, cols]` matrix: for each row the k
/// entries of largest |x| (ties towards the lower column), stored in
/// ascending column order at [r*k, r*k + k).
struct sparse_activations {
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::int64_t k = 0;
  std::vector<float> values;         ///< [rows * k]
  std::vector<std::int32_t> indices; ///< [rows * k], columns

  /// Bytes on the wire: fp32 value plus int32 column per kept entry.
  std::int64_t size_bytes() const;
  /// Zero values and indices for k entries per row of a `[rows, cols]` matrix.
  static sparse_activations zeros(std::int64_t rows, std::int64_t cols, std::int64_t k);
};

/// 16-bit float formats.
enum class half_type : int { fp16 = 0, bf16 = 1 };
std::string_view half_type_name(half_type t);

/// A `[rows, cols]` matrix cast to a 16-bit float format (bit patterns, see half.hpp).
struct half_activations {
  half_type type = half_type::fp16;
  std::int64_t rows = 0;
  std::int64_t cols = 0;
  std::vector<std::uint16_t> bits; ///< [rows * cols]

  std::int64_t size_bytes() const { return 2 * rows * cols; }
  /// Zero bits of type `t` for a `[rows, cols]` matrix.
  static half_activations zeros(std::int64_t rows, std::int64_t cols, half_type t);
};

// --- The interface --------------------------------------------------------

class backend {
public:
  virtual ~backend() = default;
  backend(const backend&) = delete;
  backend& operator=(const backend&) = delete;

  /// "cpu", "cuda".
  virtual std::string_view name() const = 0;

  /// Launch counts per kernel kind.
  const launch_counts& launches() const { return launches_; }
  void reset_launch_counts() { launches_ = {}; }

  // GEMM ------------------------------------------------------------------

  /// C = alpha op(A) op(B) + beta C (see gemm_op). Shapes must agree.
  virtual absl::Status gemm(const gemm_op& o, const_matrix_view a, const_matrix_view b,
                            matrix_view c) = 0;

  /// `batch` GEMMs of the same shape in one launch: problem i uses
  /// `a.data + i*stride_a`, `b.data + i*stride_b`, `c.data + i*stride_c`, where
  /// a, b, c describe problem 0's matrices. A stride of 0 for A or B shares
  /// one matrix across the batch; otherwise strides must be >= that matrix's
  /// size (no overlap), and stride_c must be >= c.size() (when batch > 1).
  /// On the cpu backend each problem gives bitwise the result of the same
  /// `gemm` call; on the cuda backend it may differ within the precision's
  /// rounding (cuBLAS picks its kernels by shape).
  virtual absl::Status gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                            const_matrix_view a, std::int64_t stride_a,
                                            const_matrix_view b, std::int64_t stride_b,
                                            matrix_view c, std::int64_t stride_c) = 0;

  /// Independent problems (any M, N, K) with shared transpose flags and
  /// scalars, in one launch. Each gives bitwise the result of the same `gemm`
  /// call. Overlapping outputs are rejected; an output that overlaps an input
  /// gives unspecified results.
  virtual absl::Status gemm_grouped(const gemm_op& o, std::span<const gemm_problem> problems) = 0;

  // Transformer kernels -----------------------------------------------------

  /// y[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight; weight has cols(x) values.
  virtual absl::StatusOr<tensor> rmsnorm(const_matrix_view x, const_matrix_view weight,
                                         float eps) = 0;

  /// Rotary position embedding, in place on q `[tokens, n_heads*head_dim]` and
  /// k `[tokens, n_kv_heads*head_dim]` (k may have 0 rows to rotate q only,
  /// and then `cfg.n_kv_heads` is not used). "Rotate half" convention of
  /// HF Llama / GPT-NeoX: within a head, element i < head_dim/2 pairs with
  /// i + head_dim/2, angle = position * theta^(-2i / head_dim), and
  ///   x_i' = x_i cos - x_{i+d/2} sin,   x_{i+d/2}' = x_{i+d/2} cos + x_i sin.
  /// `positions` has one entry per token (>= 0). Angles are computed in double.
  virtual absl::Status rope(const attention_config& cfg, matrix_view q, matrix_view k,
                            std::span<const std::int64_t> positions) = 0;

  /// Causal self-attention over a ragged batch: token i of a sequence attends
  /// to tokens 0..i of the same sequence (max(0, i - window + 1)..i with a
  /// sliding window). q `[T, q_dim]`, k and v `[T, kv_dim]`;
  /// returns `[T, q_dim]` (heads concatenated, before the output projection).
  /// k and v must be finite: masked positions are weighted by an exact zero.
  /// The same as the call below with `query_offsets` = `seq_offsets`.
  absl::StatusOr<tensor> attention_prefill(const attention_config& cfg, const_matrix_view q,
                                           const_matrix_view k, const_matrix_view v,
                                           std::span<const std::int64_t> seq_offsets) {
    return attention_prefill(cfg, q, k, v, seq_offsets, seq_offsets);
  }

  /// The same where only each sequence's last positions have queries (a
  /// prefill continuing cached keys and values): sequence s has keys and
  /// values in rows seq_offsets[s] .. seq_offsets[s+1]-1 of k and v (K_s
  /// positions) and queries in rows query_offsets[s] .. query_offsets[s+1]-1
  /// of q (Q_s <= K_s); its query i is at position K_s - Q_s + i and attends
  /// as above. Returns `[rows of q, q_dim]`. Each row's output is the one the
  /// call with a query at every position gives for that position.
  virtual absl::StatusOr<tensor> attention_prefill(
      const attention_config& cfg, const_matrix_view q, const_matrix_view k,
      const_matrix_view v, std::span<const std::int64_t> seq_offsets,
      std::span<const std::int64_t> query_offsets) = 0;

  /// One new query token per sequence slot against the cache: row s of q
  /// `[n_seq, q_dim]` attends to positions 0..lengths[s]-1 of slot s (the new
  /// token's own k/v must already be stored; with a sliding window, to the
  /// last `window` of them). 1 <= lengths[s] <= capacity.
  /// Returns `[n_seq, q_dim]`.
  virtual absl::StatusOr<tensor> attention_decode(const attention_config& cfg,
                                                  const_matrix_view q, const kv_cache& cache,
                                                  std::span<const std::int64_t> lengths) = 0;

  /// Stores row t of k and v `[T, kv_dim]` at `cache[slot[t], position[t]]`.
  virtual absl::Status kv_store(kv_cache& cache, const_matrix_view k, const_matrix_view v,
                                std::span<const std::int64_t> slot,
                                std::span<const std::int64_t> position) = 0;

  /// silu(gate) * up elementwise, silu(x) = x / (1 + exp(-x)); same shapes.
  virtual absl::StatusOr<tensor> silu_mul(const_matrix_view gate, const_matrix_view up) = 0;

  /// gelu(gate) * up elementwise, with the tanh approximation of GELU
  /// (PyTorch's `gelu(approximate="tanh")`, Gemma's GeGLU):
  /// gelu(x) = x/2 (1 + tanh(z)) = x / (1 + exp(-2z)),
  /// z = sqrt(2/pi) (x + 0.044715 x^3); same shapes.
  virtual absl::StatusOr<tensor> gelu_mul(const_matrix_view gate, const_matrix_view up) = 0;

  /// y += x elementwise (residual connection); same shapes.
  virtual absl::Status add(matrix_view y, const_matrix_view x) = 0;

  /// y[t] += sigmoid(gate[t]) * x[t] for rows t of y and x `[T, C]`, gate
  /// `[T, 1]` (Qwen-MoE's gated shared expert); sigmoid(g) = 1 / (1 + exp(-g)).
  virtual absl::Status add_gated(matrix_view y, const_matrix_view x,
                                 const_matrix_view gate) = 0;

  // Mixture of experts -----------------------------------------------------

  /// Routing from router logits `[tokens, n_experts]`: softmax per token, the
  /// k most probable experts (ties towards the lower index), their
  /// probabilities (renormalised to sum to 1 with `renormalise`: Mixtral;
  /// as they are without: Qwen1.5-MoE), and the dispatch plan.
  /// Selection compares logits (softmax is monotonic), so rounding in exp()
  /// cannot create ties. Non-finite logits are an error.
  virtual absl::StatusOr<moe_routing> router_topk(const_matrix_view logits, std::int64_t k,
                                                  bool renormalise) = 0;

  /// Dispatch: `[tokens*k, cols]` with row `row_of_slot[t*k+j]` = x[t].
  virtual absl::StatusOr<tensor> moe_gather(const_matrix_view x, const moe_routing& r) = 0;

  /// Combine: out[t] = sum over j = 0..k-1 (in that order) of
  /// weight[t*k+j] * y[row_of_slot[t*k+j]]; y is `[tokens*k, cols]`.
  virtual absl::StatusOr<tensor> moe_combine(const_matrix_view y, const moe_routing& r) = 0;

  // Activation compression ---------------------------------------------------

  /// Per-token symmetric quantisation to `bits` = 8 or 4 (quantized_activations).
  /// Non-finite input is an error.
  virtual absl::StatusOr<quantized_activations> quantize(const_matrix_view x, int bits) = 0;
  virtual absl::StatusOr<tensor> dequantize(const quantized_activations& q) = 0;

  /// Keeps the k (0 <= k <= cols) entries of largest |x| per row. NaN input is
  /// an error.
  virtual absl::StatusOr<sparse_activations> sparsify_topk(const_matrix_view x,
                                                           std::int64_t k) = 0;
  /// Dense `[rows, cols]` with zeros where nothing was kept. Out-of-range or
  /// repeated columns in a row are an error.
  virtual absl::StatusOr<tensor> densify(const sparse_activations& s) = 0;

  /// Round to nearest even into fp16 or bf16 (half.hpp), and back (exact).
  virtual absl::StatusOr<half_activations> cast_half(const_matrix_view x, half_type t) = 0;
  virtual absl::StatusOr<tensor> uncast_half(const half_activations& h) = 0;

  // Weights kept on the device ----------------------------------------------

  /// Asks the backend to keep a copy of the matrix `w` in its own memory and
  /// to use it for every GEMM operand whose host data and size are exactly
  /// `w`'s, instead of copying it in on each call (a GPU backend; the cpu
  /// backend computes on host memory and does nothing). Keeping the same
  /// matrix again does nothing. The caller keeps `w`'s host data alive and
  /// unchanged until drop_resident() or the backend's end: the copy is not
  /// refreshed. Results are the same as without the copy.
  virtual absl::Status keep_resident(const_matrix_view w) { return absl::OkStatus(); }
  /// Frees every kept copy.
  virtual void drop_resident() {}
  /// Bytes the kept copies take in the backend's memory.
  virtual std::int64_t resident_bytes() const { return 0; }

  // Whole layers -----------------------------------------------------------------

  /// layers.hpp's decoder_layer_extend, which calls this. The default builds
  /// the layer from this backend's kernels (decoder_layer_extend_from_kernels);
  /// a GPU backend runs it with the activations kept on the device between
  /// the kernels, counting the same launches and giving the same numbers.
  virtual absl::StatusOr<extend_result> layer_extend(const decoder_config& cfg,
                                                     const decoder_layer_weights& w,
                                                     const_matrix_view x,
                                                     std::span<const std::int64_t> seq_offsets,
                                                     std::span<const past_kv> past);
  /// Seconds the device spent on the last layer_extend it ran on the device,
  /// from its input on the device to its results ready to be copied back
  /// (timed with device events: the kernels alone, none of the copies between
  /// host and device); 0 when the last layer_extend did not run on the
  /// device, and always on a backend that computes on the host (cpu).
  virtual double last_layer_device_seconds() const { return 0.0; }

protected:
  backend() = default;
  /// Called by implementations once per kernel call.
  void count_launch(op k) { ++launches_.by_op[static_cast<std::size_t>(k)]; }

private:
  launch_counts launches_;
};

/// Names `make_backend` accepts.
inline constexpr std::array<std::string_view, 3> backend_names = {"auto", "cpu", "cuda"};

/// A backend by name: "cpu" (its kernels on `cpu_threads` >= 1 threads;
/// cpu_backend.hpp); "cuda" (make_cuda_backend with its defaults:
/// bf16 on device 0; Unavailable, saying why, when the binary has no CUDA
/// backend or no CUDA device answers); "auto" (cuda when the CUDA backend is
/// built and a CUDA device answers, cpu otherwise; see device.hpp). Any other
/// name is InvalidArgument listing the accepted names.
absl::StatusOr<std::unique_ptr<backend>> make_backend(std::string_view name, int cpu_threads = 1);

/// The backend "auto" resolves to, with one line saying which and why
/// (e.g. "compute backend: cpu (built without CUDA)", "compute backend: cuda
/// (CUDA device NVIDIA H100 80GB HBM3, bf16)").
struct backend_choice {
  std::string name;
  std::string reason;
  /// "compute backend: cpu (built without CUDA)".
  std::string line() const;
};
backend_choice resolve_auto_backend();

} // namespace satemu::gpu
