#include "gpu/cpu_backend.hpp"

#include <cblas.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"
#include "gpu/detail/cpu_loops.hpp"
#include "gpu/detail/kernel_checks.hpp"
#include "gpu/detail/task_pool.hpp"
#include "gpu/half.hpp"

namespace satemu::gpu {

namespace {

using detail::gemm_dims;

// --- GEMM --------------------------------------------------------------------

// Runs one validated GEMM on row-major operands (A's and B's leading
// dimension = their stored columns; C's `ldc`). Degenerate shapes are
// handled here: BLAS rejects a leading dimension of 0.
void run_sgemm(const gemm_op& o, const gemm_dims& d, const float* a, std::int64_t a_cols,
               const float* b, std::int64_t b_cols, float* c, std::int64_t ldc) {
  if (d.m == 0 || d.n == 0)
    return;
  if (d.k == 0) {
    for (std::int64_t r = 0; r < d.m; ++r) {
      float* row = c + r * ldc;
      if (o.beta == 0.0f)
        std::fill(row, row + d.n, 0.0f);
      else
        for (std::int64_t j = 0; j < d.n; ++j)
          row[j] *= o.beta;
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, o.trans_a ? CblasTrans : CblasNoTrans,
              o.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(d.m),
              static_cast<int>(d.n), static_cast<int>(d.k), o.alpha, a,
              static_cast<int>(a_cols), b, static_cast<int>(b_cols), o.beta, c,
              static_cast<int>(ldc));
}

// --- Threads -----------------------------------------------------------------

// Work below this many multiply-adds runs on the calling thread alone:
// waking the pool would cost more than it saves. (The same bits either way.)
constexpr double min_shared_macs = 1 << 20;

// Runs fn(task, thread) for tasks 0..n-1: on the pool when `macs`, the work
// of all of them, is worth sharing, else on the calling thread.
void run_tasks(detail::task_pool& pool, std::int64_t n, double macs,
               const detail::task_pool::task_fn& fn) {
  if (macs >= min_shared_macs) {
    pool.run(n, fn); // itself runs a single task on the calling thread
    return;
  }
  for (std::int64_t i = 0; i < n; ++i)
    fn(i, 0);
}

// Runs fn(begin, end) over contiguous ranges covering [0, n), on the pool
// when the work (n items of `cost` each, in multiply-add equivalents) is
// worth sharing. For loops whose items are independent of each other: the
// same bits however they are cut.
void for_ranges(detail::task_pool& pool, std::int64_t n, double cost,
                const std::function<void(std::int64_t, std::int64_t)>& fn) {
  const std::int64_t parts = std::min<std::int64_t>(n, 4 * pool.threads());
  if (parts <= 1 || static_cast<double>(n) * cost < min_shared_macs) {
    fn(0, n);
    return;
  }
  pool.run(parts, [&](std::int64_t p, int) { fn(n * p / parts, n * (p + 1) / parts); });
}

// One OpenBLAS call of a GEMM kernel: a whole problem, or a panel of its
// columns.
struct gemm_piece {
  gemm_dims d;
  const float* a;
  std::int64_t a_cols;
  const float* b;
  std::int64_t b_cols;
  float* c;
  std::int64_t ldc;
};

constexpr std::int64_t panel_cols = 256;
constexpr std::int64_t max_panels = 16;

// Appends the problem C = op(A) op(B) to `pieces`: whole, or, with at least
// 2 x 256 output columns and 2^21 multiply-adds, as column panels: at most
// 16, each at least 256 columns wide and a multiple of 64 (every panel
// packs A again, so more and narrower panels would cost more than they
// share). By shape only, so a kernel is the same calls whatever the thread
// count.
void add_pieces(std::vector<gemm_piece>& pieces, const gemm_op& o, const gemm_dims& d,
                const float* a, std::int64_t a_cols, const float* b, std::int64_t b_cols,
                float* c) {
  if (d.n < 2 * panel_cols || d.m * d.n * d.k < (std::int64_t{1} << 21)) {
    pieces.push_back({d, a, a_cols, b, b_cols, c, d.n});
    return;
  }
  const std::int64_t width =
    std::max(panel_cols, (d.n + max_panels * 64 - 1) / (max_panels * 64) * 64);
  for (std::int64_t n0 = 0; n0 < d.n; n0 += width) {
    gemm_dims p = d;
    p.n = std::min(width, d.n - n0);
    // op(B) = B^T: B is [N, K] and the panel its rows n0..; op(B) = B: B is
    // [K, N] and the panel its columns n0.. .
    const float* bp = o.trans_b ? b + n0 * b_cols : b + n0;
    pieces.push_back({p, a, a_cols, bp, b_cols, c + n0, d.n});
  }
}

void run_pieces(detail::task_pool& pool, const gemm_op& o, const std::vector<gemm_piece>& pieces) {
  double macs = 0;
  for (const auto& p : pieces)
    macs += static_cast<double>(p.d.m) * static_cast<double>(p.d.n) * static_cast<double>(p.d.k);
  run_tasks(pool, static_cast<std::int64_t>(pieces.size()), macs, [&](std::int64_t i, int) {
    const gemm_piece& p = pieces[static_cast<std::size_t>(i)];
    run_sgemm(o, p.d, p.a, p.a_cols, p.b, p.b_cols, p.c, p.ldc);
  });
}

// --- Small loops -------------------------------------------------------------

// Row softmax over entries [begin, end) of `row` (in place); the entries
// before `begin` and from `end` to `n` become 0. Sums in a fixed order.
void softmax_range(float* row, std::int64_t begin, std::int64_t end, std::int64_t n) {
  float mx = row[begin];
  for (std::int64_t j = begin + 1; j < end; ++j)
    mx = std::max(mx, row[j]);
  float sum = 0.0f;
  for (std::int64_t j = begin; j < end; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t j = begin; j < end; ++j)
    row[j] *= inv;
  std::fill(row, row + begin, 0.0f);
  std::fill(row + end, row + n, 0.0f);
}

// The first key a query at position `pos` attends to.
std::int64_t first_key(const attention_config& cfg, std::int64_t pos) {
  return cfg.window > 0 ? std::max<std::int64_t>(0, pos - cfg.window + 1) : 0;
}

} // namespace

std::string openblas_core() {
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

int openblas_threads() { return openblas_get_num_threads(); }

namespace {

/// Whether /proc/self/exe is the file the program's entry point was loaded
/// from: not so when ld.so or another loader was the program started.
bool started_as_itself() {
  struct stat exe {};
  if (stat("/proc/self/exe", &exe) != 0)
    return false;
  std::FILE* maps = std::fopen("/proc/self/maps", "r");
  if (maps == nullptr)
    return false;
  const unsigned long entry = getauxval(AT_ENTRY);
  bool same = false;
  char line[4096];
  while (std::fgets(line, sizeof line, maps) != nullptr) {
    // "lo-hi perms offset major:minor inode path"
    unsigned long lo = 0, hi = 0, inode = 0;
    unsigned dev_major = 0, dev_minor = 0;
    if (std::sscanf(line, "%lx-%lx %*s %*s %x:%x %lu", &lo, &hi, &dev_major, &dev_minor,
                    &inode) == 5 &&
        lo <= entry && entry < hi) {
      same = inode == exe.st_ino && dev_major == major(exe.st_dev) &&
             dev_minor == minor(exe.st_dev);
      break;
    }
  }
  std::fclose(maps);
  return same;
}

} // namespace

cpu_vector_features cpu_vector_features::of_this_cpu() {
  cpu_vector_features f;
#if defined(__x86_64__)
  // GCC's checks include the OS's: AVX and AVX-512 count only where the OS
  // saves their registers (XCR0).
  __builtin_cpu_init();
  f.avx = __builtin_cpu_supports("avx") != 0;
  f.avx2 = __builtin_cpu_supports("avx2") != 0;
  f.fma = __builtin_cpu_supports("fma") != 0;
  f.avx512 = __builtin_cpu_supports("avx512f") != 0 && __builtin_cpu_supports("avx512cd") != 0 &&
             __builtin_cpu_supports("avx512bw") != 0 &&
             __builtin_cpu_supports("avx512dq") != 0 && __builtin_cpu_supports("avx512vl") != 0;
#endif
  return f;
}

std::string openblas_core_to_ask_for(std::string_view loaded, const cpu_vector_features& cpu) {
  if (loaded != "Prescott")
    return "";
  if (cpu.avx512)
    return "SkylakeX";
  if (cpu.avx2 && cpu.fma)
    return "Haswell";
  if (cpu.avx)
    return "Sandybridge";
  return "";
}

void start_with_openblas_settings(char** argv) {
  const bool set_threads = std::getenv("OPENBLAS_NUM_THREADS") == nullptr;
  const std::string core =
    std::getenv("OPENBLAS_CORETYPE") == nullptr
      ? openblas_core_to_ask_for(openblas_core(), cpu_vector_features::of_this_cpu())
      : "";
  if ((!set_threads && core.empty()) || !started_as_itself())
    return;
  if (set_threads && setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0)
    return;
  if (!core.empty() && setenv("OPENBLAS_CORETYPE", core.c_str(), 1) != 0)
    return;
  execv("/proc/self/exe", argv);
}

// --- cpu_backend -----------------------------------------------------------

cpu_backend::cpu_backend(int threads) : pool_(std::make_unique<detail::task_pool>(threads)) {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

cpu_backend::~cpu_backend() = default;

int cpu_backend::threads() const { return pool_->threads(); }

absl::Status cpu_backend::start_threads() {
  if (const auto why = pool_->start(); !why.empty())
    return absl::ResourceExhaustedError(
      absl::StrCat("cannot start the cpu backend's ", threads(), " threads (", why,
                   "): ask for fewer threads, or let the process take more memory"));
  return absl::OkStatus();
}

absl::Status cpu_backend::gemm(const gemm_op& o, const_matrix_view a, const_matrix_view b,
                               matrix_view c) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const gemm_dims d, detail::gemm_shape("gemm", o, a, b, c));
  count_launch(op::gemm);
  std::vector<gemm_piece> pieces;
  add_pieces(pieces, o, d, a.data, a.cols, b.data, b.cols, c.data);
  run_pieces(*pool_, o, pieces);
  return absl::OkStatus();
}

absl::Status cpu_backend::gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                               const_matrix_view a, std::int64_t stride_a,
                                               const_matrix_view b, std::int64_t stride_b,
                                               matrix_view c, std::int64_t stride_c) {
  SATEMU_GPU_ASSIGN_OR_RETURN(
      const gemm_dims d, detail::check_gemm_strided_batched(o, batch, a, stride_a, b, stride_b, c,
                                                         stride_c));
  count_launch(op::gemm_strided_batched);
  // The outputs do not overlap (stride_c >= the size of one).
  std::vector<gemm_piece> pieces;
  for (std::int64_t i = 0; i < batch; ++i)
    add_pieces(pieces, o, d, a.data + i * stride_a, a.cols, b.data + i * stride_b, b.cols,
               c.data + i * stride_c);
  run_pieces(*pool_, o, pieces);
  return absl::OkStatus();
}

absl::Status cpu_backend::gemm_grouped(const gemm_op& o, std::span<const gemm_problem> problems) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const std::vector<gemm_dims> dims,
                              detail::check_gemm_grouped(o, problems));
  count_launch(op::gemm_grouped);
  // The outputs do not overlap (checked).
  std::vector<gemm_piece> pieces;
  for (std::size_t i = 0; i < problems.size(); ++i)
    add_pieces(pieces, o, dims[i], problems[i].a.data, problems[i].a.cols, problems[i].b.data,
               problems[i].b.cols, problems[i].c.data);
  run_pieces(*pool_, o, pieces);
  return absl::OkStatus();
}

absl::StatusOr<tensor> cpu_backend::rmsnorm(const_matrix_view x, const_matrix_view weight,
                                            float eps) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_rmsnorm(x, weight, eps));
  count_launch(op::rmsnorm);
  tensor out({x.rows, x.cols});
  if (x.cols == 0)
    return out;
  const float* w = weight.data;
  for_ranges(*pool_, x.rows, 3.0 * static_cast<double>(x.cols), [&](std::int64_t r0,
                                                                   std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) {
      const float* xr = x.row(r);
      float* yr = out.data() + r * x.cols;
      double ss = 0.0;
      for (std::int64_t j = 0; j < x.cols; ++j)
        ss += static_cast<double>(xr[j]) * xr[j];
      const auto inv =
          static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(x.cols) + eps));
      for (std::int64_t j = 0; j < x.cols; ++j)
        yr[j] = xr[j] * inv * w[j];
    }
  });
  return out;
}

absl::Status cpu_backend::rope(const attention_config& cfg, matrix_view q, matrix_view k,
                               std::span<const std::int64_t> positions) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_rope(cfg, q, k, positions));
  count_launch(op::rope);

  const std::int64_t half = cfg.head_dim / 2;
  const std::vector<double> inv_freq =
      rope_inv_freq(static_cast<double>(cfg.rope_theta), cfg.head_dim, cfg.rope_scaling);
  // Per row: half sines and cosines (about 40 multiply-adds each) and the
  // rotation of every head.
  const double row_cost = static_cast<double>(half) *
                          (40.0 + 4.0 * static_cast<double>(cfg.n_heads + cfg.n_kv_heads));
  for_ranges(*pool_, q.rows, row_cost, [&](std::int64_t t0, std::int64_t t1) {
    std::vector<float> cos_t(static_cast<std::size_t>(half));
    std::vector<float> sin_t(static_cast<std::size_t>(half));
    auto rotate = [&](float* row, std::int64_t heads) {
      for (std::int64_t h = 0; h < heads; ++h) {
        float* x1 = row + h * cfg.head_dim;
        float* x2 = x1 + half;
        for (std::int64_t i = 0; i < half; ++i) {
          const float a = x1[i];
          const float b = x2[i];
          x1[i] = a * cos_t[i] - b * sin_t[i];
          x2[i] = b * cos_t[i] + a * sin_t[i];
        }
      }
    };
    for (std::int64_t t = t0; t < t1; ++t) {
      const auto pos = static_cast<double>(positions[static_cast<std::size_t>(t)]);
      for (std::int64_t i = 0; i < half; ++i) {
        const double angle = pos * inv_freq[static_cast<std::size_t>(i)];
        cos_t[static_cast<std::size_t>(i)] = static_cast<float>(std::cos(angle));
        sin_t[static_cast<std::size_t>(i)] = static_cast<float>(std::sin(angle));
      }
      rotate(q.row(t), cfg.n_heads);
      if (k.rows != 0)
        rotate(k.row(t), cfg.n_kv_heads);
    }
  });
  return absl::OkStatus();
}

absl::StatusOr<tensor> cpu_backend::attention_prefill(
    const attention_config& cfg, const_matrix_view q, const_matrix_view k, const_matrix_view v,
    std::span<const std::int64_t> seq_offsets, std::span<const std::int64_t> query_offsets) {
  SATEMU_GPU_ASSIGN_OR_RETURN(
      const std::int64_t max_len,
      detail::check_attention_prefill(cfg, q, k, v, seq_offsets, query_offsets));
  count_launch(op::attention_prefill);

  tensor out({q.rows, q.cols});
  const std::int64_t hd = cfg.head_dim;
  const std::int64_t group = cfg.n_heads / cfg.n_kv_heads;
  const float scale = cfg.softmax_scale();
  constexpr std::int64_t block = 64; // positions per score block
  const auto score_floats = static_cast<std::size_t>(std::min(block, max_len) * max_len);
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(threads()));
  const int ldq = static_cast<int>(q.cols);
  const int ldk = static_cast<int>(k.cols);
  // One task per (sequence, head): each writes its own block of `out`.
  const auto n_seqs = static_cast<std::int64_t>(seq_offsets.size()) - 1;
  const double macs = 2.0 * static_cast<double>(q.rows) * static_cast<double>(max_len) *
                      static_cast<double>(cfg.n_heads * hd);
  run_tasks(*pool_, n_seqs * cfg.n_heads, macs, [&](std::int64_t task, int thread) {
    const auto s = static_cast<std::size_t>(task / cfg.n_heads);
    const std::int64_t h = task % cfg.n_heads;
    std::vector<float>& scores = scratch[static_cast<std::size_t>(thread)];
    scores.resize(score_floats);
    const std::int64_t first = seq_offsets[s];
    const std::int64_t len = seq_offsets[s + 1] - first;
    // The sequence's queries are its positions past .. len-1; query row of
    // position i: q_first + i.
    const std::int64_t past = len - (query_offsets[s + 1] - query_offsets[s]);
    const std::int64_t q_first = query_offsets[s] - past;
    const std::int64_t g = h / group;
    const float* kh = k.data + first * k.cols + g * hd;
    const float* vh = v.data + first * v.cols + g * hd;
    for (std::int64_t i0 = past; i0 < len; i0 += block) {
      const std::int64_t i1 = std::min(len, i0 + block);
      const std::int64_t nq = i1 - i0;
      // Causal: keys lo .. i1-1 suffice for this block of positions (lo:
      // the first key of its first position, 0 without a sliding window).
      const std::int64_t lo = first_key(cfg, i0);
      const std::int64_t nk = i1 - lo;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nq),
                  static_cast<int>(nk), static_cast<int>(hd), scale,
                  q.data + (q_first + i0) * q.cols + h * hd, ldq, kh + lo * k.cols, ldk, 0.0f,
                  scores.data(), static_cast<int>(nk));
      for (std::int64_t r = 0; r < nq; ++r)
        softmax_range(scores.data() + r * nk, first_key(cfg, i0 + r) - lo, i0 + r + 1 - lo, nk);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(nq),
                  static_cast<int>(hd), static_cast<int>(nk), 1.0f, scores.data(),
                  static_cast<int>(nk), vh + lo * v.cols, ldk, 0.0f,
                  out.data() + (q_first + i0) * q.cols + h * hd, ldq);
    }
  });
  return out;
}

absl::StatusOr<tensor> cpu_backend::attention_decode(const attention_config& cfg,
                                                     const_matrix_view q, const kv_cache& cache,
                                                     std::span<const std::int64_t> lengths) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_attention_decode(cfg, q, cache, lengths));
  count_launch(op::attention_decode);

  tensor out({q.rows, q.cols});
  const std::int64_t hd = cfg.head_dim;
  const std::int64_t group = cfg.n_heads / cfg.n_kv_heads;
  const std::int64_t kvd = cache.kv_dim();
  const std::int64_t cap = cache.capacity();
  const float scale = cfg.softmax_scale();
  const std::int64_t max_len =
    lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  std::vector<std::vector<float>> scratch(static_cast<std::size_t>(threads()));
  // One task per (sequence, kv head): each writes its own block of `out`.
  const double macs = 2.0 * static_cast<double>(q.rows) * static_cast<double>(max_len) *
                      static_cast<double>(cfg.n_heads * hd);
  run_tasks(*pool_, q.rows * cfg.n_kv_heads, macs, [&](std::int64_t task, int thread) {
    const std::int64_t s = task / cfg.n_kv_heads;
    const std::int64_t g = task % cfg.n_kv_heads;
    std::vector<float>& scores = scratch[static_cast<std::size_t>(thread)];
    scores.resize(static_cast<std::size_t>(group * max_len));
    // Keys lo .. lengths[s]-1: all of them, or the last `window`.
    const std::int64_t lo = first_key(cfg, lengths[static_cast<std::size_t>(s)] - 1);
    const std::int64_t len = lengths[static_cast<std::size_t>(s)] - lo;
    // The `group` query heads sharing kv head g are adjacent in the q row:
    // a [group, head_dim] matrix.
    const float* qg = q.row(s) + g * group * hd;
    const float* kg = cache.k.data() + (s * cap + lo) * kvd + g * hd;
    const float* vg = cache.v.data() + (s * cap + lo) * kvd + g * hd;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(group),
                static_cast<int>(len), static_cast<int>(hd), scale, qg, static_cast<int>(hd), kg,
                static_cast<int>(kvd), 0.0f, scores.data(), static_cast<int>(len));
    for (std::int64_t r = 0; r < group; ++r)
      softmax_range(scores.data() + r * len, 0, len, len);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(group),
                static_cast<int>(hd), static_cast<int>(len), 1.0f, scores.data(),
                static_cast<int>(len), vg, static_cast<int>(kvd), 0.0f,
                out.data() + s * q.cols + g * group * hd, static_cast<int>(hd));
  });
  return out;
}

absl::Status cpu_backend::kv_store(kv_cache& cache, const_matrix_view k, const_matrix_view v,
                                   std::span<const std::int64_t> slot,
                                   std::span<const std::int64_t> position) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_kv_store(cache, k, v, slot, position));
  count_launch(op::kv_store);
  const std::int64_t kvd = cache.kv_dim();
  const auto bytes = static_cast<std::size_t>(kvd) * sizeof(float);
  for (std::int64_t t = 0; t < k.rows; ++t) {
    const std::int64_t row = slot[static_cast<std::size_t>(t)] * cache.capacity() +
                             position[static_cast<std::size_t>(t)];
    if (bytes != 0) {
      std::memcpy(cache.k.data() + row * kvd, k.row(t), bytes);
      std::memcpy(cache.v.data() + row * kvd, v.row(t), bytes);
    }
  }
  return absl::OkStatus();
}

// act(gate) * up elementwise, act(g) = g / (1 + exp(-a(g))) (silu_mul,
// gelu_mul): the one loop of both gated activations.
template <class Arg>
absl::StatusOr<tensor> cpu_backend::glu(op kind, const_matrix_view gate, const_matrix_view up,
                                        Arg a) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_glu(op_name(kind), gate, up));
  count_launch(kind);
  tensor out({gate.rows, gate.cols});
  float* y = out.data();
  for_ranges(*pool_, gate.size(), 20.0, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i) {
      const float g = gate.data[i];
      y[i] = g / (1.0f + std::exp(-a(g))) * up.data[i];
    }
  });
  return out;
}

absl::StatusOr<tensor> cpu_backend::silu_mul(const_matrix_view gate, const_matrix_view up) {
  return glu(op::silu_mul, gate, up, [](float g) { return g; });
}

absl::StatusOr<tensor> cpu_backend::gelu_mul(const_matrix_view gate, const_matrix_view up) {
  // x (1 + tanh z) / 2 written as x / (1 + exp(-2z)): no cancellation where
  // tanh z is near -1.
  constexpr float two_sqrt_2_over_pi = 1.5957691216057308f;
  return glu(op::gelu_mul, gate, up,
             [](float g) { return two_sqrt_2_over_pi * (g + 0.044715f * g * g * g); });
}

absl::Status cpu_backend::add(matrix_view y, const_matrix_view x) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_add(y, x));
  count_launch(op::add);
  for_ranges(*pool_, y.size(), 1.0, [&](std::int64_t i0, std::int64_t i1) {
    for (std::int64_t i = i0; i < i1; ++i)
      y.data[i] += x.data[i];
  });
  return absl::OkStatus();
}

absl::Status cpu_backend::add_gated(matrix_view y, const_matrix_view x, const_matrix_view gate) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_add_gated(y, x, gate));
  count_launch(op::add_gated);
  for (std::int64_t t = 0; t < y.rows; ++t) {
    const float g = 1.0f / (1.0f + std::exp(-gate.data[t]));
    float* yr = y.row(t);
    const float* xr = x.row(t);
    for (std::int64_t c = 0; c < y.cols; ++c)
      yr[c] += g * xr[c];
  }
  return absl::OkStatus();
}

absl::StatusOr<moe_routing> cpu_backend::router_topk(const_matrix_view logits, std::int64_t k,
                                                     bool renormalise) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_router_topk(logits, k));
  const std::int64_t n_exp = logits.cols;
  count_launch(op::router_topk);

  moe_routing r;
  r.tokens = logits.rows;
  r.n_experts = n_exp;
  r.k = k;
  const auto slots = static_cast<std::size_t>(r.tokens * k);
  r.expert.resize(slots);
  r.weight.resize(slots);
  std::vector<std::int32_t> order(static_cast<std::size_t>(n_exp));
  for (std::int64_t t = 0; t < r.tokens; ++t) {
    const float* l = logits.row(t);
    std::iota(order.begin(), order.end(), 0);
    // A strict total order: larger logit first, then lower index.
    std::partial_sort(order.begin(), order.begin() + k, order.end(),
                      [l](std::int32_t a, std::int32_t b) {
                        return l[a] > l[b] || (l[a] == l[b] && a < b);
                      });
    // Renormalised softmax over the chosen k equals the softmax over the k
    // chosen logits; order[0] holds the maximum.
    const float mx = l[order[0]];
    double sum = 0.0;
    if (renormalise)
      for (std::int64_t j = 0; j < k; ++j)
        sum += std::exp(static_cast<double>(l[order[static_cast<std::size_t>(j)]]) - mx);
    else
      for (std::int64_t e = 0; e < n_exp; ++e)
        sum += std::exp(static_cast<double>(l[e]) - mx);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int32_t e = order[static_cast<std::size_t>(j)];
      const auto slot = static_cast<std::size_t>(t * k + j);
      r.expert[slot] = e;
      r.weight[slot] = static_cast<float>(std::exp(static_cast<double>(l[e]) - mx) / sum);
    }
  }
  plan_dispatch(r);
  return r;
}

absl::StatusOr<tensor> cpu_backend::moe_gather(const_matrix_view x, const moe_routing& r) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_moe_gather(x, r));
  count_launch(op::moe_gather);
  tensor out({r.tokens * r.k, x.cols});
  const auto bytes = static_cast<std::size_t>(x.cols) * sizeof(float);
  if (bytes == 0)
    return out;
  for (std::int64_t s = 0; s < r.tokens * r.k; ++s)
    std::memcpy(out.data() + r.row_of_slot[static_cast<std::size_t>(s)] * x.cols,
                x.row(s / r.k), bytes);
  return out;
}

absl::StatusOr<tensor> cpu_backend::moe_combine(const_matrix_view y, const moe_routing& r) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_moe_combine(y, r));
  count_launch(op::moe_combine);
  tensor out({r.tokens, y.cols});
  for (std::int64_t t = 0; t < r.tokens; ++t) {
    float* o = out.data() + t * y.cols;
    for (std::int64_t j = 0; j < r.k; ++j) {
      const auto slot = static_cast<std::size_t>(t * r.k + j);
      const float w = r.weight[slot];
      const float* src = y.row(r.row_of_slot[slot]);
      for (std::int64_t c = 0; c < y.cols; ++c)
        o[c] += w * src[c];
    }
  }
  return out;
}

absl::StatusOr<quantized_activations> cpu_backend::quantize(const_matrix_view x, int bits) {
  // The values are checked while their maximum is taken (one pass).
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_quantize_args(x, bits));
  auto q = quantized_activations::zeros(x.rows, x.cols, bits);
  const detail::isa isa = detail::host_isa();
  for (std::int64_t r = 0; r < x.rows; ++r) {
    const float* xr = x.row(r);
    const std::uint32_t amax_bits = detail::max_magnitude_bits(xr, x.cols, isa);
    if (amax_bits >= detail::nonfinite_bits) // an infinity or a NaN: the check names it
      return detail::check_quantize(x, bits);
    float amax;
    std::memcpy(&amax, &amax_bits, sizeof amax);
    const float scale = detail::quant_scale(amax, bits);
    q.scales[static_cast<std::size_t>(r)] = scale;
    if (scale != 0.0f) // else an all-zero row, or max|x| so small the scale is 0
      detail::quantize_row(xr, x.cols, bits, scale, q.codes.data() + r * q.row_bytes(), isa);
  }
  count_launch(op::quantize);
  return q;
}

absl::StatusOr<tensor> cpu_backend::dequantize(const quantized_activations& q) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_dequantize(q));
  const std::int64_t rb = q.row_bytes();
  count_launch(op::dequantize);
  tensor out({q.rows, q.cols});
  for (std::int64_t r = 0; r < q.rows; ++r) {
    const std::uint8_t* in = q.codes.data() + r * rb;
    const float scale = q.scales[static_cast<std::size_t>(r)];
    float* o = out.data() + r * q.cols;
    for (std::int64_t j = 0; j < q.cols; ++j) {
      int c;
      if (q.bits == 8) {
        c = static_cast<std::int8_t>(in[j]);
      } else {
        const unsigned nib = (in[j / 2] >> (j % 2 == 0 ? 0 : 4)) & 0x0fu;
        c = nib >= 8u ? static_cast<int>(nib) - 16 : static_cast<int>(nib);
      }
      o[j] = static_cast<float>(c) * scale;
    }
  }
  return out;
}

absl::StatusOr<sparse_activations> cpu_backend::sparsify_topk(const_matrix_view x,
                                                              std::int64_t k) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_sparsify_topk(x, k));
  count_launch(op::sparsify);
  auto s = sparse_activations::zeros(x.rows, x.cols, k);
  std::vector<std::int32_t> order(static_cast<std::size_t>(x.cols));
  for (std::int64_t r = 0; r < x.rows && k > 0; ++r) {
    const float* xr = x.row(r);
    std::iota(order.begin(), order.end(), 0);
    // A strict total order: larger magnitude first, then lower column.
    std::nth_element(order.begin(), order.begin() + (k - 1), order.end(),
                     [xr](std::int32_t a, std::int32_t b) {
                       const float fa = std::fabs(xr[a]);
                       const float fb = std::fabs(xr[b]);
                       return fa > fb || (fa == fb && a < b);
                     });
    std::sort(order.begin(), order.begin() + k);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int32_t c = order[static_cast<std::size_t>(j)];
      s.indices[static_cast<std::size_t>(r * k + j)] = c;
      s.values[static_cast<std::size_t>(r * k + j)] = xr[c];
    }
  }
  return s;
}

absl::StatusOr<tensor> cpu_backend::densify(const sparse_activations& s) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_densify(s));
  count_launch(op::densify);
  tensor out({s.rows, s.cols});
  for (std::int64_t r = 0; r < s.rows; ++r)
    for (std::int64_t j = 0; j < s.k; ++j) {
      const auto i = static_cast<std::size_t>(r * s.k + j);
      out[r * s.cols + s.indices[i]] = s.values[i];
    }
  return out;
}

absl::StatusOr<half_activations> cpu_backend::cast_half(const_matrix_view x, half_type t) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_cast_half(x, t));
  count_launch(op::cast_half);
  auto h = half_activations::zeros(x.rows, x.cols, t);
  if (t == half_type::fp16)
    for (std::int64_t i = 0; i < x.size(); ++i)
      h.bits[static_cast<std::size_t>(i)] = float_to_fp16_bits(x.data[i]);
  else
    for (std::int64_t i = 0; i < x.size(); ++i)
      h.bits[static_cast<std::size_t>(i)] = float_to_bf16_bits(x.data[i]);
  return h;
}

absl::StatusOr<tensor> cpu_backend::uncast_half(const half_activations& h) {
  SATEMU_GPU_RETURN_IF_ERROR(detail::check_uncast_half(h));
  count_launch(op::uncast_half);
  tensor out({h.rows, h.cols});
  const std::int64_t n = h.rows * h.cols;
  if (h.type == half_type::fp16)
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = fp16_bits_to_float(h.bits[static_cast<std::size_t>(i)]);
  else
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = bf16_bits_to_float(h.bits[static_cast<std::size_t>(i)]);
  return out;
}

} // namespace satemu::gpu
