#include "gpu/detail/kernel_checks.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_join.h"
#include "gpu/detail/check.hpp"
#include "gpu/detail/cpu_loops.hpp"

namespace satemu::gpu::detail {

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
  if (cfg.window < 0)
    return invalid(kernel, "sliding window ", cfg.window, " must be >= 0 (0: none)");
  return absl::OkStatus();
}

absl::Status check_offsets(std::string_view kernel, std::span<const std::int64_t> offsets,
                           std::int64_t rows, std::string_view what) {
  if (offsets.empty() || offsets.front() != 0 || offsets.back() != rows)
    return invalid(kernel, std::string(what), " must start at 0 and end at the ", rows,
                   " token rows; got [", absl::StrJoin(offsets, ", "), "]");
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1])
      return invalid(kernel, std::string(what), " decrease at index ", i, ": [",
                     absl::StrJoin(offsets, ", "), "]");
  return absl::OkStatus();
}

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

absl::StatusOr<gemm_dims> check_gemm_strided_batched(const gemm_op& o, std::int64_t batch,
                                                     const const_matrix_view& a,
                                                     std::int64_t stride_a,
                                                     const const_matrix_view& b,
                                                     std::int64_t stride_b,
                                                     const const_matrix_view& c,
                                                     std::int64_t stride_c) {
  constexpr std::string_view kernel = "gemm_strided_batched";
  auto d = gemm_shape(kernel, o, a, b, c);
  if (!d.ok())
    return d.status();
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
  return d;
}

absl::StatusOr<std::vector<gemm_dims>> check_gemm_grouped(const gemm_op& o,
                                                          std::span<const gemm_problem> problems) {
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
  return dims;
}

absl::Status check_rmsnorm(const const_matrix_view& x, const const_matrix_view& weight,
                           float eps) {
  check_view(x, "x");
  check_view(weight, "weight");
  if (weight.size() != x.cols)
    return invalid("rmsnorm", "weight has ", weight.size(), " values for rows of ", x.cols);
  if (!(eps >= 0.0f) || !std::isfinite(eps))
    return invalid("rmsnorm", "eps ", eps, " must be finite and >= 0");
  return absl::OkStatus();
}

absl::Status check_rope(const attention_config& cfg, const const_matrix_view& q,
                        const const_matrix_view& k, std::span<const std::int64_t> positions) {
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
  if (absl::Status s = check_rope_scaling(cfg.rope_scaling); !s.ok())
    return invalid(kernel, s.message());
  for (std::size_t t = 0; t < positions.size(); ++t)
    if (positions[t] < 0)
      return invalid(kernel, "negative position ", positions[t], " of token ", t);
  return absl::OkStatus();
}

absl::StatusOr<std::int64_t> check_attention_prefill(const attention_config& cfg,
                                                     const const_matrix_view& q,
                                                     const const_matrix_view& k,
                                                     const const_matrix_view& v,
                                                     std::span<const std::int64_t> seq_offsets,
                                                     std::span<const std::int64_t> query_offsets) {
  constexpr std::string_view kernel = "attention_prefill";
  check_view(q, "q");
  check_view(k, "k");
  check_view(v, "v");
  if (auto s = check_attention_config(kernel, cfg); !s.ok())
    return s;
  if (q.cols != cfg.q_dim() || k.cols != cfg.kv_dim() || v.cols != cfg.kv_dim() ||
      v.rows != k.rows)
    return invalid(kernel, "q ", to_string(q), ", k ", to_string(k), ", v ", to_string(v),
                   " do not match ", cfg.n_heads, " heads and ", cfg.n_kv_heads,
                   " kv heads of ", cfg.head_dim);
  if (auto s = check_offsets(kernel, seq_offsets, k.rows); !s.ok())
    return s;
  if (auto s = check_offsets(kernel, query_offsets, q.rows, "query_offsets"); !s.ok())
    return s;
  if (query_offsets.size() != seq_offsets.size())
    return invalid(kernel, query_offsets.size() - 1, " sequences of queries for ",
                   seq_offsets.size() - 1, " of keys");
  if (q.cols > INT_MAX || k.cols > INT_MAX)
    return invalid(kernel, "dimensions exceed the BLAS integer range");
  std::int64_t max_len = 0;
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s) {
    const std::int64_t keys = seq_offsets[s + 1] - seq_offsets[s];
    const std::int64_t queries = query_offsets[s + 1] - query_offsets[s];
    if (queries > keys)
      return invalid(kernel, "sequence ", s, " has ", queries, " queries but ", keys,
                     " keys; its queries are its last positions");
    max_len = std::max(max_len, keys);
  }
  if (max_len > INT_MAX)
    return invalid(kernel, "a sequence of ", max_len, " tokens exceeds the BLAS integer range");
  return max_len;
}

absl::Status check_attention_decode(const attention_config& cfg, const const_matrix_view& q,
                                    const kv_cache& cache, std::span<const std::int64_t> lengths) {
  constexpr std::string_view kernel = "attention_decode";
  check_view(q, "q");
  if (auto s = check_attention_config(kernel, cfg); !s.ok())
    return s;
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
  return absl::OkStatus();
}

absl::Status check_kv_store(const kv_cache& cache, const const_matrix_view& k,
                            const const_matrix_view& v, std::span<const std::int64_t> slot,
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
  return absl::OkStatus();
}

absl::Status check_glu(std::string_view kernel, const const_matrix_view& gate,
                       const const_matrix_view& up) {
  check_view(gate, "gate");
  check_view(up, "up");
  if (gate.rows != up.rows || gate.cols != up.cols)
    return invalid(kernel, "gate ", to_string(gate), " and up ", to_string(up),
                   " differ in shape");
  return absl::OkStatus();
}

absl::Status check_add(const const_matrix_view& y, const const_matrix_view& x) {
  check_view(y, "y");
  check_view(x, "x");
  if (y.rows != x.rows || y.cols != x.cols)
    return invalid("add", "y ", to_string(y), " and x ", to_string(x), " differ in shape");
  return absl::OkStatus();
}

absl::Status check_add_gated(const const_matrix_view& y, const const_matrix_view& x,
                             const const_matrix_view& gate) {
  check_view(gate, "gate");
  if (auto s = check_add(y, x); !s.ok())
    return invalid("add_gated", "y ", to_string(y), " and x ", to_string(x), " differ in shape");
  if (gate.rows != y.rows || gate.cols != 1)
    return invalid("add_gated", "gate is ", to_string(gate), ", expected [", y.rows, ", 1]");
  return absl::OkStatus();
}

absl::Status check_router_topk(const const_matrix_view& logits, std::int64_t k) {
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
  return absl::OkStatus();
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
  // A permutation of the dispatched rows: gather writes each row once.
  std::vector<bool> taken(slots, false);
  for (std::size_t s = 0; s < slots; ++s) {
    const std::int64_t row = r.row_of_slot[s];
    if (row < 0 || row >= static_cast<std::int64_t>(slots))
      return invalid(kernel, "routing row_of_slot[", s, "] = ", row, " is outside [0, ", slots,
                     ")");
    if (taken[static_cast<std::size_t>(row)])
      return invalid(kernel, "routing row_of_slot[", s, "] = ", row,
                     " repeats a row: each slot needs its own dispatched row");
    taken[static_cast<std::size_t>(row)] = true;
  }
  return absl::OkStatus();
}

absl::Status check_moe_gather(const const_matrix_view& x, const moe_routing& r) {
  check_view(x, "x");
  if (auto s = check_routing("moe_gather", r); !s.ok())
    return s;
  if (x.rows != r.tokens)
    return invalid("moe_gather", "x ", to_string(x), " has not the routing's ", r.tokens,
                   " tokens");
  return absl::OkStatus();
}

absl::Status check_moe_combine(const const_matrix_view& y, const moe_routing& r) {
  check_view(y, "y");
  if (auto s = check_routing("moe_combine", r); !s.ok())
    return s;
  if (y.rows != r.tokens * r.k)
    return invalid("moe_combine", "y ", to_string(y), " needs tokens x k = ", r.tokens * r.k,
                   " rows");
  return absl::OkStatus();
}

absl::Status check_quantize_args(const const_matrix_view& x, int bits) {
  check_view(x, "x");
  if (bits != 8 && bits != 4)
    return invalid("quantize", "bits must be 8 or 4, got ", bits);
  return absl::OkStatus();
}

absl::Status check_quantize(const const_matrix_view& x, int bits) {
  constexpr std::string_view kernel = "quantize";
  SATEMU_GPU_RETURN_IF_ERROR(check_quantize_args(x, bits));
  // One vectorisable pass; the first culprit is looked for only if there is one.
  const std::int64_t n = x.size();
  if (max_magnitude_bits(x.data, n) < nonfinite_bits)
    return absl::OkStatus();
  for (std::int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x.data[i]))
      return invalid(kernel, "non-finite value ", x.data[i], " at row ", i / x.cols,
                     ", column ", i % x.cols);
  return absl::OkStatus();
}

absl::Status check_dequantize(const quantized_activations& q) {
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
  return absl::OkStatus();
}

absl::Status check_sparsify_topk(const const_matrix_view& x, std::int64_t k) {
  constexpr std::string_view kernel = "sparsify_topk";
  check_view(x, "x");
  if (k < 0 || k > x.cols)
    return invalid(kernel, "k ", k, " must be in [0, ", x.cols, "]");
  if (x.cols > INT32_MAX)
    return invalid(kernel, "too many columns: ", x.cols);
  for (std::int64_t i = 0; i < x.size(); ++i)
    if (std::isnan(x.data[i]))
      return invalid(kernel, "NaN at row ", i / x.cols, ", column ", i % x.cols);
  return absl::OkStatus();
}

absl::Status check_densify(const sparse_activations& s) {
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
  return absl::OkStatus();
}

absl::Status check_cast_half(const const_matrix_view& x, half_type t) {
  check_view(x, "x");
  if (t != half_type::fp16 && t != half_type::bf16)
    return invalid("cast_half", "unknown half type ", static_cast<int>(t));
  return absl::OkStatus();
}

absl::Status check_uncast_half(const half_activations& h) {
  if (h.type != half_type::fp16 && h.type != half_type::bf16)
    return invalid("uncast_half", "unknown half type ", static_cast<int>(h.type));
  if (h.rows < 0 || h.cols < 0 || h.bits.size() != static_cast<std::size_t>(h.rows * h.cols))
    return invalid("uncast_half", h.bits.size(), " values do not match ", h.rows, " x ",
                   h.cols);
  return absl::OkStatus();
}

} // namespace satemu::gpu::detail
