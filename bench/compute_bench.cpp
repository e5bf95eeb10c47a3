// Compute backends: GEMM rate against the host's peak, activation
// quantisation against memcpy, and one llama-3.2-1b decoder layer for 1, 64
// and 1,024 stacked prompt tokens; the same on the cuda backend when a CUDA
// device answers, next to cuBLAS's dense GEMM peak and the device's copy
// bandwidth.
//
//   BM_Compute_CpuGemm/<n>: C = A B, square n x n x n fp32, cpu backend
//     (OpenBLAS, one thread). Counters: gflops; peak_gflops, the host's
//     fitted roofline peak (gpu/calibrate.hpp, full calibration, measured once
//     per process); fraction_of_peak = gflops / peak_gflops. The calibration
//     times the same GEMMs, so that fraction is near 1 whatever the kernels
//     (the calibration runs in wall time, the benchmark counts CPU time: on
//     a busy host the fraction reads high); fma_peak_gflops is the core's
//     own peak, measured apart from OpenBLAS (16 or 12 chains of the widest
//     vector FMA the CPU has, AVX-512 or AVX2), and fraction_of_fma_peak =
//     gflops / fma_peak_gflops.
//   BM_Compute_CpuQuantize/<bits>: per-token int8 (int4) quantisation of a
//     [4096, 2048] fp32 matrix (32 MiB, beyond the caches). Counters:
//     input_GBps (fp32 bytes consumed per second); memcpy_GBps (std::memcpy
//     of the same 32 MiB into another buffer, median of 5, measured in the
//     same benchmark); ratio = input_GBps / memcpy_GBps. memcpy moves 2 bytes
//     per input byte, quantisation 1.25 (int8) or 1.125 (int4), so at the
//     memory limit the ratio would be 1.6 (1.78).
//   BM_Compute_CpuDecoderLayer/<tokens>: layer 0 of llama-3.2-1b (synthetic
//     weights, 243 MB fp32) on a ragged batch of `tokens` prompt tokens in
//     sequences of at most 64 (1 = one token, 64 = one sequence of 64,
//     1024 = 16 sequences of 64), prefill without a KV cache. Counters:
//     tokens_per_s; gflops (gpu/model.hpp layer_flops: the matrix products,
//     attention included); fraction_of_peak against the calibrated peak and
//     fraction_of_fma_peak against the core's FMA peak;
//     weights_GBps, the layer's fp32 weights (243 MB, read once per call)
//     per second, the bound when there are few tokens, against memcpy_GBps
//     (std::memcpy of a buffer of four times the largest cache and at least
//     64 MiB, so from memory; median of 5, once per process):
//     fraction_of_memcpy. memcpy reads and writes each byte, so a pure read
//     at the memory limit could reach about 2.
//   BM_Compute_CpuDecoderLayerAllCores/<tokens>: the llama-3.2-1b layer on a
//     cpu backend with one thread per core, in wall time; fraction_of_peak
//     against the calibrated one-core peak times the threads.
//   BM_Compute_CpuGemmaLayer/<tokens>: the same for layer 0 of gemma-3-270m
//     (a sliding-window layer: q/k and sandwich norms, GeGLU; 22 MB fp32;
//     the 512-key window does not bind on sequences of 64), against the
//     same memcpy reference (its weights fit a large last-level cache, so
//     its few-token rows may read them from there).
//   The Cpu figures are per CPU second of the benchmark's thread (the CPU
//   column), which equals wall time on an idle machine and stays put when
//   other processes share the cores.
//   BM_Compute_CudaGemmPeak/<precision>/<n>: one cuBLAS GEMM n x n x n on
//     device-resident operands (gpu/cuda_backend.hpp cuda_gemm_seconds,
//     CUDA events, median of 20). Counter: tflops.
//   BM_Compute_CudaDecoderLayer/<precision>/<tokens>/<resident>: the same
//     layer on the cuda backend (also for 4,096 tokens), run on the device
//     (backend::layer_extend): x is copied in, the output and the new keys
//     and values out, every call; the weights too with resident:0, while
//     resident:1 keeps them on the device (backend::keep_resident, as the GPU
//     worker does). Counters: tokens_per_s, gflops, fraction_of_gemm_peak =
//     gflops / (cuBLAS 8192^3 rate in that precision), weights_GBps (with
//     resident:0 this includes the copy from the host); device_ms, the
//     median call's kernels alone (backend::last_layer_device_seconds, CUDA
//     events from x on the device to the results ready to copy back), and
//     device_fraction_of_gemm_peak from it: the layer's efficiency on the
//     device, apart from the copies between host and device.
//   BM_Compute_CudaQuantize/<bits>: the quantize kernel on a device-resident
//     [16384, 4096] fp32 matrix (256 MiB). Counters: input_GBps; copy_GBps
//     (cudaMemcpy device to device of the same bytes); ratio as above.
//   The Cuda benchmarks skip with a message when no CUDA device answers.
//
// Run: ./build/bench/compute_bench --benchmark_repetitions=3
//        --benchmark_report_aggregates_only=true
// (under a minute on 2 cores without a GPU).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include <benchmark/benchmark.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench/bench_main.hpp"
#include "gpu/calibrate.hpp"
#include "gpu/cpu_backend.hpp"
#include "gpu/cuda_backend.hpp"
#include "gpu/device.hpp"
#include "gpu/layers.hpp"
#include "gpu/model.hpp"
#include "gpu/model_runner.hpp"
#include "runtime/output.hpp"
#include "runtime/rng.hpp"

namespace {

using namespace satemu::gpu;

tensor random_tensor(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  tensor t({rows, cols});
  satemu::runtime::rng r(seed, 0, 1);
  for (float& v : t.values())
    v = static_cast<float>(2.0 * r.uniform() - 1.0);
  return t;
}

/// CPU time of the calling thread. The CPU benchmarks are single-threaded
/// (OpenBLAS runs on one thread), so their rates are per CPU second: on an
/// idle machine the same as per wall second, and steady when other
/// processes share the cores (the Time column then grows, the CPU column
/// does not).
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// The median of `v` (not empty; the upper one of an even count).
double median(std::vector<double> v) {
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

/// Median CPU seconds of `fn` over `runs` runs.
template <class Fn>
double median_cpu_seconds(int runs, Fn&& fn) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) {
    const double start = thread_seconds();
    fn();
    t.push_back(thread_seconds() - start);
  }
  return median(std::move(t));
}

// --- The core's FMA peak, apart from any GEMM library ---------------------------------

#if defined(__x86_64__)
// Independent chains of vector FMAs, more than latency (4-5 cycles) x units
// (2) on current x86 cores, so the loop runs at the FMA units' throughput;
// few enough that the chains and the two constants stay in registers (16
// ymm for AVX2, 32 zmm for AVX-512): a chain spilled to the stack would add
// a store and a load to its latency. One body for each ISA: `target`
// compiles it for that ISA whatever the build's baseline; the caller checks
// the CPU has it.
constexpr int fma_chains_avx512 = 16;
constexpr int fma_chains_avx2 = 12;
#define SATEMU_FMA_LOOP(name, isa, chains, vec, lanes, set1, fmadd, add, store)             \
  __attribute__((target(isa))) float name(std::int64_t n, float a, float b) {                \
    vec acc[chains];                                                                         \
    for (int i = 0; i < chains; ++i)                                                         \
      acc[i] = set1(static_cast<float>(i));                                                  \
    const vec va = set1(a), vb = set1(b);                                                    \
    for (std::int64_t k = 0; k < n; ++k)                                                     \
      for (int i = 0; i < chains; ++i)                                                       \
        acc[i] = fmadd(acc[i], va, vb);                                                      \
    for (int i = 1; i < chains; ++i)                                                         \
      acc[0] = add(acc[0], acc[i]);                                                          \
    alignas(64) float out[lanes];                                                            \
    store(out, acc[0]);                                                                      \
    float sum = 0;                                                                           \
    for (float v : out)                                                                      \
      sum += v;                                                                              \
    return sum;                                                                              \
  }
SATEMU_FMA_LOOP(fma_loop_avx512, "avx512f", fma_chains_avx512, __m512, 16, _mm512_set1_ps,
                _mm512_fmadd_ps, _mm512_add_ps, _mm512_store_ps)
SATEMU_FMA_LOOP(fma_loop_avx2, "avx2,fma", fma_chains_avx2, __m256, 8, _mm256_set1_ps,
                _mm256_fmadd_ps, _mm256_add_ps, _mm256_store_ps)
#undef SATEMU_FMA_LOOP
#endif

/// One core's fp32 FMA throughput [FLOP/s] with the widest FMA the CPU has
/// (AVX-512 or AVX2; 0 where it has neither, or off x86-64): the machine's
/// own peak, measured apart from any GEMM library. Median of 5 runs of
/// 2 x 10^7 iterations of 16 (AVX-512) or 12 (AVX2) vector FMAs, measured
/// once.
double fma_peak_flops() {
  static const double peak = [] {
#if defined(__x86_64__)
    const bool avx512 = __builtin_cpu_supports("avx512f");
    if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
      return 0.0;
    const std::int64_t n = 20'000'000;
    const int lanes = avx512 ? 16 : 8;
    const int chains = avx512 ? fma_chains_avx512 : fma_chains_avx2;
    const double s = median_cpu_seconds(5, [&] {
      // a x (chains) + b, with a = 1 - 2^-20: values stay finite.
      benchmark::DoNotOptimize(avx512 ? fma_loop_avx512(n, 0.99999905f, 1e-3f)
                                      : fma_loop_avx2(n, 0.99999905f, 1e-3f));
    });
    return 2.0 * chains * lanes * static_cast<double>(n) / s;
#else
    return 0.0;
#endif
  }();
  return peak;
}

/// The host's fitted peak FLOP/s (0 when calibration fails), measured once.
double host_peak_flops() {
  static const double peak = [] {
    cpu_backend b;
    auto c = calibrate(b, false);
    return c.ok() ? c->fit.peak_flops : 0.0;
  }();
  return peak;
}

// --- CPU ------------------------------------------------------------------------------

void BM_Compute_CpuGemm(benchmark::State& state) {
  const std::int64_t n = state.range(0);
  cpu_backend b;
  const tensor a = random_tensor(n, n, 1);
  const tensor w = random_tensor(n, n, 2);
  tensor c({n, n});
  const double peak = host_peak_flops();
  const double start = thread_seconds();
  for (auto _ : state) {
    if (auto s = b.gemm({}, a, w, c); !s.ok()) {
      state.SkipWithError(std::string(s.message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  const double per_iteration = (thread_seconds() - start) / static_cast<double>(state.iterations());
  const auto dn = static_cast<double>(n);
  const double flops = 2.0 * dn * dn * dn;
  state.counters["gflops"] = flops / per_iteration * 1e-9;
  state.counters["peak_gflops"] = peak * 1e-9;
  if (peak > 0)
    state.counters["fraction_of_peak"] = flops / per_iteration / peak;
  if (const double fma = fma_peak_flops(); fma > 0) {
    state.counters["fma_peak_gflops"] = fma * 1e-9;
    state.counters["fraction_of_fma_peak"] = flops / per_iteration / fma;
  }
}
BENCHMARK(BM_Compute_CpuGemm)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond);

void BM_Compute_CpuQuantize(benchmark::State& state) {
  const int bits = static_cast<int>(state.range(0));
  const std::int64_t rows = 4096;
  const std::int64_t cols = 2048;
  const tensor x = random_tensor(rows, cols, 3);
  const auto bytes = static_cast<std::size_t>(x.numel()) * sizeof(float);
  std::vector<float> copy(static_cast<std::size_t>(x.numel()));
  const double memcpy_s = median_cpu_seconds(5, [&] {
    std::memcpy(copy.data(), x.data(), bytes);
    benchmark::DoNotOptimize(copy.data());
    benchmark::ClobberMemory();
  });
  cpu_backend b;
  const double start = thread_seconds();
  for (auto _ : state) {
    auto q = b.quantize(x, bits);
    if (!q.ok()) {
      state.SkipWithError(std::string(q.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(q->codes.data());
  }
  const double per_iteration = (thread_seconds() - start) / static_cast<double>(state.iterations());
  const double input_bps = static_cast<double>(bytes) / per_iteration;
  const double memcpy_bps = static_cast<double>(bytes) / memcpy_s;
  state.counters["input_GBps"] = input_bps * 1e-9;
  state.counters["memcpy_GBps"] = memcpy_bps * 1e-9;
  state.counters["ratio"] = input_bps / memcpy_bps;
}
BENCHMARK(BM_Compute_CpuQuantize)->Arg(8)->Arg(4)->ArgName("bits")->Unit(benchmark::kMillisecond);

/// Layer 0 of a model profile and its config (built once per process).
struct bench_layer {
  model_profile profile;
  decoder_config config;
  decoder_layer_weights weights;
};
const bench_layer* layer_of(const std::string& model) {
  static std::map<std::string, std::unique_ptr<bench_layer>> built;
  if (auto it = built.find(model); it != built.end())
    return it->second.get();
  std::unique_ptr<bench_layer> layer;
  auto p = find_model(model);
  if (p.ok()) {
    auto cfg = decoder_config_of(*p, 0);
    auto w = synthetic_layer(*p, 0);
    if (cfg.ok() && w.ok())
      layer = std::make_unique<bench_layer>(bench_layer{*p, *cfg, std::move(*w)});
  }
  return (built[model] = std::move(layer)).get();
}
const bench_layer* llama() { return layer_of("llama-3.2-1b"); }

/// Sequences of at most 64 tokens, `tokens` in all.
std::vector<std::int64_t> stacked_offsets(std::int64_t tokens) {
  std::vector<std::int64_t> offsets = {0};
  while (offsets.back() < tokens)
    offsets.push_back(std::min(tokens, offsets.back() + 64));
  return offsets;
}

double layer_flops_of(const bench_layer& l, const std::vector<std::int64_t>& offsets) {
  double f = 0;
  for (std::size_t s = 0; s + 1 < offsets.size(); ++s)
    f += static_cast<double>(layer_flops(l.profile, 0, offsets[s + 1] - offsets[s], 0));
  return f;
}

/// One prefill per iteration; counters as the file comment says, over the
/// thread's CPU time (cpu) or the wall time (cuda: the host waits for the
/// device).
void run_layer(benchmark::State& state, backend& b, const bench_layer* l, bool cpu_time,
               double peak_flops, const char* peak_name, double copy_bytes_per_s,
               std::size_t weight_element_bytes = sizeof(float)) {
  if (l == nullptr) {
    state.SkipWithError("cannot build the model's layer 0");
    return;
  }
  const std::int64_t tokens = state.range(0);
  const std::vector<std::int64_t> offsets = stacked_offsets(tokens);
  const tensor x = random_tensor(tokens, l->config.hidden, 4);
  auto now = [cpu_time] {
    return cpu_time ? thread_seconds()
                    : std::chrono::duration<double>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  };
  std::vector<double> device_seconds;
  const double start = now();
  for (auto _ : state) {
    auto y = decoder_layer_prefill(b, l->config, l->weights, x, offsets);
    if (!y.ok()) {
      state.SkipWithError(std::string(y.status().message()).c_str());
      break;
    }
    benchmark::DoNotOptimize(y->data());
    if (b.last_layer_device_seconds() > 0)
      device_seconds.push_back(b.last_layer_device_seconds());
  }
  const double per_iteration = (now() - start) / static_cast<double>(state.iterations());
  const double flops = layer_flops_of(*l, offsets);
  if (!device_seconds.empty()) {
    // The kernels alone (backend::last_layer_device_seconds), median call.
    const double device = median(std::move(device_seconds));
    state.counters["device_ms"] = device * 1e3;
    if (peak_flops > 0)
      state.counters[std::string("device_") + peak_name] = flops / device / peak_flops;
  }
  state.counters["tokens_per_s"] = static_cast<double>(tokens) / per_iteration;
  state.counters["gflops"] = flops / per_iteration * 1e-9;
  if (peak_flops > 0)
    state.counters[peak_name] = flops / per_iteration / peak_flops;
  // Every call reads all the layer's weights once: the bound for few tokens.
  const auto weight_bytes =
    static_cast<double>(layer_weight_bytes(l->profile, weight_element_bytes));
  state.counters["weights_GBps"] = weight_bytes / per_iteration * 1e-9;
  if (copy_bytes_per_s > 0) {
    state.counters["memcpy_GBps"] = copy_bytes_per_s * 1e-9;
    state.counters["fraction_of_memcpy"] = weight_bytes / per_iteration / copy_bytes_per_s;
  }
}

/// Host memory reference, the same for every model: std::memcpy [bytes/s]
/// of a buffer of four times the largest cache and at least 64 MiB (so
/// that it streams from memory), median of 5; measured once per process.
double host_memcpy_bytes_per_s() {
  static const double rate = [] {
    const auto bytes = static_cast<std::size_t>(
      std::max<std::uint64_t>(64u << 20, 4 * satemu::runtime::largest_cache_bytes()));
    std::vector<char> src(bytes, 1), dst(bytes, 2);
    return static_cast<double>(bytes) / median_cpu_seconds(5, [&] {
             std::memcpy(dst.data(), src.data(), bytes);
             benchmark::DoNotOptimize(dst.data());
             benchmark::ClobberMemory();
           });
  }();
  return rate;
}

void cpu_layer(benchmark::State& state, const bench_layer* l) {
  cpu_backend b;
  run_layer(state, b, l, true, host_peak_flops(), "fraction_of_peak",
            l != nullptr ? host_memcpy_bytes_per_s() : 0);
  if (const double fma = fma_peak_flops(); fma > 0 && state.counters.count("gflops") != 0)
    state.counters["fraction_of_fma_peak"] = state.counters["gflops"].value * 1e9 / fma;
}

void BM_Compute_CpuDecoderLayer(benchmark::State& state) { cpu_layer(state, llama()); }
void BM_Compute_CpuGemmaLayer(benchmark::State& state) {
  cpu_layer(state, layer_of("gemma-3-270m"));
}
BENCHMARK(BM_Compute_CpuGemmaLayer)
    ->Arg(1)
    ->Arg(64)
    ->Arg(1024)
    ->ArgName("tokens")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Compute_CpuDecoderLayer)
    ->Arg(1)
    ->Arg(64)
    ->Arg(1024)
    ->ArgName("tokens")
    ->Unit(benchmark::kMillisecond);

// The same layer on a backend with one thread per core (compute.threads: 0),
// in wall time: the speed-up of sharing a layer's kernels out.
void BM_Compute_CpuDecoderLayerAllCores(benchmark::State& state) {
  const int threads = satemu::runtime::host_cores();
  cpu_backend b(threads);
  state.counters["threads"] = threads;
  run_layer(state, b, llama(), false, threads * host_peak_flops(), "fraction_of_peak", 0);
}
BENCHMARK(BM_Compute_CpuDecoderLayerAllCores)
    ->Arg(1)
    ->Arg(64)
    ->Arg(1024)
    ->ArgName("tokens")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// --- CUDA ---------------------------------------------------------------------------------

/// Why the CUDA benchmarks cannot run here, or "" when they can.
std::string cuda_missing() {
  const device_info& d = probe_devices();
  if (!d.cuda_built)
    return "no CUDA backend in this build";
  if (d.cuda_devices == 0)
    return d.detail; // "no CUDA device (...)"
  return "";
}

void BM_Compute_CudaGemmPeak(benchmark::State& state, cuda_precision p) {
  if (const std::string why = cuda_missing(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const std::int64_t n = state.range(0);
  const auto dn = static_cast<double>(n);
  const double flops = 2.0 * dn * dn * dn;
  for (auto _ : state) {
    auto s = cuda_gemm_seconds(p, n, n, n, 20);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.status().message()).c_str());
      break;
    }
    state.SetIterationTime(*s);
    state.counters["tflops"] = flops / *s * 1e-12;
  }
}
#define SATEMU_BENCH_GEMM_PEAK(prec)                                                         \
  BENCHMARK_CAPTURE(BM_Compute_CudaGemmPeak, prec, cuda_precision::prec)                    \
      ->Arg(4096)                                                                            \
      ->Arg(8192)                                                                            \
      ->UseManualTime()                                                                      \
      ->Iterations(1)                                                                        \
      ->Unit(benchmark::kMillisecond)
SATEMU_BENCH_GEMM_PEAK(bf16);
SATEMU_BENCH_GEMM_PEAK(fp16);
SATEMU_BENCH_GEMM_PEAK(tf32);
SATEMU_BENCH_GEMM_PEAK(fp32);

/// cuBLAS's 8192^3 rate in precision p (0 when it cannot be measured).
double cuda_peak_flops(cuda_precision p) {
  static std::map<cuda_precision, double> peaks;
  if (auto it = peaks.find(p); it != peaks.end())
    return it->second;
  const double n = 8192;
  auto s = cuda_gemm_seconds(p, 8192, 8192, 8192, 10);
  return peaks[p] = s.ok() ? 2 * n * n * n / *s : 0.0;
}

void BM_Compute_CudaDecoderLayer(benchmark::State& state, cuda_precision p) {
  if (const std::string why = cuda_missing(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  auto b = make_cuda_backend({.precision = p});
  if (!b.ok()) {
    state.SkipWithError(std::string(b.status().message()).c_str());
    return;
  }
  const bool resident = state.range(1) != 0;
  if (resident && llama() != nullptr) {
    if (auto kept = keep_resident(**b, llama()->weights); !kept.ok()) {
      state.SkipWithError(std::string(kept.message()).c_str());
      return;
    }
  }
  // Resident weights are kept in the GEMM's storage format: 16 bits for
  // bf16 and fp16; otherwise the fp32 host copy is what is read.
  const bool half = p == cuda_precision::bf16 || p == cuda_precision::fp16;
  run_layer(state, **b, llama(), false, cuda_peak_flops(p), "fraction_of_gemm_peak", 0.0,
            resident && half ? 2 : sizeof(float));
}
#define SATEMU_BENCH_CUDA_LAYER(prec)                                                        \
  BENCHMARK_CAPTURE(BM_Compute_CudaDecoderLayer, prec, cuda_precision::prec)                \
      ->ArgsProduct({{1, 64, 1024, 4096}, {0, 1}})                                           \
      ->ArgNames({"tokens", "resident"})                                                     \
      ->Unit(benchmark::kMillisecond)                                                        \
      ->UseRealTime()
SATEMU_BENCH_CUDA_LAYER(bf16);
SATEMU_BENCH_CUDA_LAYER(fp16);
SATEMU_BENCH_CUDA_LAYER(tf32);

void BM_Compute_CudaQuantize(benchmark::State& state) {
  if (const std::string why = cuda_missing(); !why.empty()) {
    state.SkipWithError(why.c_str());
    return;
  }
  const int bits = static_cast<int>(state.range(0));
  const std::int64_t rows = 16384;
  const std::int64_t cols = 4096;
  const double bytes = static_cast<double>(rows * cols) * sizeof(float);
  auto copy = cuda_copy_seconds(rows * cols * static_cast<std::int64_t>(sizeof(float)), 20);
  if (!copy.ok()) {
    state.SkipWithError(std::string(copy.status().message()).c_str());
    return;
  }
  for (auto _ : state) {
    auto s = cuda_quantize_seconds(rows, cols, bits, 20);
    if (!s.ok()) {
      state.SkipWithError(std::string(s.status().message()).c_str());
      break;
    }
    state.SetIterationTime(*s);
    state.counters["input_GBps"] = bytes / *s * 1e-9;
    state.counters["copy_GBps"] = bytes / *copy * 1e-9;
    state.counters["ratio"] = *copy / *s;
  }
}
BENCHMARK(BM_Compute_CudaQuantize)
    ->Arg(8)
    ->Arg(4)
    ->ArgName("bits")
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

} // namespace

// The context names the OpenBLAS kernels the Cpu rows ran on.
int main(int argc, char** argv) {
  benchmark::AddCustomContext("openblas_core", satemu::gpu::openblas_core());
  return satemu::bench::run_benchmarks(argc, argv);
}
