// The backend factory (names, "auto", errors) and launch accounting.
#include "gpu/backend.hpp"

#include <set>

#include <gtest/gtest.h>

#include "gpu/device.hpp"

namespace satemu::gpu {
namespace {

TEST(MakeBackend, CpuByName) {
  auto b = make_backend("cpu");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), "cpu");
  EXPECT_EQ((*b)->launches().total(), 0u);
}

TEST(MakeBackend, AutoResolvesWithAReason) {
  const backend_choice c = resolve_auto_backend();
  const device_info& dev = probe_devices();
  const std::string want = dev.cuda_built && dev.cuda_devices > 0 ? "cuda" : "cpu";
  EXPECT_EQ(c.name, want);
  EXPECT_FALSE(c.reason.empty());
  EXPECT_EQ(c.line().rfind("compute backend: " + want + " (", 0), 0u) << c.line();
  if (!dev.cuda_built) {
    EXPECT_EQ(c.reason, "built without CUDA");
  }
  if (want == "cuda") {
    EXPECT_NE(c.reason.find(dev.detail), std::string::npos) << c.reason;
  }
  auto b = make_backend("auto");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), c.name);
}

TEST(MakeBackend, CudaAnswersOnlyWithADeviceAndUnknownNamesListTheAccepted) {
  const device_info& dev = probe_devices();
  auto cuda = make_backend("cuda");
  if (dev.cuda_built && dev.cuda_devices > 0) {
    ASSERT_TRUE(cuda.ok()) << cuda.status();
    EXPECT_EQ((*cuda)->name(), "cuda");
  } else {
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable);
    // The message says which of the two reasons applies.
    const std::string why = dev.cuda_built ? "no CUDA device" : "no CUDA backend";
    EXPECT_NE(cuda.status().message().find(why), std::string::npos) << cuda.status();
    EXPECT_NE(cuda.status().message().find("'cuda'"), std::string::npos) << cuda.status();
  }

  for (const char* name : {"tpu", "", "CPU"}) {
    auto b = make_backend(name);
    EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_NE(b.status().message().find("auto, cpu, cuda"), std::string::npos)
        << b.status().message();
  }
}

TEST(LaunchCounts, CountPerKindAndReset) {
  auto b = make_backend("cpu");
  ASSERT_TRUE(b.ok());
  backend& be = **b;
  tensor y({2, 3});
  const tensor x({2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_TRUE(be.add(y, x).ok());
  ASSERT_TRUE(be.add(y, x).ok());
  ASSERT_TRUE(be.rmsnorm(x, tensor({3}), 1e-6f).ok());
  EXPECT_EQ(be.launches()[op::add], 2u);
  EXPECT_EQ(be.launches()[op::rmsnorm], 1u);
  EXPECT_EQ(be.launches().total(), 3u);
  EXPECT_EQ(be.launches().to_string(), "rmsnorm=1 add=2");
  be.reset_launch_counts();
  EXPECT_EQ(be.launches().total(), 0u);
  EXPECT_EQ(be.launches().to_string(), "");
  // Every kind has a distinct name.
  std::set<std::string_view> names;
  for (int i = 0; i < op_count; ++i)
    names.insert(op_name(static_cast<op>(i)));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(op_count));
}

} // namespace
} // namespace satemu::gpu
