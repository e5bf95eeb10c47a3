// Mesh encode/decode round trips, checked against Cap'n Proto's own
// serialisation as the independent reference.

#include "protocol/mesh.hpp"

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "capnp/message.h"
#include "capnp/serialize.h"
#include "protocol/codec.hpp"
#include "protocol/mesh.capnp.h"

namespace satemu::protocol {
namespace {

class mesh_round_trip : public ::testing::TestWithParam<std::size_t> {};

TEST_P(mesh_round_trip, pattern_body) {
  const mesh_message m{17, 4242, -123456789, 0xDEADBEEFCAFEull, GetParam()};
  auto p = encode_mesh(m);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->size_bytes() % 8, 0u);
  EXPECT_TRUE(check_segment_table(p->bytes()).ok());
  auto v = view_mesh(*p);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->header, m);
  ASSERT_EQ(v->body.size(), m.body_bytes);
  EXPECT_TRUE(is_mesh_pattern(m.id, v->body));
  // The body is a view into the payload, not a copy.
  if (!v->body.empty()) {
    EXPECT_GE(v->body.data(), p->data());
    EXPECT_LE(v->body.data() + v->body.size(), p->data() + p->size_bytes());
  }
  auto d = decode_mesh(*p);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, m);
}

TEST_P(mesh_round_trip, explicit_body_matches_capnp_reference) {
  const mesh_message m{1, 2, 3, 4, 0};
  std::vector<std::byte> body(GetParam());
  for (std::size_t i = 0; i < body.size(); ++i)
    body[i] = static_cast<std::byte>(255 - i % 251);
  auto p = encode_mesh(m, body);
  ASSERT_TRUE(p);
  // Reference: build the same message with capnp and flatten it with
  // messageToFlatArray; the bytes must be identical.
  capnp::MallocMessageBuilder ref_builder;
  auto root = ref_builder.initRoot<schema::MeshMessage>();
  root.setOrigin(1);
  root.setTarget(2);
  root.setCreatedNs(3);
  root.setId(4);
  root.setBody(kj::arrayPtr(reinterpret_cast<const kj::byte*>(body.data()),
                            body.size()));
  auto ref = capnp::messageToFlatArray(ref_builder);
  // The reference builder may split into several segments for big bodies;
  // compare by reading it back instead of bytes in that case.
  if (ref_builder.getSegmentsForOutput().size() == 1) {
    ASSERT_EQ(ref.asBytes().size(), p->size_bytes());
    EXPECT_EQ(std::memcmp(ref.asBytes().begin(), p->data(), p->size_bytes()), 0);
  }
  // And capnp's own reader accepts our flat payload.
  capnp::FlatArrayMessageReader reader(kj::arrayPtr(
    reinterpret_cast<const capnp::word*>(p->words()), p->size_words()));
  auto r = reader.getRoot<schema::MeshMessage>();
  EXPECT_EQ(r.getId(), 4u);
  ASSERT_EQ(r.getBody().size(), body.size());
  auto v = view_mesh(*p);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->body.size(), body.size());
  EXPECT_TRUE(std::equal(v->body.begin(), v->body.end(), body.begin()));
  EXPECT_EQ(v->header.body_bytes, body.size());
}

INSTANTIATE_TEST_SUITE_P(body_sizes, mesh_round_trip,
                         ::testing::Values(0u, 1u, 7u, 8u, 256u, 65536u));

TEST(mesh, multi_segment_message_decodes) {
  // A builder with a tiny first segment forces several segments.
  capnp::MallocMessageBuilder builder(8, capnp::AllocationStrategy::FIXED_SIZE);
  auto root = builder.initRoot<schema::MeshMessage>();
  root.setId(99);
  auto body = root.initBody(1000);
  std::memset(body.begin(), 0x5a, body.size());
  ASSERT_GT(builder.getSegmentsForOutput().size(), 1u);
  auto p = encode_flat(builder);
  EXPECT_EQ(p->size_words(), flat_size_words(builder));
  auto ref = capnp::messageToFlatArray(builder);
  ASSERT_EQ(ref.asBytes().size(), p->size_bytes());
  EXPECT_EQ(std::memcmp(ref.asBytes().begin(), p->data(), p->size_bytes()), 0);
  auto v = view_mesh(*p);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->header.id, 99u);
  EXPECT_EQ(v->body.size(), 1000u);
}

TEST(mesh, pattern_depends_on_id) {
  std::vector<std::byte> a(64), b(64);
  fill_mesh_pattern(1, a);
  fill_mesh_pattern(2, b);
  EXPECT_NE(a, b);
  EXPECT_TRUE(is_mesh_pattern(1, a));
  EXPECT_FALSE(is_mesh_pattern(2, a));
}

TEST(mesh, null_handle_is_an_error) {
  payload_ptr null;
  EXPECT_EQ(decode_mesh(null).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(view_mesh(null).status().code(), absl::StatusCode::kInvalidArgument);
  auto p = encode_mesh({5, 6, 7, 8, 9});
  auto d = decode_mesh(p);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->id, 8u);
}

TEST(mesh, oversized_body_gives_null) {
  mesh_message m;
  m.body_bytes = max_mesh_body_bytes + 1;
  EXPECT_FALSE(encode_mesh(m));
}

} // namespace
} // namespace satemu::protocol
