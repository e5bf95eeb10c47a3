// The cuda backend's own kernels. Each mirrors its twin in cpu_backend.cpp;
// where the cpu's result is exact (selection, data movement, encodings) the
// kernel reproduces it bit for bit, using explicitly rounded operations
// (__fmul_rn, __fadd_rn, __fdiv_rn) so nvcc does not fuse them into FMAs.
#include "gpu/detail/cuda_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "gpu/half.hpp"

namespace satemu::gpu::detail {

namespace {

constexpr int block_threads = 256;
constexpr unsigned full_mask = 0xffffffffu;

// Blocks for a grid-stride loop over n elements.
unsigned grid_for(std::int64_t n) {
  return static_cast<unsigned>(std::min<std::int64_t>((n + block_threads - 1) / block_threads,
                                                      std::int64_t{1} << 20));
}

__device__ __forceinline__ std::int64_t global_thread() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ std::int64_t grid_stride() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

__device__ __forceinline__ float to_storage(float v, cuda_storage s) {
  if (s == cuda_storage::f16)
    return __half2float(__float2half_rn(v));
  if (s == cuda_storage::bf16)
    return __bfloat162float(__float2bfloat16_rn(v));
  return v;
}

struct sum_op {
  static constexpr float identity = 0.0f;
  __device__ __forceinline__ float operator()(float a, float b) const { return a + b; }
};
struct max_op {
  static constexpr float identity = -INFINITY;
  __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class Op>
__device__ __forceinline__ float warp_reduce(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v = Op{}(v, __shfl_xor_sync(full_mask, v, o));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce<sum_op>(v); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce<max_op>(v); }

// Block-wide reduction for blocks of whole warps; `shared` holds 32 floats.
// Every thread gets the result.
template <class Op>
__device__ float block_reduce(float v, float* shared) {
  const int lane = threadIdx.x & 31;
  const int w = threadIdx.x >> 5;
  v = warp_reduce<Op>(v);
  if (lane == 0)
    shared[w] = v;
  __syncthreads();
  if (w == 0) {
    float t = lane < static_cast<int>(blockDim.x >> 5) ? shared[lane] : Op::identity;
    t = warp_reduce<Op>(t);
    if (lane == 0)
      shared[0] = t;
  }
  __syncthreads();
  const float r = shared[0];
  __syncthreads();
  return r;
}

__device__ float block_sum(float v, float* shared) { return block_reduce<sum_op>(v, shared); }
__device__ float block_max(float v, float* shared) { return block_reduce<max_op>(v, shared); }

// Exclusive prefix sum of v over the block (blocks of whole warps);
// `shared` holds 33 ints. Sets *total to the block's sum.
__device__ int block_exclusive_scan(int v, int* total, int* shared) {
  const int lane = threadIdx.x & 31;
  const int w = threadIdx.x >> 5;
  const int nw = static_cast<int>(blockDim.x >> 5);
  int incl = v;
  for (int o = 1; o < 32; o <<= 1) {
    const int n = __shfl_up_sync(full_mask, incl, o);
    if (lane >= o)
      incl += n;
  }
  if (lane == 31)
    shared[w] = incl;
  __syncthreads();
  if (w == 0) {
    const int s = lane < nw ? shared[lane] : 0;
    int si = s;
    for (int o = 1; o < 32; o <<= 1) {
      const int n = __shfl_up_sync(full_mask, si, o);
      if (lane >= o)
        si += n;
    }
    if (lane < nw)
      shared[lane] = si - s;
    if (lane == 31)
      shared[32] = si;
  }
  __syncthreads();
  const int excl = shared[w] + incl - v;
  *total = shared[32];
  __syncthreads();
  return excl;
}

// --- Formats -------------------------------------------------------------------

__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* y, std::int64_t n) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void to_fp16_kernel(const float* x, __half* y, std::int64_t n) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    y[i] = __float2half_rn(x[i]);
}

__global__ void round_kernel(float* x, std::int64_t n, cuda_storage s) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    x[i] = to_storage(x[i], s);
}

__global__ void round_tf32_kernel(float* x, std::int64_t n) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride()) {
    const unsigned f = __float_as_uint(x[i]);
    if ((f & 0x7f800000u) == 0x7f800000u)
      continue; // inf and NaN stay
    // A carry out of the mantissa bumps the exponent (past the largest
    // finite value, to infinity), as rounding should.
    x[i] = __uint_as_float((f + 0xfffu + ((f >> 13) & 1u)) & ~0x1fffu);
  }
}

__global__ void fill_kernel(float* x, std::int64_t n, std::uint32_t seed) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride()) {
    // A 32-bit integer hash (lowbias32) of the index and the seed.
    std::uint32_t h = static_cast<std::uint32_t>(i) ^ (seed * 0x9e3779b9u);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    x[i] = static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
}

// --- Transformer kernels ----------------------------------------------------------

__global__ void rmsnorm_kernel(const float* x, const float* w, float* y, std::int64_t cols,
                               float eps, cuda_storage s) {
  __shared__ float red[32];
  const float* xr = x + static_cast<std::int64_t>(blockIdx.x) * cols;
  float* yr = y + static_cast<std::int64_t>(blockIdx.x) * cols;
  float ss = 0.0f;
  for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = to_storage(xr[j], s);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, red);
  const auto inv = static_cast<float>(
      1.0 / sqrt(static_cast<double>(ss) / static_cast<double>(cols) + static_cast<double>(eps)));
  for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    yr[j] = to_storage(__fmul_rn(__fmul_rn(to_storage(xr[j], s), inv), to_storage(w[j], s)), s);
}

__global__ void rope_kernel(float* q, std::int64_t q_heads, float* k, std::int64_t k_heads,
                            std::int64_t rows, std::int64_t head_dim,
                            const std::int64_t* positions, const double* inv_freq,
                            cuda_storage s) {
  const std::int64_t half = head_dim / 2;
  const std::int64_t heads = q_heads + k_heads;
  const std::int64_t total = rows * heads * half;
  for (std::int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    const std::int64_t i = idx % half;
    const std::int64_t th = idx / half;
    const std::int64_t h = th % heads;
    const std::int64_t row = th / heads;
    float* base = h < q_heads ? q + (row * q_heads + h) * head_dim
                              : k + (row * k_heads + (h - q_heads)) * head_dim;
    const double angle = static_cast<double>(positions[row]) * inv_freq[i];
    double sd = 0.0;
    double cd = 0.0;
    sincos(angle, &sd, &cd);
    const auto c = static_cast<float>(cd);
    const auto sn = static_cast<float>(sd);
    const float a = to_storage(base[i], s);
    const float b = to_storage(base[i + half], s);
    base[i] = to_storage(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn)), s);
    base[i + half] = to_storage(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn)), s);
  }
}

struct attention_params {
  const float* q;
  const float* k;
  const float* v;
  float* out;
  const attention_tile* tiles;
  std::int64_t q_stride;
  std::int64_t kv_stride;
  int head_dim;
  int group;
  int heads_per_block;
  int rows_per_tile;
  float scale;
  int window; // 0: none
  cuda_storage s;
};

constexpr int attention_keys = 32; // keys per shared-memory tile, one per lane

std::size_t attention_shared_bytes(int head_dim) {
  return sizeof(float) * static_cast<std::size_t>(attention_warps * head_dim +
                                                  attention_keys * (head_dim + 1) +
                                                  attention_keys * head_dim);
}

// Block (tile, kv head g, chunk of the group's query heads); warp w serves
// row w / heads_per_block of the tile and query head g * group + chunk *
// heads_per_block + w % heads_per_block. Keys and values pass through shared
// memory 32 at a time; each warp keeps an online softmax (running maximum m
// and sum l) and its output row spread over the lanes (lane c owns elements
// c, c + 32, ...). With a sliding window, row r's keys start at
// max(0, len - window): the block starts at row 0's first key (rounded down
// to a tile of 32), and a warp skips the tiles before its row's first key
// (so every tile it takes holds a key it attends to).
__global__ void __launch_bounds__(attention_warps * 32) attention_kernel(attention_params p) {
  extern __shared__ float smem[];
  const int hd = p.head_dim;
  const int ldk = hd + 1; // padded: lanes read different key rows without bank conflicts
  float* q_s = smem;
  float* k_s = q_s + attention_warps * hd;
  float* v_s = k_s + attention_keys * ldk;

  const attention_tile t = p.tiles[blockIdx.x];
  const int g = static_cast<int>(blockIdx.y);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31);
  const int r = warp / p.heads_per_block;
  const int hg = static_cast<int>(blockIdx.z) * p.heads_per_block + warp % p.heads_per_block;
  const bool active = r < p.rows_per_tile && r < t.n_rows && hg < p.group;
  const std::int64_t head = static_cast<std::int64_t>(g) * p.group + hg;
  const std::int64_t q_row = t.q_row + r;
  const int len = active ? t.first_len + r * t.step : 0;
  const int start = p.window > 0 ? max(0, len - p.window) : 0;
  if (active)
    for (int c = lane; c < hd; c += 32)
      q_s[warp * hd + c] = to_storage(p.q[q_row * p.q_stride + head * hd + c], p.s);

  constexpr int per_lane = attention_max_head_dim / 32;
  float acc[per_lane];
#pragma unroll
  for (int i = 0; i < per_lane; ++i)
    acc[i] = 0.0f;
  float m = -INFINITY;
  float l = 0.0f;
  const int max_len = t.first_len + (t.n_rows - 1) * t.step;
  const int block_start = p.window > 0 ? max(0, t.first_len - p.window) : 0;
  for (int j0 = block_start - block_start % attention_keys; j0 < max_len; j0 += attention_keys) {
    __syncthreads(); // q rows stored; the previous tile consumed
    const int nk = min(attention_keys, max_len - j0);
    for (int idx = static_cast<int>(threadIdx.x); idx < nk * hd;
         idx += static_cast<int>(blockDim.x)) {
      const int j = idx / hd;
      const int c = idx - j * hd;
      const std::int64_t src =
          (t.kv_row + j0 + j) * p.kv_stride + static_cast<std::int64_t>(g) * hd + c;
      k_s[j * ldk + c] = to_storage(p.k[src], p.s);
      v_s[j * hd + c] = to_storage(p.v[src], p.s);
    }
    __syncthreads();
    const int nv = min(attention_keys, len - j0);
    if (active && j0 < len && j0 + nv > start) { // uniform within the warp
      const bool valid = lane < nv && j0 + lane >= start;
      float score = -INFINITY;
      if (valid) {
        const float* qv = q_s + warp * hd;
        const float* kv = k_s + lane * ldk;
        float d = 0.0f;
        for (int c = 0; c < hd; ++c)
          d = fmaf(qv[c], kv[c], d);
        score = d * p.scale;
      }
      // m_new is finite: key max(j0, start) is attended to.
      const float m_new = fmaxf(m, warp_max(score));
      const float corr = expf(m - m_new); // 0 on the first tile (m = -inf)
      const float pj = valid ? expf(score - m_new) : 0.0f;
      l = l * corr + warp_sum(pj);
#pragma unroll
      for (int i = 0; i < per_lane; ++i)
        acc[i] *= corr;
      // From the window's first key: a key before it has weight 0, but
      // 0 x a non-finite value there would still poison the sum.
      for (int jj = max(0, start - j0); jj < nv; ++jj) {
        const float pb = __shfl_sync(full_mask, pj, jj);
        const float* vr = v_s + jj * hd;
#pragma unroll
        for (int i = 0; i < per_lane; ++i) {
          const int c = lane + 32 * i;
          if (c < hd)
            acc[i] = fmaf(pb, vr[c], acc[i]);
        }
      }
      m = m_new;
    }
  }
  if (active) {
    float* o = p.out + q_row * p.q_stride + head * hd;
    const float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < per_lane; ++i) {
      const int c = lane + 32 * i;
      if (c < hd)
        o[c] = to_storage(acc[i] * inv, p.s);
    }
  }
}

__global__ void gather_rows_kernel(const float* src, const std::int64_t* index, float* dst,
                                   std::int64_t n, std::int64_t cols) {
  for (std::int64_t i = global_thread(); i < n * cols; i += grid_stride())
    dst[i] = src[index[i / cols] * cols + i % cols];
}

// act(g) = g / (1 + exp(-a(g))): silu with a(g) = g; the tanh GELU with
// a(g) = 2 sqrt(2/pi) (g + 0.044715 g^3), as the cpu backend computes it.
__global__ void glu_kernel(bool gelu, const float* gate, const float* up, float* y,
                           std::int64_t n, cuda_storage s) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride()) {
    const float g = to_storage(gate[i], s);
    const float u = to_storage(up[i], s);
    const float a =
        gelu ? __fmul_rn(1.5957691216057308f,
                         __fadd_rn(g, __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g)))
             : g;
    y[i] = to_storage(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-a))), u), s);
  }
}

__global__ void add_kernel(float* y, const float* x, std::int64_t n, cuda_storage s) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    y[i] = to_storage(__fadd_rn(to_storage(y[i], s), to_storage(x[i], s)), s);
}

__global__ void add_gated_kernel(float* y, const float* x, const float* gate, std::int64_t rows,
                                 std::int64_t cols, cuda_storage s) {
  for (std::int64_t i = global_thread(); i < rows * cols; i += grid_stride()) {
    const float g = 1.0f / (1.0f + expf(-to_storage(gate[i / cols], s)));
    y[i] = to_storage(__fadd_rn(to_storage(y[i], s), __fmul_rn(g, to_storage(x[i], s))), s);
  }
}

// --- Mixture of experts --------------------------------------------------------------

// One thread per token. Choice j is the best expert strictly after choice
// j - 1 in the order (larger logit first, then lower index), so no marks are
// needed: O(k * n_experts) per token.
__global__ void router_topk_kernel(const float* logits, std::int64_t tokens,
                                   std::int64_t n_experts, std::int64_t k, bool renormalise,
                                   std::int32_t* expert, float* weight) {
  for (std::int64_t t = global_thread(); t < tokens; t += grid_stride()) {
    const float* l = logits + t * n_experts;
    float prev_l = 0.0f;
    std::int64_t prev_e = -1;
    for (std::int64_t j = 0; j < k; ++j) {
      std::int64_t best = -1;
      float best_l = 0.0f;
      for (std::int64_t e = 0; e < n_experts; ++e) {
        const float le = l[e];
        if (prev_e >= 0 && !(le < prev_l || (le == prev_l && e > prev_e)))
          continue;
        if (best < 0 || le > best_l) {
          best = e;
          best_l = le;
        }
      }
      expert[t * k + j] = static_cast<std::int32_t>(best);
      prev_e = best;
      prev_l = best_l;
    }
    const float mx = l[expert[t * k]];
    double sum = 0.0;
    if (renormalise)
      for (std::int64_t j = 0; j < k; ++j)
        sum += exp(static_cast<double>(l[expert[t * k + j]]) - mx);
    else
      for (std::int64_t e = 0; e < n_experts; ++e)
        sum += exp(static_cast<double>(l[e]) - mx);
    for (std::int64_t j = 0; j < k; ++j)
      weight[t * k + j] =
          static_cast<float>(exp(static_cast<double>(l[expert[t * k + j]]) - mx) / sum);
  }
}

__global__ void moe_gather_kernel(const float* x, const std::int64_t* row_of_slot, float* out,
                                  std::int64_t slots, std::int64_t k, std::int64_t cols) {
  for (std::int64_t i = global_thread(); i < slots * cols; i += grid_stride()) {
    const std::int64_t slot = i / cols;
    const std::int64_t c = i % cols;
    out[row_of_slot[slot] * cols + c] = x[(slot / k) * cols + c];
  }
}

__global__ void moe_combine_kernel(const float* y, const float* weight,
                                   const std::int64_t* row_of_slot, float* out,
                                   std::int64_t tokens, std::int64_t k, std::int64_t cols) {
  for (std::int64_t i = global_thread(); i < tokens * cols; i += grid_stride()) {
    const std::int64_t t = i / cols;
    const std::int64_t c = i % cols;
    float acc = 0.0f;
    for (std::int64_t j = 0; j < k; ++j) {
      const std::int64_t slot = t * k + j;
      acc = __fadd_rn(acc, __fmul_rn(weight[slot], y[row_of_slot[slot] * cols + c]));
    }
    out[i] = acc;
  }
}

// --- Activation compression ---------------------------------------------------------------

// The code of v: round half to even of v / scale, clamped; 0 for a zero scale.
__device__ __forceinline__ int quant_code(float v, float scale, float qmax) {
  if (scale == 0.0f)
    return 0;
  return static_cast<int>(fminf(fmaxf(rintf(__fdiv_rn(v, scale)), -qmax), qmax));
}

// One block per row: max |x| first, then the codes.
__global__ void quantize_kernel(const float* x, std::int64_t cols, int bits, std::uint8_t* codes,
                                float* scales) {
  __shared__ float red[32];
  const auto r = static_cast<std::int64_t>(blockIdx.x);
  const float* xr = x + r * cols;
  float amax = 0.0f;
  for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    amax = fmaxf(amax, fabsf(xr[j]));
  amax = block_max(amax, red);
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const float scale = __fdiv_rz(amax, qmax); // detail::quant_scale, toward zero
  if (threadIdx.x == 0)
    scales[r] = scale;
  if (bits == 8) {
    std::uint8_t* out = codes + r * cols;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      out[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(quant_code(xr[j], scale, qmax)));
  } else {
    const std::int64_t rb = (cols + 1) / 2;
    std::uint8_t* out = codes + r * rb;
    for (std::int64_t b = threadIdx.x; b < rb; b += blockDim.x) {
      const int lo = quant_code(xr[2 * b], scale, qmax);
      const int hi = 2 * b + 1 < cols ? quant_code(xr[2 * b + 1], scale, qmax) : 0;
      out[b] = static_cast<std::uint8_t>((static_cast<unsigned>(lo) & 0x0fu) |
                                         ((static_cast<unsigned>(hi) & 0x0fu) << 4));
    }
  }
}

__global__ void dequantize_kernel(const std::uint8_t* codes, const float* scales,
                                  std::int64_t rows, std::int64_t cols, int bits, float* out) {
  const std::int64_t rb = bits == 8 ? cols : (cols + 1) / 2;
  for (std::int64_t i = global_thread(); i < rows * cols; i += grid_stride()) {
    const std::int64_t r = i / cols;
    const std::int64_t j = i % cols;
    int c;
    if (bits == 8) {
      c = static_cast<std::int8_t>(codes[r * rb + j]);
    } else {
      const unsigned nib = (codes[r * rb + j / 2] >> (j % 2 == 0 ? 0 : 4)) & 0x0fu;
      c = nib >= 8u ? static_cast<int>(nib) - 16 : static_cast<int>(nib);
    }
    out[i] = __fmul_rn(static_cast<float>(c), scales[r]);
  }
}

// One block per row. |x| as bits orders like |x| (no NaN), so a 4-pass radix
// select (8 bits per pass, most significant first) finds the k-th largest key
// and how many keys equal to it are kept (the lowest columns first). Then a
// pass in column order writes the kept entries at their rank among the kept.
__global__ void sparsify_kernel(const float* x, std::int64_t cols, std::int64_t k, float* values,
                                std::int32_t* indices) {
  __shared__ unsigned hist[256];
  __shared__ unsigned chosen_bin;
  __shared__ long long chosen_remaining;
  __shared__ int scan[33];
  const auto row = static_cast<std::int64_t>(blockIdx.x);
  const float* xr = x + row * cols;
  unsigned prefix = 0;
  unsigned mask = 0;
  long long remaining = k; // keys still to take among those matching the prefix
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (unsigned i = threadIdx.x; i < 256; i += blockDim.x)
      hist[i] = 0;
    __syncthreads();
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
      const unsigned key = __float_as_uint(xr[j]) & 0x7fffffffu;
      if ((key & mask) == prefix)
        atomicAdd(&hist[(key >> shift) & 0xffu], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      long long above = 0;
      int b = 255;
      for (; b > 0; --b) {
        if (above + hist[b] >= remaining)
          break;
        above += hist[b];
      }
      chosen_bin = static_cast<unsigned>(b);
      chosen_remaining = remaining - above;
    }
    __syncthreads();
    prefix |= chosen_bin << shift;
    mask |= 0xffu << shift;
    remaining = chosen_remaining;
    __syncthreads();
  }
  // Keep every key > prefix, and the first `remaining` keys == prefix.
  long long ties_before = 0;
  long long kept_before = 0;
  for (std::int64_t base = 0; base < cols; base += blockDim.x) {
    const std::int64_t j = base + threadIdx.x;
    const unsigned key = j < cols ? (__float_as_uint(xr[j]) & 0x7fffffffu) : 0u;
    const int tie = j < cols && key == prefix ? 1 : 0;
    int ties_here = 0;
    const int tie_rank = block_exclusive_scan(tie, &ties_here, scan);
    const int keep =
        j < cols && (key > prefix || (tie != 0 && ties_before + tie_rank < remaining)) ? 1 : 0;
    int kept_here = 0;
    const int pos = block_exclusive_scan(keep, &kept_here, scan);
    if (keep != 0) {
      const std::int64_t out = row * k + kept_before + pos;
      values[out] = xr[j];
      indices[out] = static_cast<std::int32_t>(j);
    }
    ties_before += ties_here;
    kept_before += kept_here;
  }
}

__global__ void densify_kernel(const float* values, const std::int32_t* indices,
                               std::int64_t rows, std::int64_t cols, std::int64_t k, float* out) {
  for (std::int64_t i = global_thread(); i < rows * k; i += grid_stride())
    out[(i / k) * cols + indices[i]] = values[i];
}

__global__ void cast_half_kernel(const float* x, std::uint16_t* bits, std::int64_t n, bool bf16) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    bits[i] = bf16 ? float_to_bf16_bits(x[i]) : float_to_fp16_bits(x[i]);
}

__global__ void uncast_half_kernel(const std::uint16_t* bits, float* x, std::int64_t n,
                                   bool bf16) {
  for (std::int64_t i = global_thread(); i < n; i += grid_stride())
    x[i] = bf16 ? bf16_bits_to_float(bits[i]) : fp16_bits_to_float(bits[i]);
}

} // namespace

// --- Launchers ------------------------------------------------------------------------------

cudaError_t launch_to_half(const float* x, void* dst, std::int64_t n, cuda_storage s,
                           cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  if (s == cuda_storage::bf16)
    to_bf16_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, static_cast<__nv_bfloat16*>(dst),
                                                              n);
  else
    to_fp16_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, static_cast<__half*>(dst), n);
  return cudaGetLastError();
}

cudaError_t launch_round(float* x, std::int64_t n, cuda_storage s, cudaStream_t stream) {
  if (n <= 0 || s == cuda_storage::f32)
    return cudaSuccess;
  round_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, n, s);
  return cudaGetLastError();
}

cudaError_t launch_round_tf32(float* x, std::int64_t n, cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  round_tf32_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, n);
  return cudaGetLastError();
}

cudaError_t launch_fill(float* x, std::int64_t n, std::uint32_t seed, cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  fill_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, n, seed);
  return cudaGetLastError();
}

cudaError_t launch_rmsnorm(const float* x, const float* w, float* y, std::int64_t rows,
                           std::int64_t cols, float eps, cuda_storage s, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffff)
    return cudaErrorInvalidValue;
  rmsnorm_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(x, w, y, cols, eps, s);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* q, std::int64_t q_heads, float* k, std::int64_t k_heads,
                        std::int64_t rows, std::int64_t head_dim,
                        const std::int64_t* positions, const double* inv_freq, cuda_storage s,
                        cudaStream_t stream) {
  const std::int64_t n = rows * (q_heads + k_heads) * (head_dim / 2);
  if (n <= 0)
    return cudaSuccess;
  rope_kernel<<<grid_for(n), block_threads, 0, stream>>>(q, q_heads, k, k_heads, rows, head_dim,
                                                         positions, inv_freq, s);
  return cudaGetLastError();
}

cudaError_t launch_attention(const float* q, const float* k, const float* v, float* out,
                             const attention_tile* tiles, std::int64_t n_tiles,
                             std::int64_t n_heads, std::int64_t n_kv_heads,
                             std::int64_t head_dim, float scale, std::int64_t window,
                             cuda_storage s, cudaStream_t stream) {
  if (n_tiles <= 0)
    return cudaSuccess;
  if (window < 0 || head_dim <= 0 || head_dim > attention_max_head_dim || n_kv_heads <= 0 ||
      n_kv_heads > 65535 || n_heads % n_kv_heads != 0 || n_tiles > 0x7fffffff ||
      n_heads / n_kv_heads > std::int64_t{attention_warps} * 65535)
    return cudaErrorInvalidValue;
  const int group = static_cast<int>(n_heads / n_kv_heads);
  const int hpb = attention_heads_per_block(group);
  attention_params p{};
  p.q = q;
  p.k = k;
  p.v = v;
  p.out = out;
  p.tiles = tiles;
  p.q_stride = n_heads * head_dim;
  p.kv_stride = n_kv_heads * head_dim;
  p.head_dim = static_cast<int>(head_dim);
  p.group = group;
  p.heads_per_block = hpb;
  p.rows_per_tile = attention_rows_per_tile(group);
  p.scale = scale;
  // Sequences are shorter than 2^31 rows: a wider window is no window.
  p.window = window > 0x7fffffff ? 0 : static_cast<int>(window);
  p.s = s;
  const std::size_t smem = attention_shared_bytes(p.head_dim);
  if (smem > 48 * 1024) {
    if (auto e = cudaFuncSetAttribute(attention_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem));
        e != cudaSuccess)
      return e;
  }
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(n_kv_heads),
                  static_cast<unsigned>((group + hpb - 1) / hpb));
  attention_kernel<<<grid, attention_warps * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

cudaError_t launch_gather_rows(const float* src, const std::int64_t* index, float* dst,
                               std::int64_t n, std::int64_t cols, cudaStream_t stream) {
  if (n <= 0 || cols <= 0)
    return cudaSuccess;
  gather_rows_kernel<<<grid_for(n * cols), block_threads, 0, stream>>>(src, index, dst, n, cols);
  return cudaGetLastError();
}

cudaError_t launch_glu(bool gelu, const float* gate, const float* up, float* y, std::int64_t n,
                       cuda_storage s, cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  glu_kernel<<<grid_for(n), block_threads, 0, stream>>>(gelu, gate, up, y, n, s);
  return cudaGetLastError();
}

cudaError_t launch_add(float* y, const float* x, std::int64_t n, cuda_storage s,
                       cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  add_kernel<<<grid_for(n), block_threads, 0, stream>>>(y, x, n, s);
  return cudaGetLastError();
}

cudaError_t launch_add_gated(float* y, const float* x, const float* gate, std::int64_t rows,
                             std::int64_t cols, cuda_storage s, cudaStream_t stream) {
  if (rows * cols <= 0)
    return cudaSuccess;
  add_gated_kernel<<<grid_for(rows * cols), block_threads, 0, stream>>>(y, x, gate, rows, cols,
                                                                        s);
  return cudaGetLastError();
}

cudaError_t launch_router_topk(const float* logits, std::int64_t tokens, std::int64_t n_experts,
                               std::int64_t k, bool renormalise, std::int32_t* expert,
                               float* weight, cudaStream_t stream) {
  if (tokens <= 0 || k <= 0)
    return cudaSuccess;
  // Few threads per block: tokens are few and each thread's loop is long.
  constexpr int threads = 64;
  const auto blocks = static_cast<unsigned>(std::min<std::int64_t>((tokens + threads - 1) / threads,
                                                                   std::int64_t{1} << 20));
  router_topk_kernel<<<blocks, threads, 0, stream>>>(logits, tokens, n_experts, k, renormalise,
                                                     expert, weight);
  return cudaGetLastError();
}

cudaError_t launch_moe_gather(const float* x, const std::int64_t* row_of_slot, float* out,
                              std::int64_t tokens, std::int64_t k, std::int64_t cols,
                              cudaStream_t stream) {
  const std::int64_t n = tokens * k * cols;
  if (n <= 0)
    return cudaSuccess;
  moe_gather_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, row_of_slot, out, tokens * k, k,
                                                               cols);
  return cudaGetLastError();
}

cudaError_t launch_moe_combine(const float* y, const float* weight,
                               const std::int64_t* row_of_slot, float* out, std::int64_t tokens,
                               std::int64_t k, std::int64_t cols, cudaStream_t stream) {
  const std::int64_t n = tokens * cols;
  if (n <= 0)
    return cudaSuccess;
  moe_combine_kernel<<<grid_for(n), block_threads, 0, stream>>>(y, weight, row_of_slot, out,
                                                                tokens, k, cols);
  return cudaGetLastError();
}

cudaError_t launch_quantize(const float* x, std::int64_t rows, std::int64_t cols, int bits,
                            std::uint8_t* codes, float* scales, cudaStream_t stream) {
  if (rows <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffff)
    return cudaErrorInvalidValue;
  quantize_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(x, cols, bits, codes,
                                                                             scales);
  return cudaGetLastError();
}

cudaError_t launch_dequantize(const std::uint8_t* codes, const float* scales, std::int64_t rows,
                              std::int64_t cols, int bits, float* out, cudaStream_t stream) {
  const std::int64_t n = rows * cols;
  if (n <= 0)
    return cudaSuccess;
  dequantize_kernel<<<grid_for(n), block_threads, 0, stream>>>(codes, scales, rows, cols, bits,
                                                               out);
  return cudaGetLastError();
}

cudaError_t launch_sparsify_topk(const float* x, std::int64_t rows, std::int64_t cols,
                                 std::int64_t k, float* values, std::int32_t* indices,
                                 cudaStream_t stream) {
  if (rows <= 0 || k <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffff || k > cols)
    return cudaErrorInvalidValue;
  sparsify_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(x, cols, k, values,
                                                                             indices);
  return cudaGetLastError();
}

cudaError_t launch_densify(const float* values, const std::int32_t* indices, std::int64_t rows,
                           std::int64_t cols, std::int64_t k, float* out, cudaStream_t stream) {
  const std::int64_t n = rows * k;
  if (n <= 0)
    return cudaSuccess;
  densify_kernel<<<grid_for(n), block_threads, 0, stream>>>(values, indices, rows, cols, k, out);
  return cudaGetLastError();
}

cudaError_t launch_cast_half(const float* x, std::uint16_t* bits, std::int64_t n, bool bf16,
                             cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  cast_half_kernel<<<grid_for(n), block_threads, 0, stream>>>(x, bits, n, bf16);
  return cudaGetLastError();
}

cudaError_t launch_uncast_half(const std::uint16_t* bits, float* x, std::int64_t n, bool bf16,
                               cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  uncast_half_kernel<<<grid_for(n), block_threads, 0, stream>>>(bits, x, n, bf16);
  return cudaGetLastError();
}

} // namespace satemu::gpu::detail
