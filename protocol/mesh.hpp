/// @file mesh.hpp
/// Cap'n Proto-free API for the kernel's mesh test traffic
/// (protocol/mesh.capnp, `kind::mesh`).

#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "protocol/payload.hpp"

namespace satemu::protocol {

/// Header of one mesh message; the body is opaque filler.
struct mesh_message {
  /// Entity id that created the message.
  std::uint32_t origin = 0;
  /// Entity id it is addressed to.
  std::uint32_t target = 0;
  /// Emulated creation time [ns].
  std::int64_t created_ns = 0;
  /// Unique per origin.
  std::uint64_t id = 0;
  /// Size of the body [bytes].
  std::size_t body_bytes = 0;

  friend bool operator==(const mesh_message&, const mesh_message&) = default;
};

/// A decoded mesh message whose body points into the payload it came from
/// (valid while that payload lives).
struct mesh_view {
  mesh_message header;
  std::span<const std::byte> body;
};

/// Byte `i` of the deterministic filler body of message `id`.
constexpr std::byte mesh_pattern_byte(std::uint64_t id, std::size_t i) noexcept {
  return static_cast<std::byte>((id * 0x9E3779B97F4A7C15ull + i * 131u) >> 3);
}

/// Fills `out` with the deterministic filler of message `id`.
void fill_mesh_pattern(std::uint64_t id, std::span<std::byte> out) noexcept;

/// True if `body` is the filler of message `id`.
bool is_mesh_pattern(std::uint64_t id, std::span<const std::byte> body) noexcept;

/// Largest body a mesh message can carry (a Cap'n Proto Data list) [bytes].
inline constexpr std::size_t max_mesh_body_bytes = (std::size_t{1} << 29) - 1;

/// Encodes `m` with `body` as its body (`m.body_bytes` is ignored). The message
/// is built in one segment, in the payload itself (`build_flat`): the body is
/// copied once, from `body` into the payload. Returns a null handle
/// if the body exceeds `max_mesh_body_bytes`.
payload_ptr encode_mesh(const mesh_message& m, std::span<const std::byte> body);

/// Encodes `m` with a body of `m.body_bytes` filler bytes (`fill_mesh_pattern`),
/// written directly into the message. Null if `m.body_bytes` exceeds
/// `max_mesh_body_bytes`.
payload_ptr encode_mesh(const mesh_message& m);

/// Decodes and validates a mesh message; InvalidArgument for a malformed one.
absl::StatusOr<mesh_message> decode_mesh(const payload& p);

/// As `decode_mesh(const payload&)`; a null handle (empty body) gives
/// InvalidArgument instead of undefined behaviour.
absl::StatusOr<mesh_message> decode_mesh(const payload_ptr& p);

/// As `decode_mesh`, but also returns a view of the body without copying it.
/// The view points into `p`: keep `p` alive while using it.
absl::StatusOr<mesh_view> view_mesh(const payload& p);

/// As `view_mesh(const payload&)`; a null handle gives InvalidArgument.
absl::StatusOr<mesh_view> view_mesh(const payload_ptr& p);

} // namespace satemu::protocol
