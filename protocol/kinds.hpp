/// @file kinds.hpp
/// Protocol kinds carried in every envelope header.

#pragma once

#include <cstdint>
#include <string_view>

namespace satemu::protocol {

/// Which protocol family an envelope's payload belongs to (selects the schema
/// used to decode it). The numeric values cross process boundaries: later
/// protocols add new values and never renumber or reuse old ones.
enum class kind : std::uint16_t {
  /// Kernel-internal timer / self-scheduled event; usually without payload.
  timer = 0,
  /// The kernel's own mesh test traffic (protocol/mesh.capnp).
  mesh = 1,
  /// Ping requests and replies between ground endpoints (protocol/ping.capnp).
  ping = 2,
  /// Packets of constant-rate flows between ground endpoints (protocol/flow.capnp).
  flow = 3,
  /// SkyMemory KV-cache messages (protocol/kvcache.capnp).
  kvcache = 4,
  /// Kernel-internal: the result of an entity's compute request (never on
  /// the wire; the result stays with the entity, runtime/entity.hpp).
  compute = 5,
};

/// Whether envelopes of kind `k` may travel between nodes: the application
/// kinds. Timers and compute results never leave their entity.
constexpr bool crosses_nodes(kind k) noexcept {
  return k == kind::mesh || k == kind::ping || k == kind::flow || k == kind::kvcache;
}

/// Stable lower-case name of `k`, or "unknown" for a value this build does not
/// know (a newer peer may send one).
constexpr std::string_view to_string(kind k) noexcept {
  switch (k) {
    case kind::timer:
      return "timer";
    case kind::mesh:
      return "mesh";
    case kind::ping:
      return "ping";
    case kind::flow:
      return "flow";
    case kind::kvcache:
      return "kvcache";
    case kind::compute:
      return "compute";
  }
  return "unknown";
}

} // namespace satemu::protocol
