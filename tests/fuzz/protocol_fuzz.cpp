/// Fuzz target: the bytes that cross process boundaries (protocol/). The
/// first byte (modulo 6) picks the decoder: 0 node messages (node.hpp), 1
/// envelope batches (envelope_batch.hpp), 2 SkyMemory KV messages
/// (kvcache.hpp), 3 pings (ping.hpp), 4 flow packets (flow.hpp), 5 mesh
/// messages (mesh.hpp); the rest is its input. What decodes must encode and decode back to the same
/// value, and a batch's encoding must be the bytes it came from.
#include <algorithm>
#include <vector>

#include "protocol/envelope_batch.hpp"
#include "protocol/flow.hpp"
#include "protocol/kvcache.hpp"
#include "protocol/mesh.hpp"
#include "protocol/node.hpp"
#include "protocol/payload.hpp"
#include "protocol/ping.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace satemu::protocol;

void node_message_round_trips(std::string_view bytes) {
  auto m = decode_node_message(bytes);
  if (!m.ok()) return;
  const auto encoded = encode_node_message(*m);
  SATEMU_FUZZ_CHECK(encoded.ok(), std::string(node_kind_name(*m)) + " does not encode once decoded: "
                                      + std::string(encoded.status().message()));
  auto back = decode_node_message(*encoded);
  SATEMU_FUZZ_CHECK(back.ok(), std::string(node_kind_name(*m)) + " does not decode once encoded: "
                                   + std::string(back.status().message()));
  SATEMU_FUZZ_CHECK(*back == *m, std::string(node_kind_name(*m)) + " changed in a round trip");
}

void envelope_batch_round_trips(std::string_view bytes) {
  constexpr std::uint32_t entity_count = 1000;
  std::vector<routed_envelope> batch;
  if (!decode_envelopes(bytes, entity_count, batch).ok()) return;
  std::string encoded;
  encode_envelopes(batch, encoded);
  SATEMU_FUZZ_CHECK(encoded == bytes, "a batch of " + std::to_string(batch.size())
                                          + " envelopes encodes to other bytes");
  std::vector<routed_envelope> back;
  const absl::Status st = decode_envelopes(encoded, entity_count, back);
  SATEMU_FUZZ_CHECK(st.ok() && back == batch, "a batch changed in a round trip");
}

std::string bytes_of(const payload_ptr& p) {
  return std::string(reinterpret_cast<const char*>(p.bytes().data()), p.bytes().size());
}

void kv_message_round_trips(std::string_view bytes) {
  auto p = payload::from_bytes(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  if (!p.ok()) return;
  auto m = decode_kv(*p, true);
  if (!m.ok()) return;
  const payload_ptr encoded = encode_kv(*m);
  auto back = decode_kv(encoded, true);
  SATEMU_FUZZ_CHECK(back.ok(), "a KV message does not decode once encoded: "
                                   + std::string(back.status().message()));
  if (carries_chunk(back->op))
    SATEMU_FUZZ_CHECK(back->chunk.checksum_ok, "a re-encoded chunk fails its checksum");
  SATEMU_FUZZ_CHECK(*back == *m, "a KV message changed in a round trip");
  SATEMU_FUZZ_CHECK(bytes_of(encode_kv(*back)) == bytes_of(encoded),
                    "a KV message encodes to other bytes after a round trip");
}

payload_ptr payload_of(std::string_view bytes) {
  auto p = payload::from_bytes(
      std::span<const std::byte>(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  return p.ok() ? std::move(*p) : payload_ptr();
}

/// A ping or flow message that decodes encodes to one that decodes equal.
template <class Decode, class Encode>
void fixed_message_round_trips(std::string_view bytes, const char* what, Decode decode,
                               Encode encode) {
  const auto p = payload_of(bytes);
  if (!p) return;
  auto m = decode(p);
  if (!m.ok()) return;
  auto back = decode(encode(*m));
  SATEMU_FUZZ_CHECK(back.ok(), std::string("a ") + what + " does not decode once encoded: "
                                   + std::string(back.status().message()));
  SATEMU_FUZZ_CHECK(*back == *m, std::string("a ") + what + " changed in a round trip");
}

void mesh_message_round_trips(std::string_view bytes) {
  const auto p = payload_of(bytes);
  if (!p) return;
  auto v = view_mesh(p);
  if (!v.ok()) return;
  SATEMU_FUZZ_CHECK(v->header.body_bytes == v->body.size(), "a mesh header gives another body size");
  const payload_ptr encoded = encode_mesh(v->header, v->body);
  SATEMU_FUZZ_CHECK(encoded != nullptr, "a decoded mesh message does not encode");
  auto back = view_mesh(encoded);
  SATEMU_FUZZ_CHECK(back.ok(), "a mesh message does not decode once encoded: "
                                   + std::string(back.status().message()));
  SATEMU_FUZZ_CHECK(back->header == v->header, "a mesh header changed in a round trip");
  SATEMU_FUZZ_CHECK(std::equal(back->body.begin(), back->body.end(), v->body.begin(), v->body.end()),
                    "a mesh body changed in a round trip");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body = satemu::fuzz::text_of(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0: node_message_round_trips(body); break;
    case 1: envelope_batch_round_trips(body); break;
    case 2: kv_message_round_trips(body); break;
    case 3:
      fixed_message_round_trips(body, "ping", [](const payload_ptr& p) { return decode_ping(p); },
                                [](const ping_message& m) { return encode_ping(m); });
      break;
    case 4:
      fixed_message_round_trips(body, "flow packet",
                                [](const payload_ptr& p) { return decode_flow(p); },
                                [](const flow_packet& m) { return encode_flow(m); });
      break;
    default: mesh_message_round_trips(body); break;
  }
  return 0;
}
