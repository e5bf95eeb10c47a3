// The main of the test programs that load OpenBLAS (gpu, actors, cli): as
// GoogleTest's own, after starting with the OpenBLAS settings the satemu
// executable starts with (cpu_backend.hpp, start_with_openblas_settings).
#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"

int main(int argc, char** argv) {
  satemu::gpu::start_with_openblas_settings(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
