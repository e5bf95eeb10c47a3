// The main of the test programs that load OpenBLAS (gpu, actors, cli): as
// GoogleTest's own, after starting with one OpenBLAS thread as the satemu
// executable does (cpu_backend.hpp, start_with_one_openblas_thread).
#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"

int main(int argc, char** argv) {
  satemu::gpu::start_with_one_openblas_thread(argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
