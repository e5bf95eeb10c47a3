#include "gpu/tensor.hpp"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu {

namespace {

std::int64_t element_count(const tensor::shape_type& shape) {
  std::int64_t n = 1;
  for (std::int64_t d : shape) {
    SATEMU_GPU_CHECK(d >= 0, "negative dimension in shape [", absl::StrJoin(shape, ", "), "]");
    n *= d;
  }
  return n;
}

} // namespace

tensor::tensor(shape_type shape)
    : shape_(std::move(shape)), data_(static_cast<std::size_t>(element_count(shape_)), 0.0f) {}

tensor::tensor(shape_type shape, std::vector<float> data)
    : shape_(std::move(shape)), data_(std::move(data)) {
  SATEMU_GPU_CHECK(static_cast<std::int64_t>(data_.size()) == element_count(shape_),
                   "tensor of shape ", shape_string(), " given ", data_.size(), " values");
}

std::int64_t tensor::dim(int i) const {
  const int r = rank();
  const int j = i < 0 ? i + r : i;
  SATEMU_GPU_CHECK(j >= 0 && j < r, "dimension ", i, " of a tensor of shape ", shape_string());
  return shape_[static_cast<std::size_t>(j)];
}

std::int64_t tensor::rows() const {
  std::int64_t n = 1;
  for (std::size_t i = 0; i + 1 < shape_.size(); ++i)
    n *= shape_[i];
  return n;
}

void tensor::reshape(shape_type shape) {
  SATEMU_GPU_CHECK(element_count(shape) == numel(), "cannot reshape ", shape_string(), " to [",
                   absl::StrJoin(shape, ", "), "]");
  shape_ = std::move(shape);
}

std::string tensor::shape_string() const { return absl::StrCat("[", absl::StrJoin(shape_, ", "), "]"); }

bool tensor::bitwise_equal(const tensor& other) const {
  return shape_ == other.shape_ && data_.size() == other.data_.size() &&
         (data_.empty() ||
          std::memcmp(data_.data(), other.data_.data(), data_.size() * sizeof(float)) == 0);
}

std::string to_string(const const_matrix_view& m) {
  return absl::StrCat("[", m.rows, " x ", m.cols, "]");
}

} // namespace satemu::gpu
