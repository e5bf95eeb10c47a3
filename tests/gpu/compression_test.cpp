// Activation compression on the cpu backend: per-token int8/int4 quantisation
// (error bounds, packing layout, sizes, corrupt input), top-k sparsification
// (exactly the k largest, ties, densify), and fp16/bf16 cast round trips.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "gpu/cpu_backend.hpp"
#include "gpu/half.hpp"
#include "reference.hpp"

namespace satemu::gpu {
namespace {

// Rows with different magnitudes, an all-zero row and a single nonzero.
tensor activation_rows(std::int64_t rows, std::int64_t cols, std::uint64_t seed) {
  tensor x = ref::random_tensor({rows, cols}, seed);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c)
      x[r * cols + c] *= std::pow(10.0f, static_cast<float>(r % 5) - 2.0f);
  if (rows > 2)
    for (std::int64_t c = 0; c < cols; ++c)
      x[2 * cols + c] = 0.0f;
  if (rows > 3)
    for (std::int64_t c = 0; c < cols; ++c)
      x[3 * cols + c] = c == cols / 2 ? -5.5f : 0.0f;
  return x;
}

// The code of element (r, j), decoded here independently of the backend.
int code_at(const quantized_activations& q, std::int64_t r, std::int64_t j) {
  if (q.bits == 8)
    return static_cast<std::int8_t>(q.codes[static_cast<std::size_t>(r * q.cols + j)]);
  const std::uint8_t byte = q.codes[static_cast<std::size_t>(r * ((q.cols + 1) / 2) + j / 2)];
  const int nib = j % 2 == 0 ? byte & 0x0f : byte >> 4;
  return nib >= 8 ? nib - 16 : nib;
}

TEST(Quantize, ErrorWithinHalfAScaleForInt8AndInt4) {
  cpu_backend be;
  for (const int bits : {8, 4})
    for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {5, 3},
                                     {6, 17}, {9, 64}}) {
      const tensor x = activation_rows(rows, cols, 10 * bits + cols);
      auto q = be.quantize(x, bits);
      ASSERT_TRUE(q.ok()) << q.status();
      const int qmax = bits == 8 ? 127 : 7;
      EXPECT_EQ(q->size_bytes(), rows * (bits == 8 ? cols : (cols + 1) / 2) + 4 * rows);
      auto back = be.dequantize(*q);
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_EQ(back->shape(), (tensor::shape_type{rows, cols}));
      for (std::int64_t r = 0; r < rows; ++r) {
        float amax = 0.0f;
        for (std::int64_t j = 0; j < cols; ++j)
          amax = std::max(amax, std::fabs(x[r * cols + j]));
        const float scale = q->scales[static_cast<std::size_t>(r)];
        // amax / qmax rounded toward zero: at most the quotient, and the
        // next float up is above it.
        const double quotient = static_cast<double>(amax) / qmax;
        EXPECT_LE(scale, quotient) << "row " << r;
        if (amax > 0.0f) {
          EXPECT_GT(std::nextafter(scale, INFINITY), quotient) << "row " << r;
        }
        bool hit_max = amax == 0.0f;
        for (std::int64_t j = 0; j < cols; ++j) {
          const int c = code_at(*q, r, j);
          EXPECT_LE(std::abs(c), qmax);
          hit_max |= std::abs(c) == qmax && std::fabs(x[r * cols + j]) == amax;
          // |x - q*scale| <= scale/2, up to fp32 rounding of x/scale and q*scale.
          EXPECT_LE(std::fabs(x[r * cols + j] - (*back)[r * cols + j]),
                    0.5 * scale * (1.0 + 1e-5) + 1e-30)
              << bits << " bits, row " << r << ", col " << j;
          EXPECT_EQ((*back)[r * cols + j], static_cast<float>(c) * scale);
        }
        EXPECT_TRUE(hit_max) << "the largest |x| of row " << r << " maps to +-" << qmax;
      }
    }
  EXPECT_EQ(be.launches()[op::quantize], 8u);
  EXPECT_EQ(be.launches()[op::dequantize], 8u);
}

// Rows at the ends of fp32's range: FLT_MAX restores finite, no restored
// value exceeds its row's max|x|, and a row too small for a nonzero scale
// restores as zeros.
TEST(Quantize, RowsAtTheEndsOfTheRangeRestoreWithinTheirMaximum) {
  cpu_backend be;
  constexpr float big = std::numeric_limits<float>::max();
  constexpr float tiny = std::numeric_limits<float>::denorm_min();
  for (const int bits : {8, 4}) {
    const int qmax = bits == 8 ? 127 : 7;
    const tensor x({4, 4}, {big, -big, 1.0f, big / 3.0f,        //
                            -big / 2.0f, 1e30f, -3e37f, 0.0f,   //
                            (qmax - 1) * tiny, -tiny, 0.0f, tiny, // scale below the least subnormal
                            qmax * tiny, -tiny, 2 * tiny, 0.0f}); // the least subnormal scale
    auto q = be.quantize(x, bits);
    ASSERT_TRUE(q.ok()) << q.status();
    auto back = be.dequantize(*q);
    ASSERT_TRUE(back.ok()) << back.status();
    for (std::int64_t r = 0; r < 4; ++r) {
      float amax = 0.0f;
      for (std::int64_t j = 0; j < 4; ++j)
        amax = std::max(amax, std::fabs(x[r * 4 + j]));
      const float scale = q->scales[static_cast<std::size_t>(r)];
      for (std::int64_t j = 0; j < 4; ++j) {
        const float v = (*back)[r * 4 + j];
        EXPECT_TRUE(std::isfinite(v)) << bits << " bits, row " << r << ", col " << j;
        EXPECT_LE(std::fabs(v), amax) << bits << " bits, row " << r << ", col " << j;
        if (std::fabs(x[r * 4 + j]) == amax) {
          EXPECT_EQ(std::abs(code_at(*q, r, j)), scale == 0.0f ? 0 : qmax);
        }
      }
    }
    EXPECT_EQ((*back)[0], static_cast<float>(qmax) * q->scales[0]);
    EXPECT_GT((*back)[0], big * (1.0f - 1e-6f)) << bits << " bits";
    EXPECT_EQ(q->scales[2], 0.0f) << bits << " bits";
    for (std::int64_t j = 0; j < 4; ++j)
      EXPECT_EQ((*back)[2 * 4 + j], 0.0f) << bits << " bits, col " << j;
    EXPECT_EQ(q->scales[3], tiny) << bits << " bits";
    EXPECT_EQ((*back)[3 * 4 + 0], qmax * tiny) << bits << " bits";
    EXPECT_EQ((*back)[3 * 4 + 2], 2 * tiny) << bits << " bits";
  }
}

TEST(Quantize, Int4PackingRoundTrip) {
  // Pack known codes by hand (low nibble first, odd rows padded), dequantize.
  cpu_backend be;
  quantized_activations q;
  q.bits = 4;
  q.rows = 2;
  q.cols = 5;
  q.scales = {0.5f, 2.0f};
  const std::vector<int> codes = {-7, -1, 0, 3, 7, /**/ 6, -7, 1, -3, -2};
  for (std::int64_t r = 0; r < 2; ++r)
    for (std::int64_t b = 0; b < 3; ++b) {
      const int lo = codes[static_cast<std::size_t>(r * 5 + 2 * b)];
      const int hi = 2 * b + 1 < 5 ? codes[static_cast<std::size_t>(r * 5 + 2 * b + 1)] : 0;
      q.codes.push_back(static_cast<std::uint8_t>((lo & 0xf) | ((hi & 0xf) << 4)));
    }
  EXPECT_EQ(q.size_bytes(), 2 * 3 + 2 * 4);
  auto x = be.dequantize(q);
  ASSERT_TRUE(x.ok()) << x.status();
  for (std::int64_t i = 0; i < 10; ++i)
    EXPECT_EQ((*x)[i], static_cast<float>(codes[static_cast<std::size_t>(i)]) * q.scales[i / 5]);
  // Quantising the dequantised values gives back the same bytes.
  auto again = be.quantize(*x, 4);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->codes, q.codes);
  EXPECT_EQ(again->scales, q.scales);
}

TEST(Quantize, TiesRoundHalfToEven) {
  // max|x| = 127 and 7 make the scales exactly 1: the codes are x rounded,
  // ties to the even neighbour, clamped to +-qmax.
  cpu_backend be;
  tensor x8({1, 8}, {2.5f, -2.5f, 3.5f, 0.5f, -1.5f, 126.5f, -127.0f, 0.49999997f});
  auto q8 = be.quantize(x8, 8);
  ASSERT_TRUE(q8.ok()) << q8.status();
  EXPECT_EQ(q8->scales[0], 1.0f);
  const std::vector<int> want8 = {2, -2, 4, 0, -2, 126, -127, 0};
  for (std::int64_t j = 0; j < 8; ++j)
    EXPECT_EQ(code_at(*q8, 0, j), want8[static_cast<std::size_t>(j)]) << j;
  tensor x4({1, 5}, {6.5f, -5.5f, 1.5f, -0.5f, 7.0f});
  auto q4 = be.quantize(x4, 4);
  ASSERT_TRUE(q4.ok()) << q4.status();
  EXPECT_EQ(q4->scales[0], 1.0f);
  const std::vector<int> want4 = {6, -6, 2, 0, 7};
  for (std::int64_t j = 0; j < 5; ++j)
    EXPECT_EQ(code_at(*q4, 0, j), want4[static_cast<std::size_t>(j)]) << j;
}

TEST(Quantize, RejectsBadInputAndCorruptMessages) {
  cpu_backend be;
  EXPECT_FALSE(be.quantize(tensor({2, 2}), 3).ok());
  tensor x({1, 3}, {1.0f, std::numeric_limits<float>::infinity(), 0.0f});
  EXPECT_FALSE(be.quantize(x, 8).ok());
  x[1] = NAN;
  EXPECT_FALSE(be.quantize(x, 4).ok());
  // A non-finite value after rows already quantised is named, nothing returned.
  auto late = ref::random_tensor({4, 6}, 2);
  late[3 * 6 + 4] = -std::numeric_limits<float>::infinity();
  for (int bits : {8, 4}) {
    auto st = be.quantize(late, bits).status();
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("row 3, column 4"), std::string::npos) << st;
  }

  auto q8 = be.quantize(ref::random_tensor({2, 3}, 1), 8);
  ASSERT_TRUE(q8.ok());
  quantized_activations bad = *q8;
  bad.codes.pop_back();
  EXPECT_FALSE(be.dequantize(bad).ok());
  bad = *q8;
  bad.codes[1] = 0x80; // -128 is outside the symmetric range
  EXPECT_FALSE(be.dequantize(bad).ok());
  bad = *q8;
  bad.scales[0] = -1.0f;
  EXPECT_FALSE(be.dequantize(bad).ok());
  bad = *q8;
  bad.bits = 2;
  EXPECT_FALSE(be.dequantize(bad).ok());

  auto q4 = be.quantize(ref::random_tensor({2, 3}, 2), 4);
  ASSERT_TRUE(q4.ok());
  bad = *q4;
  bad.codes[0] = static_cast<std::uint8_t>((bad.codes[0] & 0xf0) | 0x08); // -8
  EXPECT_FALSE(be.dequantize(bad).ok());
  bad = *q4;
  bad.codes[1] |= 0x10; // the pad nibble of an odd row must stay zero
  EXPECT_FALSE(be.dequantize(bad).ok());
}

// Reference top-k set: sort columns by (|x| desc, column asc).
std::set<std::int32_t> top_columns(std::span<const float> row, std::int64_t k) {
  std::vector<std::int32_t> idx(row.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](std::int32_t a, std::int32_t b) {
    return std::fabs(row[static_cast<std::size_t>(a)]) > std::fabs(row[static_cast<std::size_t>(b)]);
  });
  return {idx.begin(), idx.begin() + k};
}

TEST(Sparsify, KeepsExactlyTheKLargestAndDensifies) {
  cpu_backend be;
  for (const auto& [rows, cols] : {std::pair<std::int64_t, std::int64_t>{1, 1}, {3, 17},
                                   {17, 64}}) {
    const tensor x = ref::random_tensor({rows, cols}, 5 + cols);
    for (const std::int64_t k : {std::int64_t{0}, std::int64_t{1}, cols / 3, cols}) {
      auto s = be.sparsify_topk(x, k);
      ASSERT_TRUE(s.ok()) << s.status();
      EXPECT_EQ(s->size_bytes(), rows * k * 8);
      auto d = be.densify(*s);
      ASSERT_TRUE(d.ok()) << d.status();
      for (std::int64_t r = 0; r < rows; ++r) {
        const std::span<const float> row(x.data() + r * cols, static_cast<std::size_t>(cols));
        const std::set<std::int32_t> want = top_columns(row, k);
        std::set<std::int32_t> got;
        for (std::int64_t j = 0; j < k; ++j) {
          const std::int32_t c = s->indices[static_cast<std::size_t>(r * k + j)];
          if (j > 0) {
            EXPECT_LT(s->indices[static_cast<std::size_t>(r * k + j - 1)], c) << "ascending";
          }
          EXPECT_EQ(s->values[static_cast<std::size_t>(r * k + j)], row[static_cast<std::size_t>(c)]);
          got.insert(c);
        }
        EXPECT_EQ(got, want) << "row " << r << ", k " << k;
        for (std::int64_t c = 0; c < cols; ++c)
          EXPECT_EQ((*d)[r * cols + c],
                    want.count(static_cast<std::int32_t>(c)) ? row[static_cast<std::size_t>(c)] : 0.0f);
      }
    }
  }
}

TEST(Sparsify, TiesGoToTheLowerColumnAndBadInputFails) {
  cpu_backend be;
  const tensor x({2, 5}, {1.0f, -1.0f, 1.0f, 0.5f, -1.0f,  //
                          0.0f, -0.0f, 2.0f, -2.0f, 0.0f});
  auto s = be.sparsify_topk(x, 2);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->indices, (std::vector<std::int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(s->values, (std::vector<float>{1.0f, -1.0f, 2.0f, -2.0f}));
  auto s3 = be.sparsify_topk(x, 3);
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(s3->indices, (std::vector<std::int32_t>{0, 1, 2, 0, 2, 3}));

  EXPECT_FALSE(be.sparsify_topk(x, 6).ok());
  EXPECT_FALSE(be.sparsify_topk(x, -1).ok());
  tensor nan_x = x;
  nan_x[3] = NAN;
  EXPECT_FALSE(be.sparsify_topk(nan_x, 2).ok());
  sparse_activations bad = *s;
  bad.indices[1] = 0; // column 0 twice in row 0
  EXPECT_FALSE(be.densify(bad).ok());
  bad = *s;
  bad.indices[3] = 5;
  EXPECT_FALSE(be.densify(bad).ok());
  bad = *s;
  bad.values.pop_back();
  EXPECT_FALSE(be.densify(bad).ok());
}

TEST(CastHalf, RoundTripsThroughFp16AndBf16) {
  cpu_backend be;
  tensor x = ref::random_tensor({3, 17}, 9, 100.0);
  x[0] = 0.0f;
  x[1] = -0.0f;
  x[2] = std::numeric_limits<float>::infinity();
  x[3] = 1e5f;   // overflows fp16, fine in bf16
  x[4] = 1e-6f;  // fp16 subnormal
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[6] = 0x1p-25f;     // fp16 subnormal tie between 0 and 1: even, 0
  x[7] = 3 * 0x1p-25f; // tie between 1 and 2 (x 2^-24): even, 2
  x[8] = 1.0f + 0x1p-8f; // bf16 tie between 1 and 1 + 2^-7: even, 1
  for (const half_type t : {half_type::fp16, half_type::bf16}) {
    auto h = be.cast_half(x, t);
    ASSERT_TRUE(h.ok());
    EXPECT_EQ(h->size_bytes(), 2 * 51);
    auto back = be.uncast_half(*h);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(back->shape(), x.shape());
    for (std::int64_t i = 0; i < 51; ++i) {
      const float want = t == half_type::fp16 ? fp16_bits_to_float(float_to_fp16_bits(x[i]))
                                              : bf16_bits_to_float(float_to_bf16_bits(x[i]));
      if (std::isnan(want)) {
        EXPECT_TRUE(std::isnan((*back)[i]));
        continue;
      }
      EXPECT_EQ(std::bit_cast<std::uint32_t>((*back)[i]), std::bit_cast<std::uint32_t>(want));
      if (std::isfinite(x[i]) && std::fabs(x[i]) < 6e4f && std::fabs(x[i]) > 1e-4f) {
        EXPECT_LE(std::fabs((*back)[i] - x[i]),
                  std::fabs(x[i]) * (t == half_type::fp16 ? 0x1p-11 : 0x1p-8));
      }
    }
    EXPECT_TRUE(std::signbit((*back)[1]));
    EXPECT_EQ((*back)[6], t == half_type::fp16 ? 0.0f : 0x1p-25f);
    EXPECT_EQ((*back)[7], t == half_type::fp16 ? 0x1p-23f : 3 * 0x1p-25f);
    EXPECT_EQ((*back)[8], t == half_type::fp16 ? 1.0f + 0x1p-8f : 1.0f);
    EXPECT_EQ((*back)[3], t == half_type::fp16 ? std::numeric_limits<float>::infinity()
                                                : 99840.0f);
  }
  half_activations bad{half_type::bf16, 2, 2, {1, 2, 3}};
  EXPECT_FALSE(be.uncast_half(bad).ok());
  EXPECT_EQ(be.launches().to_string(), "cast_half=2 uncast_half=2");
}

} // namespace
} // namespace satemu::gpu
