#include "gpu/weights.hpp"

#include <cmath>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "runtime/rng.hpp"

namespace satemu::gpu {

namespace {

// The generators are runtime/rng.hpp's (splitmix64 seeding, xoshiro256**).
// Synthetic weights are part of the reproducibility contract, so a test pins
// values (Weights.PinnedValuesGuardPortability): a change to the generator
// that would move them fails there.
using runtime::splitmix64;

constexpr std::uint64_t mix(std::uint64_t h, std::uint64_t value) {
  std::uint64_t s = h ^ splitmix64(value);
  return splitmix64(s);
}

constexpr std::uint64_t fnv1a(std::string_view s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

// An odd integer uniform in [-(2^24 - 1), 2^24 - 1]: symmetric around 0 and
// exactly representable as a float.
inline float odd_grid(runtime::rng& g) {
  const auto k = static_cast<std::int32_t>(g.next() >> 40); // 24 bits
  return static_cast<float>(2 * k + 1 - (1 << 24));
}

constexpr double norm_half_width = 1.0 / 64.0;
// grid value (|k| < 2^24) times 2^-30: half-width 2^-6, and the product is
// exact, so `mean + k * step` rounds once whether or not it is fused.
constexpr float small_step = 0x1.0p-30f;

} // namespace

std::int64_t weight_tensor::elements() const {
  std::int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

const weight_tensor* find_tensor(const std::vector<weight_tensor>& tensors,
                                 std::string_view name) {
  for (const auto& t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

std::uint64_t weight_seed(std::uint64_t base_seed, std::string_view model, int layer,
                          std::string_view tensor) {
  std::uint64_t h = mix(0x5a7e3u, base_seed);
  h = mix(h, fnv1a(model));
  h = mix(h, static_cast<std::uint64_t>(static_cast<std::int64_t>(layer)));
  return mix(h, fnv1a(tensor));
}

weight_init synthetic_init(const model_profile& p, const tensor_spec& spec) {
  switch (spec.role) {
    case tensor_role::norm:
      return {1.0 - p.norm_weight_offset, norm_half_width / std::sqrt(3.0)};
    case tensor_role::bias:
      return {0.0, norm_half_width / std::sqrt(3.0)};
    case tensor_role::embedding:
    case tensor_role::linear:
    case tensor_role::router:
      break;
  }
  return {0.0, 1.0 / std::sqrt(static_cast<double>(spec.fan_in()))};
}

weight_tensor synthesize_tensor(const model_profile& p, const tensor_spec& spec,
                                std::uint64_t base_seed) {
  weight_tensor t;
  t.name = spec.name;
  t.shape = spec.shape;
  t.data.resize(static_cast<std::size_t>(spec.elements()));
  auto g = runtime::rng::from_state(weight_seed(base_seed, p.name, spec.layer, spec.name));

  if (spec.role == tensor_role::norm || spec.role == tensor_role::bias) {
    const float mean = spec.role == tensor_role::norm ? 1.0f - p.norm_weight_offset : 0.0f;
    for (auto& v : t.data)
      v = mean + odd_grid(g) * small_step;
    return t;
  }
  // Uniform with std 1/sqrt(fan_in): half-width sqrt(3 / fan_in). sqrt and
  // division are correctly rounded in IEEE 754, so `step` is the same float
  // everywhere, and each value is a single rounded product.
  const double half_width = std::sqrt(3.0 / static_cast<double>(spec.fan_in()));
  const auto step = static_cast<float>(half_width * 0x1.0p-24);
  for (auto& v : t.data)
    v = odd_grid(g) * step;
  return t;
}

absl::StatusOr<std::vector<weight_tensor>> synthesize_layer(const model_profile& p, int layer,
                                                            std::uint64_t base_seed) {
  if (layer < 0 || layer >= p.num_layers)
    return absl::InvalidArgumentError(absl::StrCat("model '", p.name, "' has no layer ", layer,
                                                   " (it has ", p.num_layers, ")"));
  std::vector<weight_tensor> out;
  for (const auto& spec : layer_tensor_specs(p, layer))
    out.push_back(synthesize_tensor(p, spec, base_seed));
  return out;
}

std::vector<weight_tensor> synthesize_globals(const model_profile& p, std::uint64_t base_seed) {
  std::vector<weight_tensor> out;
  for (const auto& spec : global_tensor_specs(p))
    out.push_back(synthesize_tensor(p, spec, base_seed));
  return out;
}

} // namespace satemu::gpu
