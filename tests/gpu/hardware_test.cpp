// Hardware profiles and the roofline cost model: durations worked out by
// hand, and a fit that recovers known device figures from samples.
#include "gpu/hardware.hpp"

#include <cmath>

#include <gtest/gtest.h>

#include <limits>

namespace satemu::gpu {
namespace {

using runtime::microseconds;
using runtime::milliseconds;
using runtime::nanoseconds;
using runtime::seconds;

hardware_profile round_device() {
  hardware_profile hw;
  hw.name = "round";
  hw.peak_fp32_flops = 1e12;
  hw.peak_fp16_flops = 4e12;
  hw.memory_bytes_per_s = 1e11;
  hw.launch_overhead = microseconds(1);
  return hw;
}

TEST(Hardware, BuiltinsAreValidAndCiteSources) {
  for (const auto& name : hardware_names()) {
    if (name == "sat-payload")
      continue;
    auto hw = find_hardware(name);
    ASSERT_TRUE(hw.ok()) << hw.status();
    EXPECT_TRUE(validate_hardware(*hw).ok());
    EXPECT_FALSE(hw->source.empty());
    EXPECT_GE(hw->peak_fp16_flops, hw->peak_fp32_flops) << name;
  }
  for (const char* n : {"jetson-nano", "jetson-orin-nano", "rpi-zero-2w", "sat-payload", "h100"})
    EXPECT_NE(std::find(hardware_names().begin(), hardware_names().end(), n),
              hardware_names().end())
        << n;
  const auto h100 = find_hardware("h100");
  ASSERT_TRUE(h100.ok());
  EXPECT_DOUBLE_EQ(h100->memory_bytes_per_s, 3.35e12);
  EXPECT_DOUBLE_EQ(h100->peak_fp16_flops, 989.4e12);
  const auto nano = find_hardware("jetson-nano");
  ASSERT_TRUE(nano.ok());
  EXPECT_NEAR(nano->peak_fp16_flops, 472e9, 1e9);
  EXPECT_DOUBLE_EQ(nano->memory_bytes_per_s, 25.6e9);
}

TEST(Hardware, UnknownNameListsKnownNames) {
  auto hw = find_hardware("cray-1");
  ASSERT_FALSE(hw.ok());
  EXPECT_EQ(hw.status().code(), absl::StatusCode::kNotFound);
  const std::string msg(hw.status().message());
  EXPECT_NE(msg.find("unknown hardware 'cray-1'"), std::string::npos) << msg;
  for (const auto& name : hardware_names())
    EXPECT_NE(msg.find(name), std::string::npos) << msg;
}

TEST(Hardware, SatPayloadIsConfiguredByTheUser) {
  auto bare = find_hardware("sat-payload");
  ASSERT_FALSE(bare.ok());
  const std::string msg(bare.status().message());
  for (const char* field : {"peak_fp32_flops", "memory_bytes_per_s", "launch_overhead"})
    EXPECT_NE(msg.find(field), std::string::npos) << msg;

  hardware_overrides o;
  o.peak_fp32_flops = 50e9;
  o.memory_bytes_per_s = 8e9;
  o.launch_overhead = microseconds(30);
  auto hw = find_hardware("sat-payload", o);
  ASSERT_TRUE(hw.ok()) << hw.status();
  EXPECT_EQ(hw->peak_fp16_flops, 50e9);
  EXPECT_EQ(hw->launch_overhead, microseconds(30));
  o.peak_fp16_flops = 100e9;
  EXPECT_EQ(find_hardware("sat-payload", o)->peak_fp16_flops, 100e9);
  // Either peak alone serves both.
  o.peak_fp32_flops.reset();
  hw = find_hardware("sat-payload", o);
  ASSERT_TRUE(hw.ok()) << hw.status();
  EXPECT_EQ(hw->peak_fp32_flops, 100e9);

  o.memory_bytes_per_s = -1;
  auto bad = find_hardware("sat-payload", o);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("memory_bytes_per_s"), std::string::npos);
}

TEST(Hardware, OverridesReplaceBuiltinFigures) {
  hardware_overrides o;
  o.launch_overhead = nanoseconds(500);
  auto hw = find_hardware("jetson-orin-nano", o);
  ASSERT_TRUE(hw.ok());
  EXPECT_EQ(hw->launch_overhead, nanoseconds(500));
  EXPECT_DOUBLE_EQ(hw->memory_bytes_per_s, 68e9);
  o.launch_overhead = nanoseconds(-1);
  EXPECT_FALSE(find_hardware("jetson-orin-nano", o).ok());
}

TEST(Hardware, DurationsByHand) {
  const auto hw = round_device();
  // Compute-bound: 1e9 FLOPs at 1e12 = 1 ms; 1e6 bytes at 1e11 = 10 us.
  EXPECT_EQ(estimate_duration(hw, 1e9, 1e6), microseconds(1000) + microseconds(1));
  // The same work in fp16 runs at 4e12: 250 us.
  EXPECT_EQ(estimate_duration(hw, 1e9, 1e6, compute_precision::fp16), microseconds(251));
  EXPECT_EQ(estimate_duration(hw, 1e9, 1e6, compute_precision::bf16), microseconds(251));
  // Memory-bound: 1e9 bytes at 1e11 = 10 ms; 1e6 FLOPs = 1 us.
  EXPECT_EQ(estimate_duration(hw, 1e6, 1e9), microseconds(10'000) + microseconds(1));
  // Nothing to do still costs the launch.
  EXPECT_EQ(estimate_duration(hw, 0, 0), microseconds(1));
  // Rounded to the nearest nanosecond: 1234.4 ns and 1234.6 ns of bytes.
  EXPECT_EQ(estimate_duration(hw, 0, 123'440), nanoseconds(1234 + 1000));
  EXPECT_EQ(estimate_duration(hw, 0, 123'460), nanoseconds(1235 + 1000));

  // A Llama-3.2-1B decode step's MLP on a Raspberry Pi Zero 2W in fp32:
  // 3 x 2048 x 8192 weights (201 MB) at 3.6 GB/s = 55.9 ms, while its
  // 2 x 50.3M FLOPs at 32 GFLOP/s take 3.1 ms: memory-bound.
  const auto pi = find_hardware("rpi-zero-2w");
  ASSERT_TRUE(pi.ok());
  const double weights = 3.0 * 2048 * 8192;
  const double expect_ns = weights * 4 / 3.6e9 * 1e9;
  EXPECT_EQ(estimate_duration(*pi, 2 * weights, 4 * weights).ns(),
            std::llround(expect_ns) + 5'000);
}

// Figures far outside any device are refused, naming the field, and the
// longest estimate is max_estimate (plus the launch), however much work.
TEST(Hardware, FiguresOutsideAnyDeviceAreRefusedAndEstimatesAreBounded) {
  hardware_overrides o;
  o.peak_fp16_flops = 1e-3;
  o.memory_bytes_per_s = 1e9;
  o.launch_overhead = microseconds(10);
  auto slow = find_hardware("sat-payload", o);
  ASSERT_FALSE(slow.ok());
  EXPECT_NE(slow.status().message().find("peak_fp32_flops (and peak_fp16_flops) must be at "
                                         "least 1e6"),
            std::string::npos)
      << slow.status();
  o.peak_fp16_flops = 1e6;
  o.memory_bytes_per_s = 999'999;
  auto narrow = find_hardware("sat-payload", o);
  ASSERT_FALSE(narrow.ok());
  EXPECT_NE(narrow.status().message().find("memory_bytes_per_s"), std::string::npos);
  o.memory_bytes_per_s = 1e6;
  o.launch_overhead = milliseconds(1001);
  auto late = find_hardware("sat-payload", o);
  ASSERT_FALSE(late.ok());
  EXPECT_NE(late.status().message().find("launch_overhead must be at most 1s"),
            std::string::npos)
      << late.status();
  o.launch_overhead = seconds(1);
  auto hw = find_hardware("sat-payload", o);
  ASSERT_TRUE(hw.ok()) << hw.status(); // the slowest device allowed
  EXPECT_EQ(estimate_duration(*hw, 1e6, 0), seconds(2));
  // 1e30 FLOPs at 1e6 FLOP/s would be 3e16 years.
  EXPECT_EQ(estimate_duration(*hw, 1e30, 1e30), max_estimate + seconds(1));
  // A whole model of such layers stays far from the time type's limit.
  EXPECT_LT(max_estimate.ns(), std::numeric_limits<std::int64_t>::max() / 64);
}

std::vector<roofline_sample> samples_from(const hardware_profile& hw, double noise) {
  // GEMMs of growing size (compute-bound) and element-wise passes (memory-
  // bound); the noise is a fixed, deterministic pattern of +-noise.
  std::vector<roofline_sample> out;
  int k = 0;
  auto add = [&](double flops, double bytes) {
    const double t = std::max(flops / hw.peak_fp32_flops, bytes / hw.memory_bytes_per_s) +
                     hw.launch_overhead.seconds();
    const double wobble = noise * ((k++ % 3) - 1.0); // -noise, 0, +noise
    out.push_back({flops, bytes, t * (1 + wobble)});
  };
  for (double n : {256.0, 512.0, 1024.0, 2048.0, 4096.0})
    add(2 * n * n * n, 3 * n * n * 4);
  for (double n : {1e5, 1e6, 1e7, 1e8})
    add(n, 8 * n);
  add(0, 0);
  return out;
}

TEST(Hardware, FitRecoversKnownFiguresExactly) {
  hardware_profile hw;
  hw.name = "truth";
  hw.peak_fp32_flops = 2.5e12;
  hw.peak_fp16_flops = 2.5e12;
  hw.memory_bytes_per_s = 5e10;
  hw.launch_overhead = microseconds(7);
  auto fit = fit_roofline(samples_from(hw, 0));
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->peak_flops, 2.5e12, 2.5e12 * 1e-6);
  EXPECT_NEAR(fit->memory_bytes_per_s, 5e10, 5e10 * 1e-6);
  EXPECT_NEAR(fit->overhead_seconds, 7e-6, 1e-11);
  EXPECT_EQ(fit->launch_overhead, microseconds(7));
  EXPECT_LT(fit->rms_relative_residual, 1e-9);
  // 256^3 GEMM: 33.5 MFLOPs (13.4 us) vs 786 KB (15.7 us): memory-bound.
  EXPECT_EQ(fit->compute_bound, 4u);
  EXPECT_EQ(fit->memory_bound, 6u);
}

TEST(Hardware, FitToleratesNoise) {
  hardware_profile hw;
  hw.name = "truth";
  hw.peak_fp32_flops = 1.28e12;
  hw.peak_fp16_flops = 1.28e12;
  hw.memory_bytes_per_s = 68e9;
  hw.launch_overhead = microseconds(10);
  auto fit = fit_roofline(samples_from(hw, 0.02));
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->peak_flops, 1.28e12, 0.05 * 1.28e12);
  EXPECT_NEAR(fit->memory_bytes_per_s, 68e9, 0.05 * 68e9);
  EXPECT_NEAR(fit->overhead_seconds, 10e-6, 1e-6);
  EXPECT_GT(fit->rms_relative_residual, 0.001);
  EXPECT_LT(fit->rms_relative_residual, 0.03);

  // Calibrating the Orin profile with it: fp16 keeps its datasheet ratio.
  auto orin = find_hardware("jetson-orin-nano");
  ASSERT_TRUE(orin.ok());
  const auto cal = apply_fit(*orin, *fit, compute_precision::fp32);
  EXPECT_EQ(cal.peak_fp32_flops, fit->peak_flops);
  EXPECT_NEAR(cal.peak_fp16_flops / cal.peak_fp32_flops,
              orin->peak_fp16_flops / orin->peak_fp32_flops, 1e-9);
  EXPECT_EQ(cal.memory_bytes_per_s, fit->memory_bytes_per_s);
  EXPECT_EQ(cal.launch_overhead, fit->launch_overhead);
}

// Small GEMMs slower than the model has them (packing, edges) pull a least-
// squares peak below what the large ones reach; the roof stays above every
// rate reached.
TEST(Hardware, FitIsACeilingOverTheRatesReached) {
  hardware_profile hw;
  hw.name = "truth";
  hw.peak_fp32_flops = 2e11;
  hw.memory_bytes_per_s = 5e10;
  hw.launch_overhead = nanoseconds(150);
  auto samples = samples_from(hw, 0);
  for (double n : {16.0, 32.0, 64.0, 128.0}) {
    const double flops = 2 * n * n * n;
    // Half the peak, and a little slower still the smaller they are.
    samples.push_back({flops, 12 * n * n, flops / 1e11 * (1 + 8 / n) + 150e-9});
  }
  auto fit = fit_roofline(samples);
  ASSERT_TRUE(fit.ok()) << fit.status();
  double best_flops = 0, best_bytes = 0;
  for (const auto& s : samples) {
    const bool compute = s.flops / fit->peak_flops > s.bytes / fit->memory_bytes_per_s;
    (compute ? best_flops : best_bytes) =
      std::max(compute ? best_flops : best_bytes, (compute ? s.flops : s.bytes) / s.seconds);
  }
  EXPECT_GE(fit->peak_flops, best_flops * (1 - 1e-12));
  EXPECT_GE(fit->memory_bytes_per_s, best_bytes * (1 - 1e-12));
  // The largest GEMM (4096) runs within a hair of the true peak.
  EXPECT_NEAR(fit->peak_flops, 2e11, 2e11 * 1e-3);
}

TEST(Hardware, FitRejectsUnusableSamples) {
  auto few = fit_roofline({{1, 1, 1}, {2, 2, 2}});
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.status().message().find("at least 4 samples"), std::string::npos);

  auto bad = fit_roofline({{1, 1, 1}, {2, 2, 2}, {3, 3, -1}, {4, 4, 4}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sample 2"), std::string::npos) << bad.status();

  // Every sample at the same intensity: bandwidth and peak cannot be told apart.
  std::vector<roofline_sample> flat;
  for (double n : {1e6, 2e6, 4e6, 8e6, 16e6})
    flat.push_back({n, n, 1e-6 + n * 1e-12});
  auto f = fit_roofline(flat);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("compute-bound"), std::string::npos) << f.status();
}

} // namespace
} // namespace satemu::gpu
