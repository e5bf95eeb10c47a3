// The fp32 host tensor: shapes, the matrix view every kernel sees, reshape,
// bitwise comparison, and aborts on programmer errors.
#include "gpu/tensor.hpp"

#include <cmath>
#include <vector>

#include <gtest/gtest.h>

namespace satemu::gpu {
namespace {

TEST(Tensor, ShapeRowsAndCols) {
  const tensor t({2, 3, 4});
  EXPECT_EQ(t.rank(), 3);
  EXPECT_EQ(t.numel(), 24);
  EXPECT_EQ(t.rows(), 6);
  EXPECT_EQ(t.cols(), 4);
  EXPECT_EQ(t.dim(-1), 4);
  EXPECT_EQ(t.dim(0), 2);
  EXPECT_EQ(t.shape_string(), "[2, 3, 4]");
  for (float v : t.values())
    EXPECT_EQ(v, 0.0f);

  const tensor v({5});
  EXPECT_EQ(v.rows(), 1);
  EXPECT_EQ(v.cols(), 5);
  const tensor scalar(tensor::shape_type{}, {7.0f});
  EXPECT_EQ(scalar.numel(), 1);
  EXPECT_EQ(scalar.rows(), 1);
  EXPECT_EQ(scalar.cols(), 1);
  const tensor empty;
  EXPECT_EQ(empty.numel(), 0);
}

TEST(Tensor, MatrixViewsAndReshape) {
  tensor t({2, 3}, {1, 2, 3, 4, 5, 6});
  const const_matrix_view c = t;
  EXPECT_EQ(c.rows, 2);
  EXPECT_EQ(c.cols, 3);
  EXPECT_EQ(c.row(1)[2], 6.0f);
  matrix_view m = t;
  m.row(0)[1] = 20.0f;
  EXPECT_EQ(t[1], 20.0f);
  EXPECT_EQ(to_string(c), "[2 x 3]");
  t.reshape({3, 2});
  EXPECT_EQ(t.rows(), 3);
  EXPECT_EQ(t.matrix().row(2)[0], 5.0f);
}

TEST(Tensor, BitwiseEqual) {
  const tensor a({2}, {1.0f, NAN});
  tensor b = a;
  EXPECT_TRUE(a.bitwise_equal(b));
  b[0] = std::nextafter(1.0f, 2.0f);
  EXPECT_FALSE(a.bitwise_equal(b));
  const tensor zero({1}, {0.0f});
  const tensor neg_zero({1}, {-0.0f});
  EXPECT_FALSE(zero.bitwise_equal(neg_zero));
  EXPECT_FALSE(tensor({2, 1}).bitwise_equal(tensor({1, 2})));
}

TEST(TensorDeathTest, ProgrammerErrorsAbortWithContext) {
  EXPECT_DEATH(tensor({2, 2}, {1.0f}), "shape \\[2, 2\\] given 1 values");
  EXPECT_DEATH(tensor({-1}), "negative dimension");
  EXPECT_DEATH(
      {
        tensor t({2, 3});
        t.reshape({4, 2});
      },
      "cannot reshape");
}

} // namespace
} // namespace satemu::gpu
