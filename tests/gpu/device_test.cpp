// The device probe behind `backend: auto`: consistent answers, and a clear
// reason whenever no CUDA device answers.
#include "gpu/device.hpp"

#include <gtest/gtest.h>

#include "cuda_required.hpp"

namespace satemu::gpu {
namespace {

TEST(Device, AutoBackendFollowsTheProbe) {
  const auto& info = probe_devices();
  EXPECT_GE(info.cuda_devices, 0);
  EXPECT_FALSE(info.detail.empty());
  EXPECT_EQ(auto_backend(), info.cuda_devices > 0 ? "cuda" : "cpu");
  if (!info.cuda_built) {
    EXPECT_EQ(info.cuda_devices, 0);
  }
  // The probe runs once: later calls return the same object.
  EXPECT_EQ(&probe_devices(), &info);
}

TEST(Device, CudaDeviceAnswersWhenPresent) {
  const auto& info = probe_devices();
  if (info.cuda_devices == 0) {
    SATEMU_CUDA_UNAVAILABLE("no CUDA device answered: " << info.detail);
  }
  EXPECT_EQ(auto_backend(), "cuda");
  EXPECT_TRUE(info.cuda_built);
}

} // namespace
} // namespace satemu::gpu
