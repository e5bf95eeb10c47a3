/// satemu synthetic weights: deterministic, seeded fp32 tensors for any model
/// profile, bitwise identical on every machine, compiler and backend.
///
/// Each tensor is filled from its own random stream, seeded by hashing
/// (base seed, model name, layer, tensor name) with FNV-1a and splitmix64; the
/// stream is xoshiro256** and values are built with exact float arithmetic
/// only (no libm calls, no std distributions, whose output differs between
/// standard libraries). A tensor therefore does not depend on which other
/// tensors were generated, or in which order.
///
/// Distributions (all uniform, symmetric, on a grid of 2^24 odd steps):
///   linear, router, embedding  mean 0, std 1/sqrt(fan_in) (embedding: fan_in
///                              = hidden, so tied embeddings suit the LM head)
///   norm                       mean 1 - norm_weight_offset (stored weight; the
///                              multiplier is offset + w), half-width 1/64
///   bias                       mean 0, half-width 1/64
/// Layouts are those of tensor_spec: row-major, `[out, in]` for projections.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/model.hpp"

namespace satemu::gpu {

/// A host tensor in fp32, row-major (last dimension contiguous).
struct weight_tensor {
  std::string name;
  std::vector<std::int64_t> shape;
  std::vector<float> data;

  /// Product of the shape (1 for a scalar).
  std::int64_t elements() const;
};

/// The tensor named `name` in `tensors`, or nullptr.
const weight_tensor* find_tensor(const std::vector<weight_tensor>& tensors, std::string_view name);

/// The seed of one tensor's stream: a hash of every argument (order-sensitive).
/// `layer` is -1 for tensors outside the layers.
std::uint64_t weight_seed(std::uint64_t base_seed, std::string_view model, int layer,
                          std::string_view tensor);

/// Mean and standard deviation synthetic weights of `spec` are drawn with.
struct weight_init {
  double mean = 0;
  double stddev = 0;
};
weight_init synthetic_init(const model_profile& p, const tensor_spec& spec);

/// One tensor, filled from its own stream (see the file comment).
weight_tensor synthesize_tensor(const model_profile& p, const tensor_spec& spec,
                                std::uint64_t base_seed = 0);

/// Every tensor of layer `layer`, in layer_tensor_specs order; InvalidArgument
/// when the layer does not exist.
absl::StatusOr<std::vector<weight_tensor>> synthesize_layer(const model_profile& p, int layer,
                                                            std::uint64_t base_seed = 0);

/// The embedding, final norm and (untied) LM head, in global_tensor_specs order.
std::vector<weight_tensor> synthesize_globals(const model_profile& p, std::uint64_t base_seed = 0);

} // namespace satemu::gpu
