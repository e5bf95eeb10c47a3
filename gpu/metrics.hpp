/// @file metrics.hpp
/// Quality metrics for comparing a computed tensor with a reference (a CUDA
/// kernel with its CPU twin, compressed activations with the originals,
/// logits of a split model with the whole one). All sums are in double, in
/// index order; they run on the host and are not backend kernels.
///
/// Inputs are flat fp32 spans (a tensor's `values()`, a view's `span()`);
/// logits matrices are `[rows, vocab]`, one distribution per row.
/// Mismatched sizes are InvalidArgument. NaN inputs give NaN results.
#pragma once

#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "gpu/tensor.hpp"

namespace satemu::gpu {

/// ||value - reference||_2 / ||reference||_2. When the reference is all
/// zeros (or empty): 0 if value is too, +inf otherwise.
absl::StatusOr<double> relative_error(std::span<const float> reference,
                                      std::span<const float> value);

/// a.b / (||a|| ||b||). Both all-zero (or empty): 1; exactly one all-zero: 0.
absl::StatusOr<double> cosine_similarity(std::span<const float> a, std::span<const float> b);

/// KL(P || Q) in nats with P = softmax(reference_logits), Q =
/// softmax(logits); >= 0, 0 for identical inputs. Logits may be -inf (an
/// excluded token); a token with P > 0 and Q = 0 gives +inf, as does a Q
/// that excludes every token. A +inf logit, or a P that excludes every
/// token, is no distribution: NaN. Empty is an error.
absl::StatusOr<double> kl_divergence(std::span<const float> reference_logits,
                                     std::span<const float> logits);

/// Index of the largest value, ties towards the lower index; -1 when empty.
/// NaN values are passed over (all NaN: 0).
std::int64_t argmax(std::span<const float> values);

/// argmax(a) == argmax(b). Empty is an error.
absl::StatusOr<bool> top1_agree(std::span<const float> a, std::span<const float> b);

/// Row-wise comparison of two `[rows, vocab]` logits matrices.
struct logits_comparison {
  std::int64_t rows = 0;
  double mean_kl = 0.0;        ///< mean over rows of KL(reference || value)
  double max_kl = 0.0;         ///< largest row KL
  double top1_agreement = 1.0; ///< fraction of rows whose argmax agrees (1 when no rows)
};
absl::StatusOr<logits_comparison> compare_logits(const_matrix_view reference,
                                                 const_matrix_view value);

} // namespace satemu::gpu
