/// satemu flow packets (protocol/flow.capnp, `kind::flow`): capnp-free API.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "protocol/payload.hpp"

namespace satemu::protocol {

struct flow_packet {
  std::uint32_t flow = 0;
  std::uint64_t seq = 0;
  std::uint32_t origin = 0;
  std::uint32_t target = 0;
  std::int64_t sent_ns = 0;
  /// The route at sending differs from that of the flow's previous packet.
  bool path_changed = false;
  /// Filler bytes carried (the message's size on the wire grows with it).
  std::uint32_t body_bytes = 0;

  friend bool operator==(const flow_packet&, const flow_packet&) = default;
};

/// Encodes `m` with `m.body_bytes` zero bytes of filler.
payload_ptr encode_flow(const flow_packet& m);
/// A flow packet's bytes on the wire without filler (the envelope header and
/// the encoded fields); filler adds its bytes exactly in whole 8-byte words.
std::uint32_t flow_overhead_bytes();
/// Decodes and validates; InvalidArgument for a malformed or empty payload.
absl::StatusOr<flow_packet> decode_flow(const payload_ptr& p);

} // namespace satemu::protocol
