// Ping and flow messages: round trips, wire size growth, and rejection of
// damaged payloads.
#include <gtest/gtest.h>

#include <cstring>

#include "protocol/envelope.hpp"
#include "protocol/flow.hpp"
#include "protocol/mesh.hpp"
#include "protocol/ping.hpp"

namespace satemu::protocol {
namespace {

/// The payload with its last `cut` words removed (a truncated message).
payload_ptr truncated(const payload_ptr& p, std::size_t cut) {
  return payload::build_words(p->size_words() - cut, [&](std::span<std::uint64_t> out) {
    std::memcpy(out.data(), p->words(), out.size() * sizeof(std::uint64_t));
  });
}

TEST(ping_message, round_trip_and_size) {
  ping_message m;
  m.id = 12;
  m.origin = 4410;
  m.target = 4420;
  m.sent_ns = 1'234'567'890;
  m.reply = true;
  m.arrived_ns = 1'300'000'000;
  m.request_hops = 9;
  m.body_bytes = 100;
  const auto p = encode_ping(m);
  auto back = decode_ping(p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  m.body_bytes = 1000;
  EXPECT_GE(encode_ping(m)->size_bytes(), p->size_bytes() + 896);
}

// What the README and `size`'s help say: on the wire (with the envelope's
// header) a ping is its filler in whole 8-byte words plus 104 bytes, request
// or reply alike.
TEST(ping_message, wire_size_is_the_filler_in_words_plus_104_bytes) {
  for (const bool reply : {false, true})
    for (const std::uint32_t filler : {0u, 1u, 64u, 1000u, 1001u, 65536u}) {
      ping_message m;
      m.id = 1u << 30;
      m.reply = reply;
      m.request_hops = 300;
      m.body_bytes = filler;
      EXPECT_EQ(encode_ping(m)->size_bytes() + envelope::header_bytes,
                (filler + 7) / 8 * 8 + 104)
        << filler << (reply ? " reply" : " request");
    }
}

TEST(flow_packet, round_trip_and_size) {
  flow_packet m;
  m.flow = 3;
  m.seq = 1u << 20;
  m.origin = 1;
  m.target = 2;
  m.sent_ns = -5;
  m.path_changed = true;
  m.body_bytes = 1400;
  const auto p = encode_flow(m);
  auto back = decode_flow(p);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, m);
  EXPECT_GE(p->size_bytes(), 1400u);
}

TEST(flow_packet, damaged_payloads_are_errors) {
  EXPECT_FALSE(decode_flow(nullptr).ok());
  EXPECT_FALSE(decode_ping(nullptr).ok());
  flow_packet m;
  m.body_bytes = 64;
  const auto p = encode_flow(m);
  for (std::size_t cut = 1; cut < p->size_words(); ++cut)
    EXPECT_FALSE(decode_flow(truncated(p, cut)).ok()) << "cut " << cut;
  ping_message q;
  q.body_bytes = 64;
  const auto r = encode_ping(q);
  for (std::size_t cut = 1; cut < r->size_words(); ++cut)
    EXPECT_FALSE(decode_ping(truncated(r, cut)).ok()) << "cut " << cut;
}

// The encoders size each message beforehand, so that it is built in place
// in one segment (no copy); a size that fell short would show as a second.
TEST(encoders, build_every_message_in_one_segment) {
  auto segments = [](const payload_ptr& p) {
    std::uint32_t n;
    std::memcpy(&n, p->data(), 4);
    return n + 1;
  };
  for (std::uint32_t body : {0u, 1u, 8u, 100u, 1500u, 65536u}) {
    ping_message ping;
    ping.body_bytes = body;
    EXPECT_EQ(segments(encode_ping(ping)), 1u) << body;
    flow_packet flow;
    flow.body_bytes = body;
    EXPECT_EQ(segments(encode_flow(flow)), 1u) << body;
    EXPECT_EQ(segments(encode_mesh(mesh_message{1, 2, 3, 4, body})), 1u) << body;
  }
}

} // namespace
} // namespace satemu::protocol
