/// @file cpu_backend.hpp
/// The `cpu` compute backend: GEMMs through OpenBLAS (`cblas_sgemm`), every
/// other kernel as plain loops over row-major fp32 data.
///
/// Repeatable: the same inputs give bitwise the same outputs, run after run
/// on one machine. (OpenBLAS picks its kernels by CPU model, so another CPU
/// type may differ in the last bits of GEMM results.)
/// Every reduction has a fixed order (no threads split a sum, no fast-math
/// reassociation), and OpenBLAS is set to one thread the first time a
/// `cpu_backend` is constructed (`openblas_set_num_threads(1)`, process-wide),
/// so its blocking cannot depend on the number of threads it picks.
///
/// Threads: a backend made with `threads` > 1 runs the independent pieces of
/// a kernel on that many threads (its own, the caller's included): the
/// column panels of a large GEMM, the problems of a batched or grouped GEMM,
/// the (sequence, head) blocks of attention, and the rows or elements of
/// RMSNorm, RoPE, the GLU products and add. How a kernel is cut depends on
/// its shapes only, never on the thread count, and every piece is one call
/// on one thread, so the results are the same bits for every thread count.
/// (A GEMM with at least 512 output columns and 2^21 multiply-adds is cut
/// into at most 16 column panels of at least 256 columns, each its own
/// OpenBLAS call: its last bits may differ from one uncut call's.)
///
/// Attention uses GEMMs internally (per head: scores = q k^T over blocks of 64
/// queries, then probabilities times v), which are not counted as launches:
/// only the `attention_*` call is.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "gpu/backend.hpp"

namespace satemu::gpu {

namespace detail {
class task_pool;
}

/// The kernels OpenBLAS chose as it loaded ("Haswell", "Cooperlake", ...):
/// from the CPU model, unless the environment variable OPENBLAS_CORETYPE
/// names others. What a GEMM rate was measured on.
std::string openblas_core();

/// The vector instructions a CPU runs (and its OS lets programs use).
struct cpu_vector_features {
  bool avx = false;
  bool avx2 = false;
  bool fma = false;
  /// AVX-512 F, CD, BW, DQ and VL: what OpenBLAS's SkylakeX kernels use.
  bool avx512 = false;
  /// This CPU's (all false on other than x86-64).
  static cpu_vector_features of_this_cpu();
};

/// The kernels to name in OPENBLAS_CORETYPE where OpenBLAS loaded `loaded`
/// ones on a CPU with `cpu`'s features, or "" to leave OpenBLAS's choice.
/// OpenBLAS picks kernels by CPU model, and on a model newer than itself
/// falls back to its generic SSE3 ones, "Prescott" (Debian 12's 0.3.21 on a
/// 5th-generation Xeon: GEMMs at a fifth of the rate of the AVX-512 ones
/// the CPU runs). For that fallback this names the kernels of the widest
/// vector features the CPU has: "SkylakeX" (AVX-512), "Haswell" (AVX2 and
/// FMA), "Sandybridge" (AVX); for any other choice, "".
std::string openblas_core_to_ask_for(std::string_view loaded, const cpu_vector_features& cpu);

/// The threads OpenBLAS runs a call on unless told fewer: as it loaded, the
/// environment variable OPENBLAS_NUM_THREADS, else one per core (it starts
/// all but one of them then). A `cpu_backend` sets it to 1.
int openblas_threads();

/// OpenBLAS starts its threads and picks its kernels as it loads, before
/// main. Threads: one per core unless OPENBLAS_NUM_THREADS says otherwise,
/// each holding about 130 MB of address space (under a `ulimit -v` too small
/// for them they never start, and the process hangs as it exits); satemu
/// calls OpenBLAS on one thread per call. Kernels: see
/// openblas_core_to_ask_for. So satemu's programs (satemu, the test and
/// benchmark programs) call this in main before they start any work: where
/// OPENBLAS_NUM_THREADS is not set it sets it to 1, and where
/// OPENBLAS_CORETYPE is not set and openblas_core_to_ask_for names kernels
/// it sets it to them; if it set either, it starts the program again with
/// `argv` (`execv` of /proc/self/exe), so that OpenBLAS loads with them. It
/// returns, and the program goes on as it is, where both are set or neither
/// needs to be, or where it cannot start the program again: no /proc, or a
/// program that loaded this one (ld.so run by hand), which /proc/self/exe
/// would name instead. Child processes get the settings either way.
void start_with_openblas_settings(char** argv);

class cpu_backend : public backend {
public:
  /// A backend whose kernels run on `threads` >= 1 threads.
  explicit cpu_backend(int threads = 1);
  ~cpu_backend() override;

  int threads() const;
  /// Starts the kernels' threads now rather than at the first kernel that
  /// shares out work: ResourceExhausted, saying how many started, where the
  /// process cannot have them all.
  absl::Status start_threads();

  std::string_view name() const override { return "cpu"; }

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

private:
  std::unique_ptr<detail::task_pool> pool_;

  // silu_mul and gelu_mul (`kind`), with the argument `a` of their sigmoid.
  template <class Arg>
  absl::StatusOr<tensor> glu(op kind, const_matrix_view gate, const_matrix_view up, Arg a);
};

} // namespace satemu::gpu
