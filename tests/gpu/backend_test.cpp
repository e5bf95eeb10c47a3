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
  // No CUDA backend is compiled in yet, so "auto" is cpu even with a GPU.
  EXPECT_EQ(c.name, "cpu");
  EXPECT_FALSE(c.reason.empty());
  EXPECT_EQ(c.line().rfind("compute backend: cpu (", 0), 0u) << c.line();
  if (probe_devices().cuda_devices > 0) {
    EXPECT_NE(c.reason.find("no CUDA backend"), std::string::npos) << c.reason;
  }
  auto b = make_backend("auto");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->name(), c.name);
}

TEST(MakeBackend, CudaIsUnavailableAndUnknownNamesListTheAccepted) {
  auto cuda = make_backend("cuda");
  EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(cuda.status().message().find("cuda"), std::string::npos);

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
