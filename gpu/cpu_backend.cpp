#include "gpu/cpu_backend.hpp"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <mutex>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gpu/detail/check.hpp"
#include "gpu/half.hpp"

namespace satemu::gpu {

namespace {

// --- Validation helpers ----------------------------------------------------

template <typename... Parts>
absl::Status invalid(std::string_view kernel, const Parts&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(kernel), ": ", parts...));
}

// A view is the caller's construction: a negative extent or null data behind
// elements is a programming error, not bad input.
void check_view(const const_matrix_view& v, const char* what) {
  SATEMU_GPU_CHECK(v.rows >= 0 && v.cols >= 0, what, " has negative extent ", to_string(v));
  SATEMU_GPU_CHECK(v.data != nullptr || v.rows * v.cols == 0, what, " ", to_string(v),
                   " has null data");
}

absl::Status check_attention_config(std::string_view kernel, const attention_config& cfg) {
  if (cfg.n_heads <= 0 || cfg.n_kv_heads <= 0 || cfg.head_dim <= 0)
    return invalid(kernel, "n_heads (", cfg.n_heads, "), n_kv_heads (", cfg.n_kv_heads,
                   ") and head_dim (", cfg.head_dim, ") must be positive");
  if (cfg.n_heads % cfg.n_kv_heads != 0)
    return invalid(kernel, "n_heads (", cfg.n_heads, ") is not a multiple of n_kv_heads (",
                   cfg.n_kv_heads, ")");
  if (!std::isfinite(cfg.scale) || cfg.scale < 0.0f)
    return invalid(kernel, "softmax scale ", cfg.scale, " must be finite and >= 0");
  return absl::OkStatus();
}

absl::Status check_offsets(std::string_view kernel, std::span<const std::int64_t> offsets,
                           std::int64_t rows) {
  if (offsets.empty() || offsets.front() != 0 || offsets.back() != rows)
    return invalid(kernel, "seq_offsets must start at 0 and end at the ", rows,
                   " token rows; got [", absl::StrJoin(offsets, ", "), "]");
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1])
      return invalid(kernel, "seq_offsets decrease at index ", i, ": [",
                     absl::StrJoin(offsets, ", "), "]");
  return absl::OkStatus();
}

// --- GEMM --------------------------------------------------------------------

struct gemm_dims {
  std::int64_t m, n, k;
};

absl::StatusOr<gemm_dims> gemm_shape(std::string_view kernel, const gemm_op& o,
                                     const const_matrix_view& a, const const_matrix_view& b,
                                     const const_matrix_view& c) {
  check_view(a, "A");
  check_view(b, "B");
  check_view(c, "C");
  const std::int64_t m = o.trans_a ? a.cols : a.rows;
  const std::int64_t ka = o.trans_a ? a.rows : a.cols;
  const std::int64_t kb = o.trans_b ? b.cols : b.rows;
  const std::int64_t n = o.trans_b ? b.rows : b.cols;
  if (ka != kb || c.rows != m || c.cols != n)
    return invalid(kernel, "shapes do not agree: A ", to_string(a), (o.trans_a ? "^T" : ""),
                   ", B ", to_string(b), (o.trans_b ? "^T" : ""), ", C ", to_string(c));
  if (m > INT_MAX || n > INT_MAX || ka > INT_MAX || a.cols > INT_MAX || b.cols > INT_MAX)
    return invalid(kernel, "dimensions exceed the BLAS integer range");
  return gemm_dims{m, n, ka};
}

// Runs one validated GEMM on packed row-major operands (leading dimension =
// stored columns). Degenerate shapes are handled here: BLAS rejects a
// leading dimension of 0.
void run_sgemm(const gemm_op& o, const gemm_dims& d, const float* a, std::int64_t a_cols,
               const float* b, std::int64_t b_cols, float* c) {
  if (d.m == 0 || d.n == 0)
    return;
  if (d.k == 0) {
    const std::int64_t n = d.m * d.n;
    if (o.beta == 0.0f)
      std::fill(c, c + n, 0.0f);
    else
      for (std::int64_t i = 0; i < n; ++i)
        c[i] *= o.beta;
    return;
  }
  cblas_sgemm(CblasRowMajor, o.trans_a ? CblasTrans : CblasNoTrans,
              o.trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(d.m),
              static_cast<int>(d.n), static_cast<int>(d.k), o.alpha, a,
              static_cast<int>(a_cols), b, static_cast<int>(b_cols), o.beta, c,
              static_cast<int>(d.n));
}

// --- Small loops -------------------------------------------------------------

// Row softmax over the first `valid` entries of `row` (in place); entries from
// `valid` to `n` become 0. Sums in a fixed order.
void softmax_prefix(float* row, std::int64_t valid, std::int64_t n) {
  float mx = row[0];
  for (std::int64_t j = 1; j < valid; ++j)
    mx = std::max(mx, row[j]);
  float sum = 0.0f;
  for (std::int64_t j = 0; j < valid; ++j) {
    row[j] = std::exp(row[j] - mx);
    sum += row[j];
  }
  const float inv = 1.0f / sum;
  for (std::int64_t j = 0; j < valid; ++j)
    row[j] *= inv;
  std::fill(row + valid, row + n, 0.0f);
}

absl::Status check_routing(std::string_view kernel, const moe_routing& r) {
  if (r.tokens < 0 || r.k <= 0 || r.n_experts <= 0 || r.k > r.n_experts)
    return invalid(kernel, "routing has tokens ", r.tokens, ", k ", r.k, ", n_experts ",
                   r.n_experts);
  const auto slots = static_cast<std::size_t>(r.tokens * r.k);
  if (r.expert.size() != slots || r.weight.size() != slots || r.row_of_slot.size() != slots ||
      r.token_of_row.size() != slots ||
      r.expert_offsets.size() != static_cast<std::size_t>(r.n_experts + 1))
    return invalid(kernel, "routing arrays do not match tokens ", r.tokens, " x k ", r.k,
                   " and ", r.n_experts, " experts");
  for (std::size_t s = 0; s < slots; ++s)
    if (r.row_of_slot[s] < 0 || r.row_of_slot[s] >= static_cast<std::int64_t>(slots))
      return invalid(kernel, "routing row_of_slot[", s, "] = ", r.row_of_slot[s],
                     " is outside [0, ", slots, ")");
  return absl::OkStatus();
}

} // namespace

// --- cpu_backend -----------------------------------------------------------

cpu_backend::cpu_backend() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

absl::Status cpu_backend::gemm(const gemm_op& o, const_matrix_view a, const_matrix_view b,
                               matrix_view c) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const gemm_dims d, gemm_shape("gemm", o, a, b, c));
  count_launch(op::gemm);
  run_sgemm(o, d, a.data, a.cols, b.data, b.cols, c.data);
  return absl::OkStatus();
}

absl::Status cpu_backend::gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                               const_matrix_view a, std::int64_t stride_a,
                                               const_matrix_view b, std::int64_t stride_b,
                                               matrix_view c, std::int64_t stride_c) {
  constexpr std::string_view kernel = "gemm_strided_batched";
  SATEMU_GPU_ASSIGN_OR_RETURN(const gemm_dims d, gemm_shape(kernel, o, a, b, c));
  if (batch < 0)
    return invalid(kernel, "negative batch ", batch);
  if (batch > 1) {
    if (stride_a < 0 || (stride_a != 0 && stride_a < a.size()))
      return invalid(kernel, "stride_a ", stride_a, " must be 0 or >= ", a.size());
    if (stride_b < 0 || (stride_b != 0 && stride_b < b.size()))
      return invalid(kernel, "stride_b ", stride_b, " must be 0 or >= ", b.size());
    if (stride_c < c.size() || stride_c <= 0)
      return invalid(kernel, "stride_c ", stride_c, " must be >= ", c.size(), " and > 0");
  }
  count_launch(op::gemm_strided_batched);
  for (std::int64_t i = 0; i < batch; ++i)
    run_sgemm(o, d, a.data + i * stride_a, a.cols, b.data + i * stride_b, b.cols,
              c.data + i * stride_c);
  return absl::OkStatus();
}

absl::Status cpu_backend::gemm_grouped(const gemm_op& o, std::span<const gemm_problem> problems) {
  constexpr std::string_view kernel = "gemm_grouped";
  std::vector<gemm_dims> dims;
  dims.reserve(problems.size());
  std::vector<std::pair<const float*, const float*>> outputs;
  for (std::size_t i = 0; i < problems.size(); ++i) {
    const gemm_problem& p = problems[i];
    auto d = gemm_shape(kernel, o, p.a, p.b, p.c);
    if (!d.ok())
      return invalid(kernel, "problem ", i, ": ", d.status().message());
    dims.push_back(*d);
    if (p.c.size() > 0)
      outputs.emplace_back(p.c.data, p.c.data + p.c.size());
  }
  std::sort(outputs.begin(), outputs.end());
  for (std::size_t i = 1; i < outputs.size(); ++i)
    if (outputs[i].first < outputs[i - 1].second)
      return invalid(kernel, "output matrices overlap");
  count_launch(op::gemm_grouped);
  for (std::size_t i = 0; i < problems.size(); ++i)
    run_sgemm(o, dims[i], problems[i].a.data, problems[i].a.cols, problems[i].b.data,
              problems[i].b.cols, problems[i].c.data);
  return absl::OkStatus();
}

absl::StatusOr<tensor> cpu_backend::rmsnorm(const_matrix_view x, const_matrix_view weight,
                                            float eps) {
  check_view(x, "x");
  check_view(weight, "weight");
  if (weight.size() != x.cols)
    return invalid("rmsnorm", "weight has ", weight.size(), " values for rows of ", x.cols);
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    return invalid("rmsnorm", "eps ", eps, " must be finite and >= 0");
  count_launch(op::rmsnorm);
  tensor out({x.rows, x.cols});
  if (x.cols == 0)
    return out;
  const float* w = weight.data;
  for (std::int64_t r = 0; r < x.rows; ++r) {
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
  return out;
}

absl::Status cpu_backend::rope(const attention_config& cfg, matrix_view q, matrix_view k,
                               std::span<const std::int64_t> positions) {
  constexpr std::string_view kernel = "rope";
  check_view(q, "q");
  check_view(k, "k");
  if (cfg.n_heads <= 0 || cfg.head_dim <= 0 || cfg.head_dim % 2 != 0)
    return invalid(kernel, "n_heads (", cfg.n_heads, ") must be positive and head_dim (",
                   cfg.head_dim, ") positive and even");
  if (q.cols != cfg.q_dim())
    return invalid(kernel, "q ", to_string(q), " needs ", cfg.q_dim(), " columns");
  if (k.rows != 0 && (cfg.n_kv_heads <= 0 || k.rows != q.rows || k.cols != cfg.kv_dim()))
    return invalid(kernel, "k ", to_string(k), " must have 0 rows or ", q.rows, " rows of ",
                   cfg.kv_dim(), " (n_kv_heads ", cfg.n_kv_heads, ")");
  if (static_cast<std::int64_t>(positions.size()) != q.rows)
    return invalid(kernel, positions.size(), " positions for ", q.rows, " tokens");
  if (!(cfg.rope_theta > 0.0f) || !std::isfinite(cfg.rope_theta))
    return invalid(kernel, "rope_theta ", cfg.rope_theta, " must be finite and > 0");
  for (std::size_t t = 0; t < positions.size(); ++t)
    if (positions[t] < 0)
      return invalid(kernel, "negative position ", positions[t], " of token ", t);
  count_launch(op::rope);

  const std::int64_t half = cfg.head_dim / 2;
  std::vector<double> inv_freq(static_cast<std::size_t>(half));
  for (std::int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<std::size_t>(i)] =
        std::pow(static_cast<double>(cfg.rope_theta),
                 -2.0 * static_cast<double>(i) / static_cast<double>(cfg.head_dim));
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
  for (std::int64_t t = 0; t < q.rows; ++t) {
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
  return absl::OkStatus();
}

absl::StatusOr<tensor> cpu_backend::attention_prefill(const attention_config& cfg,
                                                      const_matrix_view q, const_matrix_view k,
                                                      const_matrix_view v,
                                                      std::span<const std::int64_t> seq_offsets) {
  constexpr std::string_view kernel = "attention_prefill";
  check_view(q, "q");
  check_view(k, "k");
  check_view(v, "v");
  SATEMU_GPU_RETURN_IF_ERROR(check_attention_config(kernel, cfg));
  if (q.cols != cfg.q_dim() || k.cols != cfg.kv_dim() || v.cols != cfg.kv_dim() ||
      k.rows != q.rows || v.rows != q.rows)
    return invalid(kernel, "q ", to_string(q), ", k ", to_string(k), ", v ", to_string(v),
                   " do not match ", cfg.n_heads, " heads and ", cfg.n_kv_heads,
                   " kv heads of ", cfg.head_dim);
  SATEMU_GPU_RETURN_IF_ERROR(check_offsets(kernel, seq_offsets, q.rows));
  if (q.cols > INT_MAX || k.cols > INT_MAX)
    return invalid(kernel, "dimensions exceed the BLAS integer range");
  std::int64_t max_len = 0;
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s)
    max_len = std::max(max_len, seq_offsets[s + 1] - seq_offsets[s]);
  if (max_len > INT_MAX)
    return invalid(kernel, "a sequence of ", max_len, " tokens exceeds the BLAS integer range");
  count_launch(op::attention_prefill);

  tensor out({q.rows, q.cols});
  const std::int64_t hd = cfg.head_dim;
  const std::int64_t group = cfg.n_heads / cfg.n_kv_heads;
  const float scale = cfg.softmax_scale();
  constexpr std::int64_t block = 64; // query rows per score block
  std::vector<float> scores(static_cast<std::size_t>(std::min(block, max_len) * max_len));
  const int ldq = static_cast<int>(q.cols);
  const int ldk = static_cast<int>(k.cols);
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s) {
    const std::int64_t first = seq_offsets[s];
    const std::int64_t len = seq_offsets[s + 1] - first;
    for (std::int64_t h = 0; h < cfg.n_heads; ++h) {
      const std::int64_t g = h / group;
      const float* kh = k.data + first * k.cols + g * hd;
      const float* vh = v.data + first * v.cols + g * hd;
      for (std::int64_t i0 = 0; i0 < len; i0 += block) {
        const std::int64_t i1 = std::min(len, i0 + block);
        const std::int64_t nq = i1 - i0;
        const std::int64_t nk = i1; // causal: keys 0 .. i1-1 suffice for this block
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(nq),
                    static_cast<int>(nk), static_cast<int>(hd), scale,
                    q.data + (first + i0) * q.cols + h * hd, ldq, kh, ldk, 0.0f, scores.data(),
                    static_cast<int>(nk));
        for (std::int64_t r = 0; r < nq; ++r)
          softmax_prefix(scores.data() + r * nk, i0 + r + 1, nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(nq),
                    static_cast<int>(hd), static_cast<int>(nk), 1.0f, scores.data(),
                    static_cast<int>(nk), vh, ldk, 0.0f,
                    out.data() + (first + i0) * q.cols + h * hd, ldq);
      }
    }
  }
  return out;
}

absl::StatusOr<tensor> cpu_backend::attention_decode(const attention_config& cfg,
                                                     const_matrix_view q, const kv_cache& cache,
                                                     std::span<const std::int64_t> lengths) {
  constexpr std::string_view kernel = "attention_decode";
  check_view(q, "q");
  SATEMU_GPU_RETURN_IF_ERROR(check_attention_config(kernel, cfg));
  if (cache.k.rank() != 3 || cache.k.shape() != cache.v.shape() ||
      cache.kv_dim() != cfg.kv_dim())
    return invalid(kernel, "cache k ", cache.k.shape_string(), " and v ",
                   cache.v.shape_string(), " must both be [n_seq, capacity, ", cfg.kv_dim(),
                   "]");
  if (q.cols != cfg.q_dim() || q.rows > cache.n_seq() ||
      static_cast<std::int64_t>(lengths.size()) != q.rows)
    return invalid(kernel, "q ", to_string(q), " needs ", cfg.q_dim(), " columns and one row",
                   " per length (", lengths.size(), "), at most the cache's ", cache.n_seq(),
                   " slots");
  for (std::size_t s = 0; s < lengths.size(); ++s)
    if (lengths[s] < 1 || lengths[s] > cache.capacity())
      return invalid(kernel, "length ", lengths[s], " of slot ", s, " outside [1, ",
                     cache.capacity(), "]");
  if (q.cols > INT_MAX || cache.kv_dim() > INT_MAX || cache.capacity() > INT_MAX)
    return invalid(kernel, "dimensions exceed the BLAS integer range");
  count_launch(op::attention_decode);

  tensor out({q.rows, q.cols});
  const std::int64_t hd = cfg.head_dim;
  const std::int64_t group = cfg.n_heads / cfg.n_kv_heads;
  const std::int64_t kvd = cache.kv_dim();
  const std::int64_t cap = cache.capacity();
  const float scale = cfg.softmax_scale();
  const std::int64_t max_len = lengths.empty() ? 0 : *std::max_element(lengths.begin(), lengths.end());
  std::vector<float> scores(static_cast<std::size_t>(group * max_len));
  for (std::int64_t s = 0; s < q.rows; ++s) {
    const std::int64_t len = lengths[static_cast<std::size_t>(s)];
    for (std::int64_t g = 0; g < cfg.n_kv_heads; ++g) {
      // The `group` query heads sharing kv head g are adjacent in the q row:
      // a [group, head_dim] matrix.
      const float* qg = q.row(s) + g * group * hd;
      const float* kg = cache.k.data() + s * cap * kvd + g * hd;
      const float* vg = cache.v.data() + s * cap * kvd + g * hd;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(group),
                  static_cast<int>(len), static_cast<int>(hd), scale, qg, static_cast<int>(hd),
                  kg, static_cast<int>(kvd), 0.0f, scores.data(), static_cast<int>(len));
      for (std::int64_t r = 0; r < group; ++r)
        softmax_prefix(scores.data() + r * len, len, len);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(group),
                  static_cast<int>(hd), static_cast<int>(len), 1.0f, scores.data(),
                  static_cast<int>(len), vg, static_cast<int>(kvd), 0.0f,
                  out.data() + s * q.cols + g * group * hd, static_cast<int>(hd));
    }
  }
  return out;
}

absl::Status cpu_backend::kv_store(kv_cache& cache, const_matrix_view k, const_matrix_view v,
                                   std::span<const std::int64_t> slot,
                                   std::span<const std::int64_t> position) {
  constexpr std::string_view kernel = "kv_store";
  check_view(k, "k");
  check_view(v, "v");
  if (cache.k.rank() != 3 || cache.k.shape() != cache.v.shape())
    return invalid(kernel, "cache k ", cache.k.shape_string(), " and v ",
                   cache.v.shape_string(), " must both be [n_seq, capacity, kv_dim]");
  if (k.cols != cache.kv_dim() || v.cols != cache.kv_dim() || v.rows != k.rows ||
      static_cast<std::int64_t>(slot.size()) != k.rows ||
      static_cast<std::int64_t>(position.size()) != k.rows)
    return invalid(kernel, "k ", to_string(k), " and v ", to_string(v), " need ",
                   cache.kv_dim(), " columns and one slot and position per row (", slot.size(),
                   ", ", position.size(), ")");
  for (std::size_t t = 0; t < slot.size(); ++t)
    if (slot[t] < 0 || slot[t] >= cache.n_seq() || position[t] < 0 ||
        position[t] >= cache.capacity())
      return invalid(kernel, "row ", t, " goes to slot ", slot[t], " position ", position[t],
                     " outside a cache of ", cache.n_seq(), " slots x ", cache.capacity());
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

absl::StatusOr<tensor> cpu_backend::silu_mul(const_matrix_view gate, const_matrix_view up) {
  check_view(gate, "gate");
  check_view(up, "up");
  if (gate.rows != up.rows || gate.cols != up.cols)
    return invalid("silu_mul", "gate ", to_string(gate), " and up ", to_string(up),
                   " differ in shape");
  count_launch(op::silu_mul);
  tensor out({gate.rows, gate.cols});
  float* y = out.data();
  const std::int64_t n = gate.size();
  for (std::int64_t i = 0; i < n; ++i) {
    const float g = gate.data[i];
    y[i] = g / (1.0f + std::exp(-g)) * up.data[i];
  }
  return out;
}

absl::Status cpu_backend::add(matrix_view y, const_matrix_view x) {
  check_view(y, "y");
  check_view(x, "x");
  if (y.rows != x.rows || y.cols != x.cols)
    return invalid("add", "y ", to_string(y), " and x ", to_string(x), " differ in shape");
  count_launch(op::add);
  const std::int64_t n = y.size();
  for (std::int64_t i = 0; i < n; ++i)
    y.data[i] += x.data[i];
  return absl::OkStatus();
}

absl::StatusOr<moe_routing> cpu_backend::router_topk(const_matrix_view logits, std::int64_t k) {
  constexpr std::string_view kernel = "router_topk";
  check_view(logits, "logits");
  const std::int64_t n_exp = logits.cols;
  if (n_exp <= 0 || n_exp > INT32_MAX || k < 1 || k > n_exp)
    return invalid(kernel, "k ", k, " must be in [1, n_experts] for logits ", to_string(logits));
  if (logits.rows > INT32_MAX)
    return invalid(kernel, "too many tokens: ", logits.rows);
  for (std::int64_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits.data[i]))
      return invalid(kernel, "non-finite logit ", logits.data[i], " at token ", i / n_exp,
                     ", expert ", i % n_exp);
  count_launch(op::router_topk);

  moe_routing r;
  r.tokens = logits.rows;
  r.n_experts = n_exp;
  r.k = k;
  const auto slots = static_cast<std::size_t>(r.tokens * k);
  r.expert.resize(slots);
  r.weight.resize(slots);
  std::vector<std::int32_t> order(static_cast<std::size_t>(n_exp));
  std::vector<std::int64_t> count(static_cast<std::size_t>(n_exp), 0);
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
    for (std::int64_t j = 0; j < k; ++j)
      sum += std::exp(static_cast<double>(l[order[static_cast<std::size_t>(j)]]) - mx);
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int32_t e = order[static_cast<std::size_t>(j)];
      const auto slot = static_cast<std::size_t>(t * k + j);
      r.expert[slot] = e;
      r.weight[slot] = static_cast<float>(std::exp(static_cast<double>(l[e]) - mx) / sum);
      ++count[static_cast<std::size_t>(e)];
    }
  }
  // Dispatch plan: a stable counting sort of the slots by expert.
  r.expert_offsets.assign(static_cast<std::size_t>(n_exp + 1), 0);
  for (std::int64_t e = 0; e < n_exp; ++e)
    r.expert_offsets[static_cast<std::size_t>(e + 1)] =
        r.expert_offsets[static_cast<std::size_t>(e)] + count[static_cast<std::size_t>(e)];
  std::vector<std::int64_t> cursor(r.expert_offsets.begin(), r.expert_offsets.end() - 1);
  r.row_of_slot.resize(slots);
  r.token_of_row.resize(slots);
  for (std::size_t s = 0; s < slots; ++s) {
    const std::int64_t row = cursor[static_cast<std::size_t>(r.expert[s])]++;
    r.row_of_slot[s] = row;
    r.token_of_row[static_cast<std::size_t>(row)] = static_cast<std::int32_t>(s / static_cast<std::size_t>(k));
  }
  return r;
}

absl::StatusOr<tensor> cpu_backend::moe_gather(const_matrix_view x, const moe_routing& r) {
  check_view(x, "x");
  SATEMU_GPU_RETURN_IF_ERROR(check_routing("moe_gather", r));
  if (x.rows != r.tokens)
    return invalid("moe_gather", "x ", to_string(x), " has not the routing's ", r.tokens,
                   " tokens");
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
  check_view(y, "y");
  SATEMU_GPU_RETURN_IF_ERROR(check_routing("moe_combine", r));
  if (y.rows != r.tokens * r.k)
    return invalid("moe_combine", "y ", to_string(y), " needs tokens x k = ", r.tokens * r.k,
                   " rows");
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
  constexpr std::string_view kernel = "quantize";
  check_view(x, "x");
  if (bits != 8 && bits != 4)
    return invalid(kernel, "bits must be 8 or 4, got ", bits);
  for (std::int64_t i = 0; i < x.size(); ++i)
    if (!std::isfinite(x.data[i]))
      return invalid(kernel, "non-finite value ", x.data[i], " at row ", i / x.cols,
                     ", column ", i % x.cols);
  count_launch(op::quantize);
  quantized_activations q;
  q.bits = bits;
  q.rows = x.rows;
  q.cols = x.cols;
  q.codes.assign(static_cast<std::size_t>(q.rows * q.row_bytes()), 0);
  q.scales.assign(static_cast<std::size_t>(q.rows), 0.0f);
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  for (std::int64_t r = 0; r < x.rows; ++r) {
    const float* xr = x.row(r);
    float amax = 0.0f;
    for (std::int64_t j = 0; j < x.cols; ++j)
      amax = std::max(amax, std::fabs(xr[j]));
    const float scale = amax / qmax;
    q.scales[static_cast<std::size_t>(r)] = scale;
    if (scale == 0.0f) // all-zero row, or max|x| so small the scale underflows
      continue;
    std::uint8_t* out = q.codes.data() + r * q.row_bytes();
    for (std::int64_t j = 0; j < x.cols; ++j) {
      // Division, not multiplication by 1/scale: the code of max|x| is then
      // exactly qmax. nearbyint rounds half to even in the default FP mode.
      const float v = std::clamp(std::nearbyint(xr[j] / scale), -qmax, qmax);
      const auto c = static_cast<std::int8_t>(v);
      if (bits == 8)
        out[j] = static_cast<std::uint8_t>(c);
      else
        out[j / 2] |= static_cast<std::uint8_t>((static_cast<std::uint8_t>(c) & 0x0fu)
                                                << (j % 2 == 0 ? 0 : 4));
    }
  }
  return q;
}

absl::StatusOr<tensor> cpu_backend::dequantize(const quantized_activations& q) {
  constexpr std::string_view kernel = "dequantize";
  if (q.bits != 8 && q.bits != 4)
    return invalid(kernel, "bits must be 8 or 4, got ", q.bits);
  if (q.rows < 0 || q.cols < 0 ||
      q.codes.size() != static_cast<std::size_t>(q.rows * q.row_bytes()) ||
      q.scales.size() != static_cast<std::size_t>(q.rows))
    return invalid(kernel, q.codes.size(), " code bytes and ", q.scales.size(),
                   " scales do not match ", q.rows, " x ", q.cols, " at ", q.bits, " bits");
  for (std::size_t r = 0; r < q.scales.size(); ++r)
    if (!std::isfinite(q.scales[r]) || q.scales[r] < 0.0f)
      return invalid(kernel, "scale ", q.scales[r], " of row ", r, " is not finite and >= 0");
  const std::int64_t rb = q.row_bytes();
  for (std::int64_t r = 0; r < q.rows; ++r) {
    const std::uint8_t* in = q.codes.data() + r * rb;
    for (std::int64_t j = 0; j < rb; ++j) {
      const std::uint8_t b = in[j];
      const bool bad = q.bits == 8 ? b == 0x80u
                                   : ((b & 0x0fu) == 0x08u || (b >> 4) == 0x08u ||
                                      (q.cols % 2 == 1 && j == rb - 1 && (b >> 4) != 0));
      if (bad)
        return invalid(kernel, "byte ", static_cast<int>(b), " at row ", r, ", offset ", j,
                       " is not a symmetric ", q.bits, "-bit code (or a non-zero pad)");
    }
  }
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
  constexpr std::string_view kernel = "sparsify_topk";
  check_view(x, "x");
  if (k < 0 || k > x.cols)
    return invalid(kernel, "k ", k, " must be in [0, ", x.cols, "]");
  if (x.cols > INT32_MAX)
    return invalid(kernel, "too many columns: ", x.cols);
  for (std::int64_t i = 0; i < x.size(); ++i)
    if (std::isnan(x.data[i]))
      return invalid(kernel, "NaN at row ", i / x.cols, ", column ", i % x.cols);
  count_launch(op::sparsify);
  sparse_activations s;
  s.rows = x.rows;
  s.cols = x.cols;
  s.k = k;
  s.values.resize(static_cast<std::size_t>(x.rows * k));
  s.indices.resize(static_cast<std::size_t>(x.rows * k));
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
  constexpr std::string_view kernel = "densify";
  if (s.rows < 0 || s.cols < 0 || s.k < 0 || s.k > s.cols ||
      s.values.size() != static_cast<std::size_t>(s.rows * s.k) ||
      s.indices.size() != s.values.size())
    return invalid(kernel, s.values.size(), " values and ", s.indices.size(),
                   " indices do not match ", s.rows, " rows x k ", s.k, " of ", s.cols,
                   " columns");
  // Last row that wrote each column: catches a column given twice in a row.
  std::vector<std::int64_t> seen(static_cast<std::size_t>(s.cols), -1);
  for (std::int64_t r = 0; r < s.rows; ++r)
    for (std::int64_t j = 0; j < s.k; ++j) {
      const std::int32_t c = s.indices[static_cast<std::size_t>(r * s.k + j)];
      if (c < 0 || c >= s.cols)
        return invalid(kernel, "column ", c, " of row ", r, " outside [0, ", s.cols, ")");
      if (seen[static_cast<std::size_t>(c)] == r)
        return invalid(kernel, "column ", c, " appears twice in row ", r);
      seen[static_cast<std::size_t>(c)] = r;
    }
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
  check_view(x, "x");
  if (t != half_type::fp16 && t != half_type::bf16)
    return invalid("cast_half", "unknown half type ", static_cast<int>(t));
  count_launch(op::cast_half);
  half_activations h;
  h.type = t;
  h.rows = x.rows;
  h.cols = x.cols;
  h.bits.resize(static_cast<std::size_t>(x.size()));
  if (t == half_type::fp16)
    for (std::int64_t i = 0; i < x.size(); ++i)
      h.bits[static_cast<std::size_t>(i)] = float_to_fp16_bits(x.data[i]);
  else
    for (std::int64_t i = 0; i < x.size(); ++i)
      h.bits[static_cast<std::size_t>(i)] = float_to_bf16_bits(x.data[i]);
  return h;
}

absl::StatusOr<tensor> cpu_backend::uncast_half(const half_activations& h) {
  if (h.type != half_type::fp16 && h.type != half_type::bf16)
    return invalid("uncast_half", "unknown half type ", static_cast<int>(h.type));
  if (h.rows < 0 || h.cols < 0 || h.bits.size() != static_cast<std::size_t>(h.rows * h.cols))
    return invalid("uncast_half", h.bits.size(), " values do not match ", h.rows, " x ",
                   h.cols);
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
