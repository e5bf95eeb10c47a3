// The cuda backend's own kernels. Each mirrors its twin in cpu_backend.cpp;
// where the cpu's result is exact (selection, data movement, encodings) the
// kernel reproduces it bit for bit, using explicitly rounded operations
// (__fmul_rn, __fadd_rn, __fdiv_rn) so nvcc does not fuse them into FMAs.
#include "gpu/detail/cuda_kernels.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <algorithm>
#include <cmath>

#include "gpu/half.hpp"

// bf16 arithmetic and the TF32 matrix products of attention_tc_kernel.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "the cuda backend needs compute capability 8.0 or newer (CMAKE_CUDA_ARCHITECTURES >= 80)"
#endif

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

// A kernel's output value, already rounded to the storage format, stored as
// fp32 or as the 16-bit GEMM input format (exactly: it is rounded).
__device__ __forceinline__ void store(float* y, std::int64_t i, float v) { y[i] = v; }
__device__ __forceinline__ void store(__nv_bfloat16* y, std::int64_t i, float v) {
  y[i] = __float2bfloat16_rn(v);
}
__device__ __forceinline__ void store(__half* y, std::int64_t i, float v) {
  y[i] = __float2half_rn(v);
}

template <class T>
__global__ void rmsnorm_kernel(const float* x, const float* w, T* y, std::int64_t cols,
                               float eps, cuda_storage s) {
  __shared__ float red[32];
  const float* xr = x + static_cast<std::int64_t>(blockIdx.x) * cols;
  T* yr = y + static_cast<std::int64_t>(blockIdx.x) * cols;
  float ss = 0.0f;
  for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = to_storage(xr[j], s);
    ss = fmaf(v, v, ss);
  }
  ss = block_sum(ss, red);
  const auto inv = static_cast<float>(
      1.0 / sqrt(static_cast<double>(ss) / static_cast<double>(cols) + static_cast<double>(eps)));
  for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
    store(yr, j,
          to_storage(__fmul_rn(__fmul_rn(to_storage(xr[j], s), inv), to_storage(w[j], s)), s));
}

constexpr std::int64_t rope_heads = 8;

__global__ void rope_kernel(float* q, std::int64_t q_heads, float* k, std::int64_t k_heads,
                            std::int64_t rows, std::int64_t head_dim,
                            const std::int64_t* positions, const double* inv_freq,
                            cuda_storage s) {
  // One thread per (row, i, group of rope_heads heads): the angle's sine and
  // cosine (in double, as the cpu backend computes them) once for the group.
  const std::int64_t half = head_dim / 2;
  const std::int64_t heads = q_heads + k_heads;
  const std::int64_t groups = (heads + rope_heads - 1) / rope_heads;
  for (std::int64_t idx = global_thread(); idx < rows * groups * half; idx += grid_stride()) {
    const std::int64_t i = idx % half;
    const std::int64_t group = idx / half % groups;
    const std::int64_t row = idx / half / groups;
    const double angle = static_cast<double>(positions[row]) * inv_freq[i];
    double sd = 0.0;
    double cd = 0.0;
    sincos(angle, &sd, &cd);
    const auto c = static_cast<float>(cd);
    const auto sn = static_cast<float>(sd);
    for (std::int64_t h = group * rope_heads; h < min(heads, (group + 1) * rope_heads); ++h) {
      float* base = h < q_heads ? q + (row * q_heads + h) * head_dim
                                : k + (row * k_heads + (h - q_heads)) * head_dim;
      const float a = to_storage(base[i], s);
      const float b = to_storage(base[i + half], s);
      base[i] = to_storage(__fsub_rn(__fmul_rn(a, c), __fmul_rn(b, sn)), s);
      base[i + half] = to_storage(__fadd_rn(__fmul_rn(b, c), __fmul_rn(a, sn)), s);
    }
  }
}

struct attention_params {
  const float* q;
  const float* k;
  const float* v;
  const attention_tile* tiles;
  std::int64_t q_stride;
  std::int64_t kv_stride;
  int head_dim;
  int group;
  int heads_per_block;
  int rows_per_tile;
  float scale;
  int window; // 0: none
  bool kv_vec; // k and v rows read as float4 (16-byte aligned)
  bool q_vec;  // q rows read as float4 (16-byte aligned; tensor-core kernel)
  cuda_storage s;
};

constexpr int attention_keys = 32; // keys per shared-memory tile, one per lane

// Row stride of the key tile in shared memory, padded so that lanes reading
// different key rows hit different banks: by 4 when head_dim is a multiple of
// 4, which keeps the rows 16-byte aligned for float4 reads.
__host__ __device__ constexpr int attention_key_stride(int hd) {
  return hd % 4 == 0 ? hd + 4 : hd + 1;
}

std::size_t attention_shared_bytes(int head_dim) {
  const int pairs = attention_warps * attention_pairs_per_warp(head_dim, cuda_storage::f32);
  return sizeof(float) * static_cast<std::size_t>(pairs * head_dim +
                                                  attention_keys *
                                                      attention_key_stride(head_dim) +
                                                  attention_keys * head_dim);
}

// Block (tile, kv head g, chunk of the group's query heads). Its (query row,
// query head) pairs are slots i = row * heads_per_block + head of the chunk,
// and warp w serves slots w * P .. w * P + P - 1. Keys and values pass
// through shared memory 32 at a time, read by all the block's pairs; lane j
// scores key j0 + j against each of the warp's P queries (so a key row read
// from shared memory serves P dot products), and per pair the warp keeps an
// online softmax (running maximum m and sum l) and its output row spread
// over the lanes (lane c owns elements c, c + 32, ... < 32 PL). A score is
// the same chain of fmaf over the head's elements whatever P is, so a pair's
// result does not depend on which block or slot serves it. With a sliding
// window, row r's keys start at max(0, len - window): the block starts at
// row 0's first key (rounded down to a tile of 32), and a pair skips the
// tiles before its row's first key (so every tile it takes holds a key it
// attends to). The output is written as T (store). This kernel serves fp32
// storage and head dims the tensor-core kernel below does not take.
template <int PL, int P, class T>
__global__ void __launch_bounds__(attention_warps * 32)
    attention_kernel(attention_params p, T* out) {
  extern __shared__ float smem[];
  const int hd = p.head_dim;
  const int ldk = attention_key_stride(hd);
  float* q_s = smem;
  float* k_s = q_s + attention_warps * P * hd;
  float* v_s = k_s + attention_keys * ldk;

  const attention_tile t = p.tiles[blockIdx.x];
  const int g = static_cast<int>(blockIdx.y);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31);
  const float* q_warp = q_s + warp * P * hd;
  // Per pair: its row's key count (-1 for an idle slot) and first key.
  int len[P];
  int start[P];
#pragma unroll
  for (int j = 0; j < P; ++j) {
    const int slot = warp * P + j;
    const int r = slot / p.heads_per_block;
    const int hg = static_cast<int>(blockIdx.z) * p.heads_per_block + slot % p.heads_per_block;
    const bool active = r < p.rows_per_tile && r < t.n_rows && hg < p.group;
    len[j] = active ? t.first_len + r * t.step : -1;
    start[j] = p.window > 0 ? max(0, len[j] - p.window) : 0;
    if (active) {
      const std::int64_t head = static_cast<std::int64_t>(g) * p.group + hg;
      const float* qr = p.q + (t.q_row + r) * p.q_stride + head * hd;
      for (int c = lane; c < hd; c += 32)
        q_s[slot * hd + c] = to_storage(qr[c], p.s);
    }
  }

  float acc[P][PL];
  float m[P];
  float l[P];
#pragma unroll
  for (int j = 0; j < P; ++j) {
    m[j] = -INFINITY;
    l[j] = 0.0f;
#pragma unroll
    for (int i = 0; i < PL; ++i)
      acc[j][i] = 0.0f;
  }
  const int max_len = t.first_len + (t.n_rows - 1) * t.step;
  const int block_start = p.window > 0 ? max(0, t.first_len - p.window) : 0;
  for (int j0 = block_start - block_start % attention_keys; j0 < max_len; j0 += attention_keys) {
    __syncthreads(); // q rows stored; the previous tile consumed
    const int nk = min(attention_keys, max_len - j0);
    const std::int64_t kv_at = (t.kv_row + j0) * p.kv_stride + static_cast<std::int64_t>(g) * hd;
    if (p.kv_vec) {
      const int quads = hd / 4;
      for (int idx = static_cast<int>(threadIdx.x); idx < nk * quads;
           idx += static_cast<int>(blockDim.x)) {
        const int j = idx / quads;
        const int c = (idx - j * quads) * 4;
        const std::int64_t src = kv_at + j * p.kv_stride + c;
        const float4 kq = *reinterpret_cast<const float4*>(p.k + src);
        const float4 vq = *reinterpret_cast<const float4*>(p.v + src);
        *reinterpret_cast<float4*>(k_s + j * ldk + c) =
            make_float4(to_storage(kq.x, p.s), to_storage(kq.y, p.s), to_storage(kq.z, p.s),
                        to_storage(kq.w, p.s));
        *reinterpret_cast<float4*>(v_s + j * hd + c) =
            make_float4(to_storage(vq.x, p.s), to_storage(vq.y, p.s), to_storage(vq.z, p.s),
                        to_storage(vq.w, p.s));
      }
    } else {
      for (int j = warp; j < nk; j += attention_warps)
        for (int c = lane; c < hd; c += 32) {
          k_s[j * ldk + c] = to_storage(p.k[kv_at + j * p.kv_stride + c], p.s);
          v_s[j * hd + c] = to_storage(p.v[kv_at + j * p.kv_stride + c], p.s);
        }
    }
    __syncthreads();
    // Lane j's dot products with key j0 + j, elements in order.
    float d[P];
#pragma unroll
    for (int j = 0; j < P; ++j)
      d[j] = 0.0f;
    if (lane < nk) {
      const float* kr = k_s + lane * ldk;
      if (hd % 4 == 0) {
        for (int c = 0; c < hd; c += 4) {
          const float4 kv = *reinterpret_cast<const float4*>(kr + c);
#pragma unroll
          for (int j = 0; j < P; ++j) {
            const float4 qv = *reinterpret_cast<const float4*>(q_warp + j * hd + c);
            d[j] = fmaf(qv.x, kv.x, d[j]);
            d[j] = fmaf(qv.y, kv.y, d[j]);
            d[j] = fmaf(qv.z, kv.z, d[j]);
            d[j] = fmaf(qv.w, kv.w, d[j]);
          }
        }
      } else {
        for (int c = 0; c < hd; ++c) {
          const float kc = kr[c];
#pragma unroll
          for (int j = 0; j < P; ++j)
            d[j] = fmaf(q_warp[j * hd + c], kc, d[j]);
        }
      }
    }
    // The softmax update of each pair with keys here; [lo, hi) are the tile
    // keys its values take (empty for a pair with none).
    float pj[P];
    int lo[P];
    int hi[P];
    int lo_all = attention_keys;
    int hi_all = 0;
#pragma unroll
    for (int j = 0; j < P; ++j) {
      pj[j] = 0.0f;
      lo[j] = 0;
      hi[j] = 0;
      const int nv = min(attention_keys, len[j] - j0);
      if (j0 < len[j] && j0 + nv > start[j]) { // uniform within the warp
        const bool valid = lane < nv && j0 + lane >= start[j];
        const float score = valid ? d[j] * p.scale : -INFINITY;
        // m_new is finite: key max(j0, start) is attended to.
        const float m_new = fmaxf(m[j], warp_max(score));
        const float corr = expf(m[j] - m_new); // 0 on the first tile (m = -inf)
        pj[j] = valid ? expf(score - m_new) : 0.0f;
        l[j] = l[j] * corr + warp_sum(pj[j]);
#pragma unroll
        for (int i = 0; i < PL; ++i)
          acc[j][i] *= corr;
        m[j] = m_new;
        // From the window's first key: a key before it has weight 0, but
        // 0 x a non-finite value there would still poison the sum.
        lo[j] = max(0, start[j] - j0);
        hi[j] = nv;
        lo_all = min(lo_all, lo[j]);
        hi_all = max(hi_all, hi[j]);
      }
    }
    for (int jj = lo_all; jj < hi_all; ++jj) {
      const float* vr = v_s + jj * hd;
      float vv[PL];
#pragma unroll
      for (int i = 0; i < PL; ++i) {
        const int c = lane + 32 * i;
        vv[i] = c < hd ? vr[c] : 0.0f;
      }
#pragma unroll
      for (int j = 0; j < P; ++j) {
        const float pb = __shfl_sync(full_mask, pj[j], jj);
        if (jj >= lo[j] && jj < hi[j]) { // uniform within the warp
#pragma unroll
          for (int i = 0; i < PL; ++i)
            acc[j][i] = fmaf(pb, vv[i], acc[j][i]);
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < P; ++j) {
    if (len[j] < 0)
      continue;
    const int slot = warp * P + j;
    const int r = slot / p.heads_per_block;
    const std::int64_t head = static_cast<std::int64_t>(g) * p.group +
                              static_cast<int>(blockIdx.z) * p.heads_per_block +
                              slot % p.heads_per_block;
    T* o = out + (t.q_row + r) * p.q_stride + head * hd;
    const float inv = 1.0f / l[j];
#pragma unroll
    for (int i = 0; i < PL; ++i) {
      const int c = lane + 32 * i;
      if (c < hd)
        store(o, c, to_storage(acc[j][i] * inv, p.s));
    }
  }
}

// --- Attention on the tensor cores (attention_on_tensor_cores) ----------------------

namespace wmma = nvcuda::wmma;
using tf32_a = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using tf32_b_row =
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
using tf32_b_col =
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
using f32_acc = wmma::fragment<wmma::accumulator, 16, 16, 8, float>;

constexpr int tc_rows = 16;                      // pairs per warp: the products' rows
static_assert(tc_rows == attention_pairs_per_warp(64, cuda_storage::bf16),
              "the host's tiles (attention_rows_per_tile) must match the kernel's rows");
constexpr int tc_score_ld = attention_keys + 4;  // row stride of a warp's scores

// Row stride of q, k, v and output rows in shared memory for heads up to HD
// wide: a multiple of 4 floats, as the fragment loads need, padded off the
// banks' period.
__host__ __device__ constexpr int tc_ld(int hd_max) { return hd_max + 4; }

std::size_t attention_tc_shared_bytes(int hd_max) {
  return sizeof(float) * static_cast<std::size_t>(
                             2 * attention_keys * tc_ld(hd_max) +
                             attention_warps * tc_rows * (tc_score_ld + tc_ld(hd_max)));
}

// The same attention as attention_kernel, its products on the tensor cores:
// block (tile, kv head g, chunk of the group's query heads) as there, and
// warp w serves slots 16 w .. 16 w + 15, the rows of its matrix products.
// Per tile of 32 keys in shared memory (keys outside the block's rows'
// range are zeros there, so no product reads a value it must not): the
// warp's scores S = Q K^T (16 x 32) go to shared memory; lanes 2i and 2i + 1
// update row i's online softmax from its 16 + 16 scores, write its weights P
// (rounded to TF32) over the scores and rescale its output row; then
// O += P V. O stays in shared memory between tiles, and Q in registers. Every
// output element is a product of its own row of Q or P with the tile's keys
// or values, with the keys split into tiles at multiples of 32 from 0 as in
// attention_kernel, so a pair's result does not depend on its block or
// slot. head_dim is a multiple of 16 up to HD. The fragments are loaded as
// they are, without __float_to_tf32: q, k and v hold bf16 or fp16 values
// and P is rounded when written, so every value is already exact in TF32.
template <int HD, class T>
__global__ void __launch_bounds__(attention_warps * 32)
    attention_tc_kernel(attention_params p, T* out) {
  extern __shared__ __align__(32) float tc_smem[];
  constexpr int ld = tc_ld(HD);
  const int hd = p.head_dim;
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int lane = static_cast<int>(threadIdx.x & 31);
  float* k_s = tc_smem;
  float* v_s = k_s + attention_keys * ld;
  float* s_w = v_s + attention_keys * ld + warp * tc_rows * tc_score_ld;
  float* o_w = v_s + attention_keys * ld + attention_warps * tc_rows * tc_score_ld +
               warp * tc_rows * ld;

  const attention_tile t = p.tiles[blockIdx.x];
  const int g = static_cast<int>(blockIdx.y);
  // Slot i of the warp: tile row and query head, or -1 for an idle slot.
  auto slot_row = [&](int i) {
    const int slot = warp * tc_rows + i;
    const int r = slot / p.heads_per_block;
    const int hg = static_cast<int>(blockIdx.z) * p.heads_per_block + slot % p.heads_per_block;
    return r < p.rows_per_tile && r < t.n_rows && hg < p.group ? r : -1;
  };
  auto slot_head = [&](int i) {
    const int slot = warp * tc_rows + i;
    return static_cast<std::int64_t>(g) * p.group +
           static_cast<int>(blockIdx.z) * p.heads_per_block + slot % p.heads_per_block;
  };
  // Q through o_w (zeros for idle slots) into TF32 fragments, four elements
  // at a time (hd is a multiple of 16): the warp's loads are all issued
  // before it stores any, so their latencies overlap.
  const int quads = hd / 4;
  {
    constexpr int per_lane = tc_rows * HD / 4 / 32;
    float4 qv[per_lane];
#pragma unroll
    for (int u = 0; u < per_lane; ++u) {
      const int idx = lane + 32 * u;
      const int i = idx / quads;
      const int r = i < tc_rows ? slot_row(i) : -1;
      qv[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (r >= 0) {
        const float* qr =
            p.q + (t.q_row + r) * p.q_stride + slot_head(i) * hd + (idx - i * quads) * 4;
        qv[u] = p.q_vec ? *reinterpret_cast<const float4*>(qr)
                        : make_float4(qr[0], qr[1], qr[2], qr[3]);
      }
    }
#pragma unroll
    for (int u = 0; u < per_lane; ++u) {
      const int idx = lane + 32 * u;
      const int i = idx / quads;
      if (i < tc_rows)
        *reinterpret_cast<float4*>(o_w + i * ld + (idx - i * quads) * 4) =
            make_float4(to_storage(qv[u].x, p.s), to_storage(qv[u].y, p.s),
                        to_storage(qv[u].z, p.s), to_storage(qv[u].w, p.s));
    }
  }
  __syncwarp();
  tf32_a qf[HD / 8];
#pragma unroll
  for (int kk = 0; kk < HD / 8; ++kk)
    if (kk * 8 < hd) {
      wmma::load_matrix_sync(qf[kk], o_w + kk * 8, ld);
    }
  __syncwarp();
  for (int i = lane; i < tc_rows * ld; i += 32)
    o_w[i] = 0.0f;

  // This lane's row of the warp's products, and its half of the row.
  const int row = lane >> 1;
  const int half = lane & 1;
  const int my_r = slot_row(row);
  const int len = my_r >= 0 ? t.first_len + my_r * t.step : -1;
  const int start = p.window > 0 ? max(0, len - p.window) : 0;
  float m = -INFINITY;
  float l = 0.0f;
  const int max_len = t.first_len + (t.n_rows - 1) * t.step;
  const int block_start = p.window > 0 ? max(0, t.first_len - p.window) : 0;
  for (int j0 = block_start - block_start % attention_keys; j0 < max_len; j0 += attention_keys) {
    __syncthreads(); // the previous tile consumed
    const int nk = min(attention_keys, max_len - j0);
    const std::int64_t kv_at = (t.kv_row + j0) * p.kv_stride + static_cast<std::int64_t>(g) * hd;
    {
      // As Q: four elements at a time, every load before any store.
      constexpr int per_thread = attention_keys * HD / 4 / (attention_warps * 32);
      float4 kq[per_thread];
      float4 vq[per_thread];
#pragma unroll
      for (int u = 0; u < per_thread; ++u) {
        const int idx = static_cast<int>(threadIdx.x) + attention_warps * 32 * u;
        const int j = idx / quads;
        kq[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        vq[u] = kq[u];
        if (j < nk && j0 + j >= block_start) {
          const std::int64_t src = kv_at + j * p.kv_stride + (idx - j * quads) * 4;
          if (p.kv_vec) {
            kq[u] = *reinterpret_cast<const float4*>(p.k + src);
            vq[u] = *reinterpret_cast<const float4*>(p.v + src);
          } else {
            kq[u] = make_float4(p.k[src], p.k[src + 1], p.k[src + 2], p.k[src + 3]);
            vq[u] = make_float4(p.v[src], p.v[src + 1], p.v[src + 2], p.v[src + 3]);
          }
        }
      }
#pragma unroll
      for (int u = 0; u < per_thread; ++u) {
        const int idx = static_cast<int>(threadIdx.x) + attention_warps * 32 * u;
        const int j = idx / quads;
        if (j < attention_keys) {
          const int c = (idx - j * quads) * 4;
          *reinterpret_cast<float4*>(k_s + j * ld + c) =
              make_float4(to_storage(kq[u].x, p.s), to_storage(kq[u].y, p.s),
                          to_storage(kq[u].z, p.s), to_storage(kq[u].w, p.s));
          *reinterpret_cast<float4*>(v_s + j * ld + c) =
              make_float4(to_storage(vq[u].x, p.s), to_storage(vq[u].y, p.s),
                          to_storage(vq[u].z, p.s), to_storage(vq[u].w, p.s));
        }
      }
    }
    __syncthreads();
    // Does a row of this warp attend to a key of the tile?
    const bool mine = j0 < len && j0 + attention_keys > start;
    if (!__any_sync(full_mask, mine))
      continue;
    // S = Q K^T: K^T is the key tile read column-major.
#pragma unroll
    for (int n = 0; n < attention_keys / 16; ++n) {
      f32_acc sf;
      wmma::fill_fragment(sf, 0.0f);
#pragma unroll
      for (int kk = 0; kk < HD / 8; ++kk)
        if (kk * 8 < hd) {
          tf32_b_col kf;
          wmma::load_matrix_sync(kf, k_s + n * 16 * ld + kk * 8, ld);
          wmma::mma_sync(sf, qf[kk], kf, sf);
        }
      wmma::store_matrix_sync(s_w + n * 16, sf, tc_score_ld, wmma::mem_row_major);
    }
    __syncwarp();
    // Row `row`'s softmax update from its keys half * 16 .. + 15.
    float* srow = s_w + row * tc_score_ld + half * 16;
    const int key0 = j0 + half * 16;
    float tmax = -INFINITY;
#pragma unroll
    for (int i = 0; i < 16; ++i)
      if (key0 + i < len && key0 + i >= start)
        tmax = fmaxf(tmax, srow[i] * p.scale);
    tmax = fmaxf(tmax, __shfl_xor_sync(full_mask, tmax, 1));
    const bool had_keys = m != -INFINITY; // else O's row is still zero
    float corr = 1.0f;
    float psum = 0.0f;
    if (tmax == -INFINITY) { // no key of the tile for this row
#pragma unroll
      for (int i = 0; i < 16; ++i)
        srow[i] = 0.0f;
    } else {
      const float m_new = fmaxf(m, tmax);
      corr = expf(m - m_new); // 0 on the row's first tile (m = -inf)
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        const bool valid = key0 + i < len && key0 + i >= start;
        const float w = valid ? wmma::__float_to_tf32(expf(srow[i] * p.scale - m_new)) : 0.0f;
        srow[i] = w;
        psum += w;
      }
      m = m_new;
    }
    l = l * corr + (psum + __shfl_xor_sync(full_mask, psum, 1));
    if (had_keys && corr != 1.0f)
      for (int c = half; c < hd; c += 2) // the row's two lanes on neighbouring banks
        o_w[row * ld + c] *= corr;
    __syncwarp();
    // O += P V.
    tf32_a pf[attention_keys / 8];
#pragma unroll
    for (int kk = 0; kk < attention_keys / 8; ++kk)
      wmma::load_matrix_sync(pf[kk], s_w + kk * 8, tc_score_ld);
#pragma unroll
    for (int n = 0; n < HD / 16; ++n)
      if (n * 16 < hd) {
        f32_acc of;
        wmma::load_matrix_sync(of, o_w + n * 16, ld, wmma::mem_row_major);
#pragma unroll
        for (int kk = 0; kk < attention_keys / 8; ++kk) {
          tf32_b_row vf;
          wmma::load_matrix_sync(vf, v_s + kk * 8 * ld + n * 16, ld);
          wmma::mma_sync(of, pf[kk], vf, of);
        }
        wmma::store_matrix_sync(o_w + n * 16, of, ld, wmma::mem_row_major);
      }
    __syncwarp();
  }
  // Output rows, a row at a time across the warp.
  for (int i = 0; i < tc_rows; ++i) {
    const int r = slot_row(i);
    const float inv = 1.0f / __shfl_sync(full_mask, l, 2 * i);
    if (r < 0)
      continue;
    T* o = out + (t.q_row + r) * p.q_stride + slot_head(i) * hd;
    for (int c = lane; c < hd; c += 32)
      store(o, c, to_storage(o_w[i * ld + c] * inv, p.s));
  }
}

__global__ void gather_rows_kernel(const float* src, const std::int64_t* index, float* dst,
                                   std::int64_t n, std::int64_t cols) {
  for (std::int64_t i = global_thread(); i < n * cols; i += grid_stride())
    dst[i] = src[index[i / cols] * cols + i % cols];
}

// act(g) = g / (1 + exp(-a(g))): silu with a(g) = g; the tanh GELU with
// a(g) = 2 sqrt(2/pi) (g + 0.044715 g^3), as the cpu backend computes it.
__device__ __forceinline__ float glu_value(bool gelu, float gate, float up, cuda_storage s) {
  const float g = to_storage(gate, s);
  const float u = to_storage(up, s);
  const float a =
      gelu ? __fmul_rn(1.5957691216057308f,
                       __fadd_rn(g, __fmul_rn(__fmul_rn(__fmul_rn(0.044715f, g), g), g)))
           : g;
  return to_storage(__fmul_rn(__fdiv_rn(g, __fadd_rn(1.0f, expf(-a))), u), s);
}

// The elementwise kernels read 4 values at a time (float4) when their
// inputs are 16-byte aligned (the backend's buffers are), the last n % 4
// one at a time.
bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

template <class T>
__global__ void glu_kernel(bool gelu, const float* gate, const float* up, T* y, std::int64_t n,
                           bool vec, cuda_storage s) {
  std::int64_t from = 0;
  if (vec) {
    const auto* g4 = reinterpret_cast<const float4*>(gate);
    const auto* u4 = reinterpret_cast<const float4*>(up);
    for (std::int64_t i = global_thread(); i < n / 4; i += grid_stride()) {
      const float4 g = g4[i];
      const float4 u = u4[i];
      store(y, 4 * i, glu_value(gelu, g.x, u.x, s));
      store(y, 4 * i + 1, glu_value(gelu, g.y, u.y, s));
      store(y, 4 * i + 2, glu_value(gelu, g.z, u.z, s));
      store(y, 4 * i + 3, glu_value(gelu, g.w, u.w, s));
    }
    from = n / 4 * 4;
  }
  for (std::int64_t i = from + global_thread(); i < n; i += grid_stride())
    store(y, i, glu_value(gelu, gate[i], up[i], s));
}

__device__ __forceinline__ float add_value(float y, float x, cuda_storage s) {
  return to_storage(__fadd_rn(to_storage(y, s), to_storage(x, s)), s);
}

__global__ void add_kernel(float* y, const float* x, std::int64_t n, bool vec, cuda_storage s) {
  std::int64_t from = 0;
  if (vec) {
    auto* y4 = reinterpret_cast<float4*>(y);
    const auto* x4 = reinterpret_cast<const float4*>(x);
    for (std::int64_t i = global_thread(); i < n / 4; i += grid_stride()) {
      const float4 a = y4[i];
      const float4 b = x4[i];
      y4[i] = make_float4(add_value(a.x, b.x, s), add_value(a.y, b.y, s), add_value(a.z, b.z, s),
                          add_value(a.w, b.w, s));
    }
    from = n / 4 * 4;
  }
  for (std::int64_t i = from + global_thread(); i < n; i += grid_stride())
    y[i] = add_value(y[i], x[i], s);
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

// A code's low 4 bits (int4 codes, two per byte, the first in the low half).
__device__ __forceinline__ unsigned nibble(int code) { return static_cast<unsigned>(code) & 0x0fu; }

// One block per row: max |x| first, then the codes. With `vec` (rows of a
// multiple of 4 values, x 16-byte and codes 4-byte aligned) rows are read as
// float4 and their codes written 4 (int8) or 2 bytes (int4) at a time; the
// values are the same either way (fmaxf ignores NaN in any order).
__global__ void quantize_kernel(const float* x, std::int64_t cols, int bits, bool vec,
                                std::uint8_t* codes, float* scales) {
  __shared__ float red[32];
  const auto r = static_cast<std::int64_t>(blockIdx.x);
  const float* xr = x + r * cols;
  const auto* x4 = reinterpret_cast<const float4*>(xr);
  float amax = 0.0f;
  if (vec) {
    for (std::int64_t j = threadIdx.x; j < cols / 4; j += blockDim.x) {
      const float4 v = x4[j];
      amax = fmaxf(fmaxf(amax, fabsf(v.x)), fmaxf(fabsf(v.y), fmaxf(fabsf(v.z), fabsf(v.w))));
    }
  } else {
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      amax = fmaxf(amax, fabsf(xr[j]));
  }
  amax = block_max(amax, red);
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const float scale = __fdiv_rz(amax, qmax); // detail::quant_scale, toward zero
  if (threadIdx.x == 0)
    scales[r] = scale;
  if (bits == 8 && vec) {
    auto* out = reinterpret_cast<std::uint32_t*>(codes + r * cols);
    for (std::int64_t j = threadIdx.x; j < cols / 4; j += blockDim.x) {
      const float4 v = x4[j];
      out[j] = (static_cast<std::uint32_t>(quant_code(v.x, scale, qmax)) & 0xffu) |
               ((static_cast<std::uint32_t>(quant_code(v.y, scale, qmax)) & 0xffu) << 8) |
               ((static_cast<std::uint32_t>(quant_code(v.z, scale, qmax)) & 0xffu) << 16) |
               (static_cast<std::uint32_t>(quant_code(v.w, scale, qmax)) << 24);
    }
  } else if (bits == 8) {
    std::uint8_t* out = codes + r * cols;
    for (std::int64_t j = threadIdx.x; j < cols; j += blockDim.x)
      out[j] = static_cast<std::uint8_t>(static_cast<std::int8_t>(quant_code(xr[j], scale, qmax)));
  } else if (vec) {
    // cols / 2 bytes a row, even: 2-byte aligned.
    auto* out = reinterpret_cast<std::uint16_t*>(codes + r * (cols / 2));
    for (std::int64_t j = threadIdx.x; j < cols / 4; j += blockDim.x) {
      const float4 v = x4[j];
      out[j] = static_cast<std::uint16_t>(
          nibble(quant_code(v.x, scale, qmax)) | (nibble(quant_code(v.y, scale, qmax)) << 4) |
          (nibble(quant_code(v.z, scale, qmax)) << 8) |
          (nibble(quant_code(v.w, scale, qmax)) << 12));
    }
  } else {
    const std::int64_t rb = (cols + 1) / 2;
    std::uint8_t* out = codes + r * rb;
    for (std::int64_t b = threadIdx.x; b < rb; b += blockDim.x) {
      const int lo = quant_code(xr[2 * b], scale, qmax);
      const int hi = 2 * b + 1 < cols ? quant_code(xr[2 * b + 1], scale, qmax) : 0;
      out[b] = static_cast<std::uint8_t>(nibble(lo) | (nibble(hi) << 4));
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
                           std::int64_t cols, float eps, cuda_storage s, cudaStream_t stream,
                           void* half_out) {
  if (rows <= 0 || cols <= 0)
    return cudaSuccess;
  if (rows > 0x7fffffff)
    return cudaErrorInvalidValue;
  if (half_out == nullptr)
    rmsnorm_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(x, w, y, cols, eps,
                                                                                s);
  else if (s == cuda_storage::bf16)
    rmsnorm_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(
        x, w, static_cast<__nv_bfloat16*>(half_out), cols, eps, s);
  else if (s == cuda_storage::f16)
    rmsnorm_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(
        x, w, static_cast<__half*>(half_out), cols, eps, s);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t launch_rope(float* q, std::int64_t q_heads, float* k, std::int64_t k_heads,
                        std::int64_t rows, std::int64_t head_dim,
                        const std::int64_t* positions, const double* inv_freq, cuda_storage s,
                        cudaStream_t stream) {
  const std::int64_t groups = (q_heads + k_heads + rope_heads - 1) / rope_heads;
  const std::int64_t n = rows * (head_dim / 2) * groups;
  if (n <= 0)
    return cudaSuccess;
  rope_kernel<<<grid_for(n), block_threads, 0, stream>>>(q, q_heads, k, k_heads, rows, head_dim,
                                                         positions, inv_freq, s);
  return cudaGetLastError();
}

// Launches an attention kernel with `smem` bytes of dynamic shared memory,
// raising its limit first where that is past the default 48 KiB.
template <class... Args>
cudaError_t launch_attention_kernel(void (*kernel)(Args...), dim3 grid, std::size_t smem,
                               cudaStream_t stream, Args... args) {
  if (smem > 48 * 1024) {
    if (auto e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem));
        e != cudaSuccess)
      return e;
  }
  kernel<<<grid, attention_warps * 32, smem, stream>>>(args...);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_attention_as(dim3 grid, const attention_params& p, T* out,
                                cudaStream_t stream) {
  if (attention_on_tensor_cores(p.s, p.head_dim)) {
    if (p.head_dim <= 64)
      return launch_attention_kernel(attention_tc_kernel<64, T>, grid,
                                     attention_tc_shared_bytes(64), stream, p, out);
    return launch_attention_kernel(attention_tc_kernel<128, T>, grid,
                                   attention_tc_shared_bytes(128), stream, p, out);
  }
  // Output elements per lane and pairs per warp (attention_pairs_per_warp).
  static_assert(attention_pairs_per_warp(64, cuda_storage::f32) == 8 &&
                attention_pairs_per_warp(128, cuda_storage::f32) == 8 &&
                attention_pairs_per_warp(attention_max_head_dim, cuda_storage::f32) == 4);
  const std::size_t smem = attention_shared_bytes(p.head_dim);
  if (p.head_dim <= 64)
    return launch_attention_kernel(attention_kernel<2, 8, T>, grid, smem, stream, p, out);
  if (p.head_dim <= 128)
    return launch_attention_kernel(attention_kernel<4, 8, T>, grid, smem, stream, p, out);
  return launch_attention_kernel(attention_kernel<attention_max_head_dim / 32, 4, T>, grid, smem,
                            stream, p, out);
}

cudaError_t launch_attention(const float* q, const float* k, const float* v, float* out,
                             const attention_tile* tiles, std::int64_t n_tiles,
                             std::int64_t n_heads, std::int64_t n_kv_heads,
                             std::int64_t head_dim, float scale, std::int64_t window,
                             cuda_storage s, cudaStream_t stream, void* half_out) {
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
  p.tiles = tiles;
  p.q_stride = n_heads * head_dim;
  p.kv_stride = n_kv_heads * head_dim;
  p.head_dim = static_cast<int>(head_dim);
  p.group = group;
  p.heads_per_block = hpb;
  p.scale = scale;
  // Sequences are shorter than 2^31 rows: a wider window is no window.
  p.window = window > 0x7fffffff ? 0 : static_cast<int>(window);
  p.kv_vec = head_dim % 4 == 0 && p.kv_stride % 4 == 0 && aligned16(k) && aligned16(v);
  p.q_vec = head_dim % 4 == 0 && p.q_stride % 4 == 0 && aligned16(q);
  p.s = s;
  p.rows_per_tile = attention_rows_per_tile(group, head_dim, s);
  const dim3 grid(static_cast<unsigned>(n_tiles), static_cast<unsigned>(n_kv_heads),
                  static_cast<unsigned>((group + hpb - 1) / hpb));
  if (half_out == nullptr)
    return launch_attention_as(grid, p, out, stream);
  if (s == cuda_storage::bf16)
    return launch_attention_as(grid, p, static_cast<__nv_bfloat16*>(half_out), stream);
  if (s == cuda_storage::f16)
    return launch_attention_as(grid, p, static_cast<__half*>(half_out), stream);
  return cudaErrorInvalidValue;
}

cudaError_t launch_gather_rows(const float* src, const std::int64_t* index, float* dst,
                               std::int64_t n, std::int64_t cols, cudaStream_t stream) {
  if (n <= 0 || cols <= 0)
    return cudaSuccess;
  gather_rows_kernel<<<grid_for(n * cols), block_threads, 0, stream>>>(src, index, dst, n, cols);
  return cudaGetLastError();
}

cudaError_t launch_glu(bool gelu, const float* gate, const float* up, float* y, std::int64_t n,
                       cuda_storage s, cudaStream_t stream, void* half_out) {
  if (n <= 0)
    return cudaSuccess;
  const bool vec = aligned16(gate) && aligned16(up);
  const unsigned grid = grid_for(vec ? (n + 3) / 4 : n);
  if (half_out == nullptr)
    glu_kernel<<<grid, block_threads, 0, stream>>>(gelu, gate, up, y, n, vec, s);
  else if (s == cuda_storage::bf16)
    glu_kernel<<<grid, block_threads, 0, stream>>>(
        gelu, gate, up, static_cast<__nv_bfloat16*>(half_out), n, vec, s);
  else if (s == cuda_storage::f16)
    glu_kernel<<<grid, block_threads, 0, stream>>>(gelu, gate, up,
                                                   static_cast<__half*>(half_out), n, vec, s);
  else
    return cudaErrorInvalidValue;
  return cudaGetLastError();
}

cudaError_t launch_add(float* y, const float* x, std::int64_t n, cuda_storage s,
                       cudaStream_t stream) {
  if (n <= 0)
    return cudaSuccess;
  const bool vec = aligned16(y) && aligned16(x);
  add_kernel<<<grid_for(vec ? (n + 3) / 4 : n), block_threads, 0, stream>>>(y, x, n, vec, s);
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
  const bool vec =
      cols % 4 == 0 && aligned16(x) && (reinterpret_cast<std::uintptr_t>(codes) & 3u) == 0;
  quantize_kernel<<<static_cast<unsigned>(rows), block_threads, 0, stream>>>(x, cols, bits, vec,
                                                                             codes, scales);
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
