// Tests for payload, payload_ptr, kinds and envelope header arithmetic.

#include "protocol/payload.hpp"

#include <array>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/envelope.hpp"
#include "protocol/kinds.hpp"
#include "protocol/mesh.hpp"

namespace satemu::protocol {
namespace {

std::vector<std::byte> make_bytes(std::size_t n) {
  std::vector<std::byte> xs(n);
  for (std::size_t i = 0; i < n; ++i)
    xs[i] = static_cast<std::byte>(i * 7 + 3);
  return xs;
}

TEST(payload, from_bytes_copies_and_aligns) {
  auto src = make_bytes(64);
  auto p = payload::from_bytes(src);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_TRUE(*p);
  EXPECT_EQ((*p)->size_bytes(), 64u);
  EXPECT_EQ((*p)->size_words(), 8u);
  EXPECT_NE((*p)->data(), src.data());
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*p)->data()) % 8, 0u);
  EXPECT_EQ(std::memcmp((*p)->data(), src.data(), 64), 0);
  EXPECT_EQ(p->bytes().size(), 64u);
  EXPECT_EQ(p->use_count(), 1u);
}

TEST(payload, from_bytes_rejects_unaligned_sizes) {
  for (std::size_t n : {1u, 7u, 9u, 63u}) {
    auto src = make_bytes(n);
    auto p = payload::from_bytes(src);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
}

TEST(payload, empty_is_null) {
  auto p = payload::from_bytes({});
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(*p);
  EXPECT_EQ(p->size_bytes(), 0u);
  EXPECT_TRUE(p->bytes().empty());
  EXPECT_EQ(p->use_count(), 0u);
  payload_ptr null;
  EXPECT_TRUE(null == nullptr);
  EXPECT_TRUE(same_bytes(null, *p));
}

TEST(payload, copies_share_and_count) {
  auto p = *payload::from_bytes(make_bytes(32));
  const auto* data = p->data();
  {
    payload_ptr q = p;
    EXPECT_EQ(q->data(), data);
    EXPECT_EQ(p.use_count(), 2u);
    payload_ptr r = std::move(q);
    EXPECT_FALSE(q);
    EXPECT_EQ(p.use_count(), 2u);
    r = p;
    EXPECT_EQ(p.use_count(), 2u);
  }
  EXPECT_EQ(p.use_count(), 1u);
  p.reset();
  EXPECT_FALSE(p);
}

TEST(payload, same_bytes_compares_content) {
  auto a = *payload::from_bytes(make_bytes(16));
  auto b = *payload::from_bytes(make_bytes(16));
  auto c = *payload::from_bytes(make_bytes(24));
  EXPECT_TRUE(same_bytes(a, b));
  EXPECT_FALSE(same_bytes(a, c));
  EXPECT_FALSE(same_bytes(a, payload_ptr{}));
  EXPECT_EQ(to_string(a), "payload(16 B)");
}

TEST(payload, build_words_writes_once) {
  auto p = payload::build_words(3, [](std::span<std::uint64_t> out) {
    ASSERT_EQ(out.size(), 3u);
    out[0] = 1;
    out[1] = 2;
    out[2] = 3;
  });
  ASSERT_TRUE(p);
  EXPECT_EQ(p->words()[2], 3u);
  bool called = false;
  auto q = payload::build_words(0, [&](std::span<std::uint64_t>) { called = true; });
  EXPECT_FALSE(q);
  EXPECT_FALSE(called);
}

TEST(kinds, values_are_pinned) {
  EXPECT_EQ(static_cast<std::uint16_t>(kind::timer), 0u);
  EXPECT_EQ(static_cast<std::uint16_t>(kind::mesh), 1u);
  EXPECT_EQ(static_cast<std::uint16_t>(kind::ping), 2u);
  EXPECT_EQ(static_cast<std::uint16_t>(kind::flow), 3u);
  EXPECT_EQ(static_cast<std::uint16_t>(kind::kvcache), 4u);
  EXPECT_EQ(static_cast<std::uint16_t>(kind::compute), 5u);
  EXPECT_EQ(to_string(kind::kvcache), "kvcache");
  EXPECT_EQ(to_string(kind::compute), "compute");
  EXPECT_EQ(to_string(kind::timer), "timer");
  EXPECT_EQ(to_string(kind::flow), "flow");
  EXPECT_EQ(to_string(kind::ping), "ping");
  EXPECT_EQ(to_string(kind::mesh), "mesh");
  EXPECT_EQ(to_string(static_cast<kind>(999)), "unknown");
}

TEST(envelope, copy_shares_payload) {
  envelope a;
  a.src = 1;
  a.dst = 2;
  a.k = kind::mesh;
  a.body = encode_mesh({1, 2, 0, 7, 256});
  ASSERT_TRUE(a.body);
  envelope b = a;
  EXPECT_EQ(b.body->data(), a.body->data());
  EXPECT_EQ(a.body.use_count(), 2u);
  EXPECT_EQ(a, b);
  b.hops = 1;
  EXPECT_FALSE(a == b);
}

TEST(envelope, wire_size_is_body_plus_header) {
  envelope e;
  EXPECT_EQ(envelope::header_bytes, 40u);
  EXPECT_EQ(e.wire_size(), 40u);
  e.body = *payload::from_bytes(make_bytes(128));
  EXPECT_EQ(e.wire_size(), 168u);
  e.body = encode_mesh({0, 0, 0, 0, 256});
  // Table word + root pointer + 3 data words + 1 pointer word + 32 body words.
  EXPECT_EQ(e.body.size_bytes(), (1 + 1 + 3 + 1 + 32) * 8u);
  EXPECT_EQ(e.wire_size(), e.body.size_bytes() + 40u);
}

} // namespace
} // namespace satemu::protocol
