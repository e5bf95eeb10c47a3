// Host calibration (gpu/calibrate.hpp) on the cpu backend: the memory-bound
// samples stream from memory, not from a cache, and the fit sees both
// regimes.
#include "gpu/calibrate.hpp"

#include <algorithm>
#include <cstdint>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
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

TEST(Calibrate, LinuxReportsTheLargestCache) {
  // Every Linux CPU this runs on has caches; sysfs or sysconf reports them.
  EXPECT_GE(runtime::largest_cache_bytes(), 16u << 10);
}

} // namespace
} // namespace satemu::gpu
