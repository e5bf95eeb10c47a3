/// @file tensor.hpp
/// fp32 host tensors for the compute backends.
///
/// Conventions used by every kernel in gpu/:
/// - Data is fp32, contiguous and row-major (the last index varies fastest).
/// - A tensor of any rank is seen by the kernels as a matrix of
///   `rows() = product of all dimensions but the last` by `cols() = last
///   dimension`; a rank-0 tensor is a 1 x 1 matrix, and a rank-1 tensor of
///   length n a 1 x n matrix.
/// - `const_matrix_view` / `matrix_view` are non-owning (data, rows, cols)
///   views with rows packed back to back (row stride = cols). A tensor
///   converts implicitly to either, so kernels accept tensors directly.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <vector>

namespace satemu::gpu {

/// Read-only view of a row-major `rows x cols` fp32 matrix.
struct const_matrix_view {
  const float* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;

  std::int64_t size() const { return rows * cols; }
  const float* row(std::int64_t r) const { return data + r * cols; }
  std::span<const float> span() const {
    return {data, static_cast<std::size_t>(rows * cols)};
  }
};

/// Writable view of a row-major `rows x cols` fp32 matrix.
struct matrix_view {
  float* data = nullptr;
  std::int64_t rows = 0;
  std::int64_t cols = 0;

  std::int64_t size() const { return rows * cols; }
  float* row(std::int64_t r) const { return data + r * cols; }
  std::span<float> span() const { return {data, static_cast<std::size_t>(rows * cols)}; }
  operator const_matrix_view() const { return {data, rows, cols}; }
};

/// An owning fp32 tensor: a shape and `numel()` contiguous row-major floats.
class tensor {
public:
  using shape_type = std::vector<std::int64_t>;

  /// An empty rank-1 tensor of length 0.
  tensor() : shape_{0} {}
  /// A zero-filled tensor. Aborts on a negative dimension.
  explicit tensor(shape_type shape);
  /// A tensor holding `data`; aborts unless `data.size()` matches the shape.
  tensor(shape_type shape, std::vector<float> data);

  /// Same as `tensor(shape)`: `tensor::zeros({rows, cols})`.
  static tensor zeros(shape_type shape) { return tensor(std::move(shape)); }

  const shape_type& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  /// Dimension `i`; negative `i` counts from the end (-1 is the last).
  std::int64_t dim(int i) const;
  std::int64_t numel() const { return static_cast<std::int64_t>(data_.size()); }
  /// Product of all dimensions but the last (1 for rank 0 and 1).
  std::int64_t rows() const;
  /// The last dimension (1 for rank 0).
  std::int64_t cols() const { return shape_.empty() ? 1 : shape_.back(); }

  float* data() { return data_.data(); }
  const float* data() const { return data_.data(); }
  std::span<float> values() { return data_; }
  std::span<const float> values() const { return data_; }
  std::vector<float>& storage() { return data_; }
  const std::vector<float>& storage() const { return data_; }

  /// Element `i` of the flattened data (unchecked).
  float& operator[](std::int64_t i) { return data_[static_cast<std::size_t>(i)]; }
  float operator[](std::int64_t i) const { return data_[static_cast<std::size_t>(i)]; }

  /// The matrix view (rows() x cols()).
  matrix_view matrix() { return {data_.data(), rows(), cols()}; }
  const_matrix_view matrix() const { return {data_.data(), rows(), cols()}; }
  operator matrix_view() & { return matrix(); }
  /// Also from a temporary: the view is valid for the full expression.
  operator const_matrix_view() const& { return matrix(); }

  /// Same element count, new shape; aborts when the counts differ.
  void reshape(shape_type shape);

  /// "[2, 3, 4]".
  std::string shape_string() const;

  /// Bitwise equality of shape and data (NaN payloads included).
  bool bitwise_equal(const tensor& other) const;

private:
  shape_type shape_;
  std::vector<float> data_;
};

/// "[rows x cols]".
std::string to_string(const const_matrix_view& m);

} // namespace satemu::gpu
