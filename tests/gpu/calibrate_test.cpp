// Host calibration (gpu/calibrate.hpp) on the cpu backend: the memory-bound
// samples stream from memory, not from a cache, and the fit sees both
// regimes.
#include "gpu/calibrate.hpp"

#include <algorithm>
#include <cstdint>

#include <gtest/gtest.h>

#include "cuda_required.hpp"
#include "gpu/cpu_backend.hpp"
#include "gpu/device.hpp"
#include "runtime/output.hpp"

namespace satemu::gpu {
namespace {

TEST(Calibrate, MemorySamplesAreBeyondTheCachesAndTheFitSeesBothRegimes) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "kernel timings under ThreadSanitizer do not fit a roofline";
#endif
  cpu_backend b;
  auto c = calibrate(b, /*quick=*/true);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->backend, "cpu");
  const std::uint64_t cache = runtime::largest_cache_bytes();
  const std::uint64_t want = std::max<std::uint64_t>(64u << 20, 4 * cache);
  // The samples may be smaller only where a quarter of the memory available
  // cannot hold the two largest working sets.
  // (A working set is `want` rounded up to at most twice it, and the
  // largest of two samples twice that.)
  const bool room = 4 * want <= runtime::available_memory_bytes() / 4;
  int adds = 0;
  for (const auto& s : c->samples) {
    if (!s.what.starts_with("add "))
      continue;
    ++adds;
    // 12 bytes moved per element: x and y read, y written; 8 bytes held.
    const double working_set = s.sample.bytes / 12 * 8;
    if (room) {
      EXPECT_GE(working_set, static_cast<double>(want)) << s.what << ", largest cache " << cache;
    }
  }
  EXPECT_GE(adds, 2);
  EXPECT_GE(c->fit.compute_bound, 2u);
  EXPECT_GE(c->fit.memory_bound, 2u);
  EXPECT_GT(c->fit.memory_bytes_per_s, 0.0);
  EXPECT_GT(c->fit.peak_flops, 0.0);
}

TEST(Calibrate, TheOverrideCarriesThePeakOfThePrecisionAndSatPayloadsFp32Peak) {
  calibration c;
  c.fit.peak_flops = 1.5e11;
  c.fit.memory_bytes_per_s = 4.25e10;
  c.fit.launch_overhead = runtime::duration::from_ns(1234);
  EXPECT_EQ(device_override(c),
            "{peak_fp32_flops: 1.5e+11, memory_bytes_per_s: 4.25e+10, launch_overhead: 1234ns}");
  c.precision = compute_precision::bf16;
  c.fit.peak_flops = 7.5e14;
  c.fp32_gemm_flops = 5.1e13;
  EXPECT_EQ(device_override(c), "{peak_fp32_flops: 5.1e+13, peak_fp16_flops: 7.5e+14, "
                                "memory_bytes_per_s: 4.25e+10, launch_overhead: 1234ns}");
  // Without a measured fp32 rate, the fitted peak stands for both.
  c.fp32_gemm_flops = 0;
  EXPECT_NE(device_override(c).find("peak_fp32_flops: 7.5e+14, peak_fp16_flops: 7.5e+14"),
            std::string::npos)
      << device_override(c);
}

// A fit far from its samples (a busy host) is warned about; a quiet host's
// (about 10%) is not.
TEST(Calibrate, APoorFitIsWarnedAbout) {
  calibration c;
  c.fit.rms_relative_residual = 0.07;
  EXPECT_EQ(fit_warning(c, 1), "");
  c.fit.rms_relative_residual = 0.2;
  EXPECT_EQ(fit_warning(c, 1), "");
  c.fit.rms_relative_residual = 0.352;
  EXPECT_EQ(fit_warning(c, 1),
            "the samples fit one roofline poorly (rms relative residual 35.2%, above 20%): other "
            "work on the host slowed some of them, and the figures may be off by as much; run "
            "calibrate again on a quiet host and compare");
  EXPECT_NE(fit_warning(c, 2).find("other work on the host, or GEMMs too small to be shared out "
                                   "over threads, slowed"),
            std::string::npos)
    << fit_warning(c, 2);
}

TEST(Calibrate, CudaDeviceIsTimedOnTheDeviceOrUnavailable) {
  const device_info& dev = probe_devices();
  auto c = calibrate_cuda_device(/*quick=*/true);
  if (!dev.cuda_built || dev.cuda_devices == 0) {
    EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
    SATEMU_CUDA_UNAVAILABLE("no CUDA backend or device: " << dev.detail);
  }
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->backend, "cuda");
  EXPECT_EQ(c->precision, compute_precision::bf16);
  double largest = 0;
  int copies = 0;
  for (const auto& s : c->samples) {
    EXPECT_GT(s.sample.seconds, 0.0) << s.what;
    if (s.what.starts_with("gemm "))
      largest = std::max(largest, s.sample.flops / s.sample.seconds);
    copies += s.what.starts_with("copy ");
  }
  EXPECT_EQ(copies, 2);
  // Sanity bounds any CUDA device clears (an H100 reaches hundreds of
  // TFLOP/s and about 3 TB/s); fp32 runs below the tensor-core bf16 peak.
  EXPECT_GT(largest, 1e12);
  EXPECT_GT(c->fp32_gemm_flops, 0.0);
  EXPECT_LT(c->fp32_gemm_flops, c->fit.peak_flops);
  EXPECT_GE(c->fit.compute_bound, 2u);
  EXPECT_GE(c->fit.memory_bound, 2u);
  EXPECT_GT(c->fit.memory_bytes_per_s, 1e10);
}

TEST(Calibrate, LinuxReportsTheLargestCache) {
  // Every Linux CPU this runs on has caches; sysfs or sysconf reports them.
  EXPECT_GE(runtime::largest_cache_bytes(), 16u << 10);
}

} // namespace
} // namespace satemu::gpu
