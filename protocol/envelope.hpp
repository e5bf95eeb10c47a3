/// @file envelope.hpp
/// The message unit of the emulator: a small fixed header plus an immutable,
/// shared Cap'n Proto payload. In-process an envelope is passed by reference
/// (copying it only bumps the payload's reference count); across processes it
/// is serialised through CAF's `inspect` as header fields plus payload bytes.
///
/// Included by the whole kernel: only light CAF headers here.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "caf/meta/type_name.hpp"
#include "protocol/kinds.hpp"
#include "protocol/payload.hpp"

namespace caf {
class error;
class serializer;
class deserializer;
} // namespace caf

namespace satemu::protocol {

/// One emulated message, end to end: `src`, `dst`, `seq` and `send_ns` are
/// set once by the origin and kept while the message is forwarded hop by hop;
/// `deliver_ns` and `hops` change at every hop. Times are emulated
/// nanoseconds since scenario start (plain integers: the protocol layer does
/// not depend on the runtime's time types).
struct envelope {
  /// Bytes charged on the emulated wire for the header, whatever the payload.
  static constexpr std::size_t header_bytes = 40;

  /// Entity id of the origin.
  std::uint32_t src = 0;
  /// Entity id of the final destination.
  std::uint32_t dst = 0;
  /// Emulated time the message was first sent [ns].
  std::int64_t send_ns = 0;
  /// Emulated time the message is (to be) delivered at its next hop [ns].
  std::int64_t deliver_ns = 0;
  /// The origin's per-source sequence number.
  std::uint64_t seq = 0;
  /// Number of links traversed so far.
  std::uint32_t hops = 0;
  /// Protocol family of `body`.
  kind k = kind::timer;
  /// Flat Cap'n Proto message; null for an empty body.
  payload_ptr body;

  /// Size on the emulated wire [bytes]: payload flat size plus `header_bytes`.
  /// This is what serialisation delay and link queues charge.
  std::size_t wire_size() const noexcept {
    return body.size_bytes() + header_bytes;
  }
};

/// Equal if all header fields and the payload bytes are equal.
bool operator==(const envelope& x, const envelope& y) noexcept;

/// Human-readable one-line form (header fields and payload size), used by
/// CAF's `deep_to_string` and by logs.
std::string to_string(const envelope& x);

/// Writes the payload as a CAF byte sequence: its length, then the raw bytes
/// (no copy besides the serializer's own).
caf::error inspect(caf::serializer& f, payload_ptr& x);

/// Reads a payload written by the overload above into a fresh `payload`.
/// Never crashes on bad input: a length that is not a multiple of 8 or
/// exceeds `max_wire_payload_bytes` fails with `sec::invalid_argument`, a
/// length larger than the bytes left in a `binary_deserializer` fails with
/// `sec::end_of_stream` before allocating, and on any error `x` is left null.
/// The content is not validated here; decoding does that (codec.hpp).
caf::error inspect(caf::deserializer& f, payload_ptr& x);

/// Largest payload accepted from another process [bytes].
inline constexpr std::size_t max_wire_payload_bytes = std::size_t{1} << 30;

/// CAF 0.17 inspection: the header fields in declaration order, then the
/// payload (see the `payload_ptr` overloads above).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, envelope& x) {
  return f(caf::meta::type_name("satemu::envelope"), x.src, x.dst, x.send_ns,
           x.deliver_ns, x.seq, x.hops, x.k, x.body);
}

} // namespace satemu::protocol
