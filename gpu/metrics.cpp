#include "gpu/metrics.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu {

namespace {

absl::Status same_size(std::string_view metric, std::size_t a, std::size_t b) {
  if (a == b)
    return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(metric), ": sizes differ (", a, " vs ", b, ")"));
}

// log(sum(exp(x))) in double, stable; -inf for an all -inf input.
double log_sum_exp(std::span<const float> x) {
  double mx = -std::numeric_limits<double>::infinity();
  for (float v : x)
    mx = std::fmax(mx, static_cast<double>(v));
  if (std::isinf(mx))
    return mx; // all -inf, or a +inf that makes the result +inf
  double sum = 0.0;
  for (float v : x)
    sum += std::exp(static_cast<double>(v) - mx);
  return mx + std::log(sum);
}

} // namespace

absl::StatusOr<double> relative_error(std::span<const float> reference,
                                      std::span<const float> value) {
  SATEMU_GPU_RETURN_IF_ERROR(same_size("relative_error", reference.size(), value.size()));
  double diff = 0.0;
  double ref = 0.0;
  for (std::size_t i = 0; i < reference.size(); ++i) {
    const double r = reference[i];
    const double d = static_cast<double>(value[i]) - r;
    diff += d * d;
    ref += r * r;
  }
  if (ref == 0.0)
    return diff == 0.0 ? 0.0 : (std::isnan(diff) ? diff : std::numeric_limits<double>::infinity());
  return std::sqrt(diff) / std::sqrt(ref);
}

absl::StatusOr<double> cosine_similarity(std::span<const float> a, std::span<const float> b) {
  SATEMU_GPU_RETURN_IF_ERROR(same_size("cosine_similarity", a.size(), b.size()));
  double ab = 0.0;
  double aa = 0.0;
  double bb = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i];
    const double y = b[i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  if (aa == 0.0 && bb == 0.0)
    return 1.0;
  if (aa == 0.0 || bb == 0.0)
    return std::isnan(aa + bb) ? aa + bb : 0.0;
  return ab / (std::sqrt(aa) * std::sqrt(bb));
}

absl::StatusOr<double> kl_divergence(std::span<const float> reference_logits,
                                     std::span<const float> logits) {
  SATEMU_GPU_RETURN_IF_ERROR(
      same_size("kl_divergence", reference_logits.size(), logits.size()));
  if (logits.empty())
    return absl::InvalidArgumentError("kl_divergence: empty logits");
  const double lse_p = log_sum_exp(reference_logits);
  const double lse_q = log_sum_exp(logits);
  constexpr double inf = std::numeric_limits<double>::infinity();
  if (lse_p == inf || lse_q == inf || lse_p == -inf)
    return std::numeric_limits<double>::quiet_NaN(); // a +inf logit, or no P at all
  if (lse_q == -inf)
    return std::isnan(lse_p) ? lse_p : inf; // Q excludes every token P has
  double kl = 0.0;
  for (std::size_t i = 0; i < logits.size(); ++i) {
    const double lp = static_cast<double>(reference_logits[i]) - lse_p;
    if (lp == -inf)
      continue; // p = 0 contributes nothing
    const double lq = static_cast<double>(logits[i]) - lse_q;
    kl += std::exp(lp) * (lp - lq);
  }
  // Rounding can leave a tiny negative sum for near-identical inputs; NaN stays NaN.
  return kl < 0.0 ? 0.0 : kl;
}

std::int64_t argmax(std::span<const float> values) {
  if (values.empty())
    return -1;
  std::size_t best = 0;
  while (best + 1 < values.size() && std::isnan(values[best]))
    ++best;
  if (std::isnan(values[best]))
    return 0;
  for (std::size_t i = best + 1; i < values.size(); ++i)
    if (values[i] > values[best])
      best = i;
  return static_cast<std::int64_t>(best);
}

absl::StatusOr<bool> top1_agree(std::span<const float> a, std::span<const float> b) {
  SATEMU_GPU_RETURN_IF_ERROR(same_size("top1_agree", a.size(), b.size()));
  if (a.empty())
    return absl::InvalidArgumentError("top1_agree: empty logits");
  return argmax(a) == argmax(b);
}

absl::StatusOr<logits_comparison> compare_logits(const_matrix_view reference,
                                                 const_matrix_view value) {
  SATEMU_GPU_CHECK(reference.data != nullptr || reference.size() == 0, "null reference");
  SATEMU_GPU_CHECK(value.data != nullptr || value.size() == 0, "null value");
  if (reference.rows != value.rows || reference.cols != value.cols)
    return absl::InvalidArgumentError(absl::StrCat("compare_logits: shapes differ (",
                                                   to_string(reference), " vs ",
                                                   to_string(value), ")"));
  logits_comparison out;
  out.rows = reference.rows;
  if (reference.rows == 0)
    return out;
  double kl_sum = 0.0;
  std::int64_t agree = 0;
  for (std::int64_t r = 0; r < reference.rows; ++r) {
    const std::span<const float> p(reference.row(r), static_cast<std::size_t>(reference.cols));
    const std::span<const float> q(value.row(r), static_cast<std::size_t>(value.cols));
    SATEMU_GPU_ASSIGN_OR_RETURN(const double kl, kl_divergence(p, q));
    kl_sum += kl;
    if (r == 0 || std::isnan(kl) || kl > out.max_kl)
      out.max_kl = kl;
    if (argmax(p) == argmax(q))
      ++agree;
  }
  out.mean_kl = kl_sum / static_cast<double>(reference.rows);
  out.top1_agreement = static_cast<double>(agree) / static_cast<double>(reference.rows);
  return out;
}

} // namespace satemu::gpu
