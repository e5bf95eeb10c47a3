/// satemu ping messages (protocol/ping.capnp, `kind::ping`): capnp-free API.
#pragma once

#include <cstdint>

#include "absl/status/statusor.h"
#include "protocol/payload.hpp"

namespace satemu::protocol {

struct ping_message {
  std::uint64_t id = 0;
  std::uint32_t origin = 0;
  std::uint32_t target = 0;
  std::int64_t sent_ns = 0;
  bool reply = false;
  std::int64_t arrived_ns = 0;
  std::uint16_t request_hops = 0;
  /// Filler bytes carried (the message's size on the wire grows with it).
  std::uint32_t body_bytes = 0;
  /// The request's route differs from that of the origin's previous request
  /// to the same target (routes taken at sending); echoed in the reply.
  bool path_changed = false;

  friend bool operator==(const ping_message&, const ping_message&) = default;
};

/// Encodes `m` with `m.body_bytes` zero bytes of filler.
payload_ptr encode_ping(const ping_message& m);
/// Decodes and validates; InvalidArgument for a malformed or empty payload.
absl::StatusOr<ping_message> decode_ping(const payload_ptr& p);

} // namespace satemu::protocol
