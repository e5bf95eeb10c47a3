/// satemu random streams: small, fast, seedable generators.
///
/// Every random draw comes from a stream derived from `(seed, entity id,
/// stream)`, never from a global generator or the clock (DESIGN.md,
/// Determinism rules). The generator is xoshiro256** seeded through
/// splitmix64; its state is 32 bytes, so every entity can own one.
#pragma once

#include <cmath>
#include <cstdint>

namespace satemu::runtime {

/// One step of splitmix64: a strong 64-bit mixer, also used for hashing.
constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Mixes `value` into the running hash `h`; order-sensitive.
constexpr std::uint64_t hash_combine(std::uint64_t h, std::uint64_t value) {
  std::uint64_t s = h ^ (value + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
  return splitmix64(s);
}

/// A deterministic random stream (xoshiro256**).
class rng {
public:
  rng() : rng(0, 0, 0) {}
  /// The stream `stream` of entity `entity` in a run seeded with `seed`.
  rng(std::uint64_t seed, std::uint64_t entity, std::uint64_t stream)
    : rng(from_state(hash_combine(hash_combine(hash_combine(0, seed), entity), stream))) {}

  /// The stream whose state is four splitmix64 steps from `sm` (the seeding
  /// of every stream; synthetic weights pin their values on it).
  static rng from_state(std::uint64_t sm) {
    rng r(nullptr);
    for (auto& w : r.s_)
      w = splitmix64(sm);
    return r;
  }

  /// 64 uniformly distributed bits.
  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// Uniform integer in [0, n); n > 0. Lemire's multiply-shift, bias < 2^-64 * n.
  std::uint64_t below(std::uint64_t n) {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }

  /// Exponentially distributed with mean `mean` (any unit).
  double exponential(double mean) { return -mean * std::log1p(-uniform()); }

private:
  explicit rng(std::nullptr_t) {}
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4];
};

} // namespace satemu::runtime
