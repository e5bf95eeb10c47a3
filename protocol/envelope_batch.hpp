/// @file envelope_batch.hpp
/// Envelopes handed from one node of a distributed run to another, as bytes
/// (protocol/bytes.hpp). Within a node envelopes stay objects (zero-copy);
/// only these cross processes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/envelope.hpp"

namespace satemu::protocol {

/// An envelope for entity `hop` (its destination or the next hop towards
/// it), handed over by entity `from` (the previous hop).
struct routed_envelope {
  std::uint32_t hop = 0;
  std::uint32_t from = 0;
  envelope env;
  friend bool operator==(const routed_envelope&, const routed_envelope&) = default;
};

/// Appends the encoding of `batch` to `out`: a count, then per envelope the
/// routing ids, the header fields and the payload bytes.
void encode_envelopes(std::span<const routed_envelope> batch, std::string& out);

/// Splits `batch`, in order, into consecutive parts whose encodings take at
/// most `max_bytes` each (an envelope bigger than that alone in a part), so
/// that no batch exceeds what one field of a node message carries.
std::vector<std::span<const routed_envelope>> split_envelopes(
  std::span<const routed_envelope> batch, std::size_t max_bytes);

/// Decodes a batch without trusting it: truncation, trailing bytes, counts
/// that cannot fit, payloads whose size is not a multiple of 8 and entity
/// ids at or above `entity_count` are InvalidArgument naming the envelope
/// and the offset. Appends to `out`; on error `out` may hold a prefix.
absl::Status decode_envelopes(std::string_view bytes, std::uint32_t entity_count,
                              std::vector<routed_envelope>& out);

} // namespace satemu::protocol
