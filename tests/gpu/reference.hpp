/// @file reference.hpp
/// Naive double-precision reference kernels for the gpu tests, written
/// independently of gpu/cpu_backend.cpp: straightforward loops over the
/// documented layouts (row-major; heads as column blocks; weights [out, in]),
/// every sum in double. Also seeded random inputs and the error measure the
/// tests use.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "gpu/tensor.hpp"
#include "runtime/rng.hpp"

namespace satemu::gpu::ref {

using vec = std::vector<double>;

/// A `shape` tensor of uniform values in [-scale, scale), seeded.
inline tensor random_tensor(std::vector<std::int64_t> shape, std::uint64_t seed,
                            double scale = 1.0) {
  tensor t(std::move(shape));
  runtime::rng r(seed, 17, 3);
  for (float& v : t.values())
    v = static_cast<float>((2.0 * r.uniform() - 1.0) * scale);
  return t;
}

/// An RMSNorm weight of n values uniform in [0.5, 1.5), seeded.
inline tensor random_norm(std::int64_t n, std::uint64_t seed) {
  tensor t = random_tensor({n}, seed, 0.5);
  for (float& v : t.values())
    v += 1.0f;
  return t;
}

inline vec to_double(std::span<const float> x) { return vec(x.begin(), x.end()); }

/// The rows of x `[T, C]` from position past[s] on of each sequence s of
/// `offsets`, and their offsets (the queries of a prefill continuing cached
/// positions).
struct tail {
  tensor rows;
  std::vector<std::int64_t> offsets;
};
inline tail tail_rows(const tensor& x, std::span<const std::int64_t> offsets,
                      std::span<const std::int64_t> past) {
  const std::int64_t cols = x.dim(1);
  std::vector<float> rows;
  tail t{tensor(), {0}};
  for (std::size_t s = 0; s + 1 < offsets.size(); ++s) {
    rows.insert(rows.end(), x.data() + (offsets[s] + past[s]) * cols,
                x.data() + offsets[s + 1] * cols);
    t.offsets.push_back(t.offsets.back() + offsets[s + 1] - offsets[s] - past[s]);
  }
  t.rows = tensor({t.offsets.back(), cols}, std::move(rows));
  return t;
}

/// ||got - want|| / ||want|| in double (0 when both are zero).
inline double rel_err(std::span<const float> got, const vec& want) {
  if (got.size() != want.size())
    return INFINITY;
  double d = 0.0;
  double n = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double e = static_cast<double>(got[i]) - want[i];
    d += e * e;
    n += want[i] * want[i];
  }
  if (n == 0.0)
    return d == 0.0 ? 0.0 : INFINITY;
  return std::sqrt(d / n);
}

/// C = alpha op(A) op(B) + beta C, A stored [ar x ac], B [br x bc].
inline vec gemm(bool ta, bool tb, double alpha, std::span<const float> a, std::int64_t ar,
                std::int64_t ac, std::span<const float> b, std::int64_t br, std::int64_t bc,
                double beta, std::span<const float> c0) {
  const std::int64_t m = ta ? ac : ar;
  const std::int64_t k = ta ? ar : ac;
  const std::int64_t n = tb ? br : bc;
  vec c(static_cast<std::size_t>(m * n), 0.0);
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      double s = 0.0;
      for (std::int64_t p = 0; p < k; ++p) {
        const double x = ta ? a[p * ac + i] : a[i * ac + p];
        const double y = tb ? b[j * bc + p] : b[p * bc + j];
        s += x * y;
      }
      const auto idx = static_cast<std::size_t>(i * n + j);
      c[idx] = alpha * s + (beta != 0.0 ? beta * c0[idx] : 0.0);
    }
  return c;
}

/// y = x W^T for x [rows, in] and W [out, in] (doubles).
inline vec linear(const vec& x, std::int64_t rows, std::int64_t in, const tensor& w) {
  const std::int64_t out = w.dim(0);
  vec y(static_cast<std::size_t>(rows * out), 0.0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < out; ++o) {
      double s = 0.0;
      for (std::int64_t i = 0; i < in; ++i)
        s += x[static_cast<std::size_t>(r * in + i)] * static_cast<double>(w[o * in + i]);
      y[static_cast<std::size_t>(r * out + o)] = s;
    }
  return y;
}

inline vec rmsnorm(const vec& x, std::int64_t rows, std::int64_t cols,
                   std::span<const float> w, double eps) {
  vec y(x.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    double ss = 0.0;
    for (std::int64_t j = 0; j < cols; ++j)
      ss += x[static_cast<std::size_t>(r * cols + j)] * x[static_cast<std::size_t>(r * cols + j)];
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(cols) + eps);
    for (std::int64_t j = 0; j < cols; ++j)
      y[static_cast<std::size_t>(r * cols + j)] =
          x[static_cast<std::size_t>(r * cols + j)] * inv * static_cast<double>(w[j]);
  }
  return y;
}

/// Rotate-half RoPE on a [rows, heads*head_dim] matrix, in place, with the
/// frequencies `inv_freq` (head_dim / 2 of them).
inline void rope(vec& x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                 std::span<const std::int64_t> pos, std::span<const double> inv_freq) {
  const std::int64_t half = head_dim / 2;
  for (std::int64_t t = 0; t < rows; ++t)
    for (std::int64_t h = 0; h < heads; ++h) {
      double* base = x.data() + t * heads * head_dim + h * head_dim;
      for (std::int64_t i = 0; i < half; ++i) {
        const double ang = static_cast<double>(pos[t]) * inv_freq[static_cast<std::size_t>(i)];
        const double a = base[i];
        const double b = base[i + half];
        base[i] = a * std::cos(ang) - b * std::sin(ang);
        base[i + half] = b * std::cos(ang) + a * std::sin(ang);
      }
    }
}

/// Rotate-half RoPE with the plain frequencies 1 / theta^(2i / head_dim).
inline void rope(vec& x, std::int64_t rows, std::int64_t heads, std::int64_t head_dim,
                 std::span<const std::int64_t> pos, double theta) {
  const std::int64_t half = head_dim / 2;
  for (std::int64_t t = 0; t < rows; ++t)
    for (std::int64_t h = 0; h < heads; ++h) {
      double* base = x.data() + t * heads * head_dim + h * head_dim;
      for (std::int64_t i = 0; i < half; ++i) {
        const double ang =
            static_cast<double>(pos[t]) /
            std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim));
        const double a = base[i];
        const double b = base[i + half];
        base[i] = a * std::cos(ang) - b * std::sin(ang);
        base[i + half] = b * std::cos(ang) + a * std::sin(ang);
      }
    }
}

/// One query row against `n` keys/values (rows of k and v with stride kv_stride,
/// starting at the kv head's column): softmax(scale q.k) v into out[0..hd).
inline void attend(const double* q, const double* k, const double* v, std::int64_t n,
                   std::int64_t kv_stride, std::int64_t hd, double scale, double* out) {
  vec s(static_cast<std::size_t>(n));
  double mx = -INFINITY;
  for (std::int64_t j = 0; j < n; ++j) {
    double d = 0.0;
    for (std::int64_t c = 0; c < hd; ++c)
      d += q[c] * k[j * kv_stride + c];
    s[static_cast<std::size_t>(j)] = d * scale;
    mx = std::max(mx, d * scale);
  }
  double z = 0.0;
  for (auto& e : s) {
    e = std::exp(e - mx);
    z += e;
  }
  for (std::int64_t c = 0; c < hd; ++c) {
    double acc = 0.0;
    for (std::int64_t j = 0; j < n; ++j)
      acc += s[static_cast<std::size_t>(j)] * v[j * kv_stride + c];
    out[c] = acc / z;
  }
}

/// Causal attention over a ragged batch (q [T, H*hd], k, v [T, KV*hd]); with
/// `window` > 0, token i of a sequence sees its tokens i - window + 1 .. i.
inline vec attention_prefill(const vec& q, const vec& k, const vec& v,
                             std::span<const std::int64_t> offsets, std::int64_t heads,
                             std::int64_t kv_heads, std::int64_t hd, double scale,
                             std::int64_t window = 0) {
  const std::int64_t qd = heads * hd;
  const std::int64_t kd = kv_heads * hd;
  vec out(q.size(), 0.0);
  for (std::size_t s = 0; s + 1 < offsets.size(); ++s)
    for (std::int64_t i = offsets[s]; i < offsets[s + 1]; ++i)
      for (std::int64_t h = 0; h < heads; ++h) {
        const std::int64_t g = h * kv_heads / heads;
        const std::int64_t first =
            window > 0 ? std::max(offsets[s], i - window + 1) : offsets[s];
        attend(q.data() + i * qd + h * hd, k.data() + first * kd + g * hd,
               v.data() + first * kd + g * hd, i - first + 1, kd, hd, scale,
               out.data() + i * qd + h * hd);
      }
  return out;
}

inline double silu(double x) { return x / (1.0 + std::exp(-x)); }

/// GELU, tanh approximation, as PyTorch writes it.
inline double gelu_tanh(double x) {
  const double c = std::sqrt(2.0 / 3.14159265358979323846);
  return 0.5 * x * (1.0 + std::tanh(c * (x + 0.044715 * x * x * x)));
}

/// down(silu(x gate^T) * (x up^T)) for x [rows, D].
inline vec swiglu(const vec& x, std::int64_t rows, std::int64_t d, const tensor& gate,
                  const tensor& up, const tensor& down) {
  const std::int64_t f = gate.dim(0);
  vec g = linear(x, rows, d, gate);
  const vec u = linear(x, rows, d, up);
  for (std::size_t i = 0; i < g.size(); ++i)
    g[i] = silu(g[i]) * u[i];
  return linear(g, rows, f, down);
}

/// Experts chosen for one token: by descending logit, ties to the lower index.
inline std::vector<int> top_experts(std::span<const double> logits, std::int64_t k) {
  std::vector<int> idx(logits.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(),
                   [&](int a, int b) { return logits[static_cast<std::size_t>(a)] >
                                              logits[static_cast<std::size_t>(b)]; });
  idx.resize(static_cast<std::size_t>(k));
  return idx;
}

/// Full softmax, then the top-k probabilities, renormalised to sum to 1 with
/// `renormalise`.
inline vec topk_weights(std::span<const double> logits, const std::vector<int>& chosen,
                        bool renormalise = true) {
  const double mx = *std::max_element(logits.begin(), logits.end());
  double z = 0.0;
  for (double l : logits)
    z += std::exp(l - mx);
  vec p;
  double sel = 0.0;
  for (int e : chosen) {
    p.push_back(std::exp(logits[static_cast<std::size_t>(e)] - mx) / z);
    sel += p.back();
  }
  if (renormalise)
    for (double& w : p)
      w /= sel;
  return p;
}

} // namespace satemu::gpu::ref
