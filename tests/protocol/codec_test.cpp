// Decoding untrusted payloads: every malformed input must give an error
// status, never a crash or an out-of-bounds read.

#include "protocol/codec.hpp"

#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/mesh.capnp.h"
#include "protocol/mesh.hpp"

namespace satemu::protocol {
namespace {

payload_ptr from_words(const std::vector<std::uint64_t>& ws) {
  auto p = payload::from_bytes(std::as_bytes(std::span{ws}));
  EXPECT_TRUE(p.ok());
  return *p;
}

std::vector<std::uint64_t> words_of(const payload& p) {
  return {p.words(), p.words() + p.size_words()};
}

// Struct pointer: offset in words from the end of the pointer, data words,
// pointer count.
std::uint64_t struct_ptr(std::int32_t offset, std::uint16_t data,
                         std::uint16_t ptrs) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(offset) << 2))
         | (std::uint64_t{data} << 32) | (std::uint64_t{ptrs} << 48);
}

// Byte-list pointer (element size 2 = 1 byte).
std::uint64_t byte_list_ptr(std::int32_t offset, std::uint32_t count) {
  return 1u | (static_cast<std::uint64_t>(static_cast<std::uint32_t>(offset) << 2))
         | (std::uint64_t{2} << 32) | (std::uint64_t{count} << 35);
}

// One-segment flat message around `segment`.
std::vector<std::uint64_t> flat(const std::vector<std::uint64_t>& segment) {
  std::vector<std::uint64_t> ws;
  ws.push_back(std::uint64_t{segment.size()} << 32); // count-1 = 0, size
  ws.insert(ws.end(), segment.begin(), segment.end());
  return ws;
}

TEST(codec, null_and_empty_are_errors) {
  flat_message msg;
  EXPECT_EQ(msg.open(payload_ptr{}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(msg.is_open());
  EXPECT_EQ(msg.open(std::span<const std::byte>{}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(msg.read<schema::MeshMessage>([](auto) {}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(codec, size_not_multiple_of_eight) {
  alignas(8) std::array<std::byte, 12> raw{};
  flat_message msg;
  auto st = msg.open(std::span<const std::byte>{raw});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("multiple of 8"), std::string_view::npos);
}

TEST(codec, every_truncation_fails) {
  auto good = encode_mesh({1, 2, 3, 4, 300});
  ASSERT_TRUE(decode_mesh(*good).ok());
  auto ws = words_of(*good);
  for (std::size_t n = 1; n < ws.size(); ++n) {
    std::vector<std::uint64_t> prefix(ws.begin(), ws.begin() + n);
    auto p = from_words(prefix);
    auto d = decode_mesh(*p);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
  // Trailing bytes are rejected too: a flat payload is exactly one message.
  ws.push_back(0);
  EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
}

TEST(codec, huge_segment_count) {
  for (std::uint32_t count : {0xFFFFFFFFu, 0x7FFFFFFFu, 600u, 3u}) {
    std::vector<std::uint64_t> ws{count, 0, 0};
    auto st = check_segment_table(std::as_bytes(std::span{ws}));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << count;
    EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
  }
}

TEST(codec, segment_larger_than_buffer) {
  auto ws = flat({struct_ptr(0, 0, 0)});
  ASSERT_TRUE(check_segment_table(std::as_bytes(std::span{ws})).ok());
  ws[0] = std::uint64_t{0xFFFFFFFFu} << 32;
  auto st = check_segment_table(std::as_bytes(std::span{ws}));
  EXPECT_NE(st.message().find("truncated"), std::string_view::npos) << st;
  EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
  // Empty first segment.
  std::vector<std::uint64_t> empty_first{0};
  EXPECT_FALSE(decode_mesh(*from_words(empty_first)).ok());
}

TEST(codec, pointer_out_of_segment) {
  // Root struct claims 3 data words + 1 pointer but the segment ends first.
  auto ws = flat({struct_ptr(0, 3, 1), 1});
  EXPECT_EQ(decode_mesh(*from_words(ws)).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Body list points far past the end.
  ws = flat({struct_ptr(0, 3, 1), 0, 0, 0, byte_list_ptr(1000, 64)});
  EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
  // Far pointer into a segment that does not exist.
  ws = flat({(std::uint64_t{7} << 32) | 2u});
  EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
}

TEST(codec, handcrafted_valid_message_decodes) {
  // Guards the helpers above: the same layout with consistent sizes decodes.
  auto ws = flat({struct_ptr(0, 3, 1), (std::uint64_t{9} << 32) | 5u, 11, 13,
                  byte_list_ptr(0, 3), 0x030201});
  auto p = from_words(ws); // the view points into it
  auto d = view_mesh(*p);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->header.origin, 5u);
  EXPECT_EQ(d->header.target, 9u);
  EXPECT_EQ(d->header.created_ns, 11);
  EXPECT_EQ(d->header.id, 13u);
  ASSERT_EQ(d->body.size(), 3u);
  EXPECT_EQ(d->body[2], std::byte{3});
}

TEST(codec, wrong_pointer_type_fails_at_read) {
  // Body holds a struct pointer instead of Data: the message is structurally
  // valid, so open() accepts it; reading the field must still fail cleanly.
  auto ws = flat({struct_ptr(0, 3, 1), 0, 0, 0, struct_ptr(0, 1, 0), 42});
  flat_message msg;
  ASSERT_TRUE(msg.open(*from_words(ws)).ok());
  EXPECT_EQ(decode_mesh(*from_words(ws)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(codec, deep_nesting_fails) {
  // A chain of 40 structs, each with one pointer to the next.
  std::vector<std::uint64_t> seg(40, struct_ptr(0, 0, 1));
  seg.push_back(0);
  auto st = flat_message{}.open(*from_words(flat(seg)));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  // The same chain within the limit is accepted.
  std::vector<std::uint64_t> shallow(8, struct_ptr(0, 0, 1));
  shallow.push_back(0);
  EXPECT_TRUE(flat_message{}.open(*from_words(flat(shallow))).ok());
}

TEST(codec, pointer_loop_fails) {
  // The root pointer points at itself as a struct with one pointer.
  auto ws = flat({struct_ptr(-1, 0, 1)});
  EXPECT_EQ(flat_message{}.open(*from_words(ws)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(decode_mesh(*from_words(ws)).ok());
}

TEST(codec, aliasing_amplification_hits_traversal_limit) {
  // 200 pointers to the same 1000-word list: 1.2k words on the wire but 200k
  // words of traversal.
  constexpr int n_ptrs = 200;
  constexpr std::uint32_t list_words = 1000;
  std::vector<std::uint64_t> seg;
  seg.push_back(struct_ptr(0, 0, n_ptrs));
  for (int i = 0; i < n_ptrs; ++i)
    seg.push_back(byte_list_ptr(n_ptrs - 1 - i, list_words * 8));
  seg.resize(seg.size() + list_words, 0);
  auto st = flat_message{}.open(*from_words(flat(seg)));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  // With one pointer it is fine.
  std::vector<std::uint64_t> one{struct_ptr(0, 0, 1), byte_list_ptr(0, list_words * 8)};
  one.resize(one.size() + list_words, 0);
  EXPECT_TRUE(flat_message{}.open(*from_words(flat(one))).ok());
}

TEST(codec, random_bytes_never_crash) {
  std::mt19937_64 rng(20240611);
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::vector<std::uint64_t> ws(1 + rng() % 32);
    for (auto& w : ws)
      w = rng();
    // Half the time keep a plausible table so the reader gets exercised.
    if (iter % 2 == 0)
      ws[0] = std::uint64_t{ws.size() - 1} << 32;
    auto p = from_words(ws);
    auto d = view_mesh(*p);
    if (d.ok() && !d->body.empty()) {
      ++accepted;
      // Anything accepted must lie inside the buffer (ASan builds also catch
      // reads outside it).
      EXPECT_GE(d->body.data(), p->data());
      EXPECT_LE(d->body.data() + d->body.size(), p->data() + p->size_bytes());
    }
  }
  // Most random messages are invalid; some tiny ones may not be.
  EXPECT_LT(accepted, 20000);
}

TEST(codec, bit_flips_never_crash) {
  auto good = encode_mesh({1, 2, 3, 4, 64});
  auto ws = words_of(*good);
  std::mt19937_64 rng(7);
  for (int iter = 0; iter < 20000; ++iter) {
    auto bad = ws;
    for (int k = 0; k < 3; ++k)
      bad[rng() % bad.size()] ^= std::uint64_t{1} << (rng() % 64);
    auto p = from_words(bad);
    auto d = view_mesh(*p);
    if (d.ok() && !d->body.empty()) {
      EXPECT_GE(d->body.data(), p->data());
      EXPECT_LE(d->body.data() + d->body.size(), p->data() + p->size_bytes());
    }
  }
}

TEST(codec, error_message_says_what_is_wrong) {
  auto ws = flat({struct_ptr(0, 3, 1), 0, 0, 0, byte_list_ptr(1000, 64)});
  auto st = decode_mesh(*from_words(ws)).status();
  EXPECT_NE(st.message().find("malformed Cap'n Proto message"),
            std::string_view::npos) << st;
}

} // namespace
} // namespace satemu::protocol

namespace satemu::protocol {
namespace {

// A MeshMessage with `body` bytes of a pattern, built by `b`.
void build_mesh(capnp::MessageBuilder& b, std::size_t body) {
  auto root = b.initRoot<schema::MeshMessage>();
  root.setOrigin(7);
  root.setId(42);
  auto data = root.initBody(static_cast<unsigned>(body));
  for (std::size_t i = 0; i < body; ++i)
    data[i] = static_cast<kj::byte>(i * 13);
}

std::vector<std::byte> reference_flat(std::size_t body, unsigned first_words) {
  capnp::MallocMessageBuilder b(first_words, capnp::AllocationStrategy::FIXED_SIZE);
  build_mesh(b, body);
  auto flat = capnp::messageToFlatArray(b);
  auto bytes = flat.asBytes();
  const auto* first = reinterpret_cast<const std::byte*>(bytes.begin());
  return {first, first + bytes.size()};
}

std::uint32_t segment_count(const payload_ptr& p) {
  std::uint32_t n;
  std::memcpy(&n, p->data(), 4);
  return n + 1;
}

TEST(build_flat, a_message_that_fits_is_capnp_s_flat_form_of_the_words_it_used) {
  for (std::size_t body : {0, 1, 8, 100, 4096}) {
    const std::size_t words = 1 + 3 + 1 + (body + 7) / 8; // exact
    for (std::size_t spare : {0, 1, 50}) {
      auto p = build_flat(words + spare, [&](capnp::MessageBuilder& b) { build_mesh(b, body); });
      ASSERT_TRUE(p);
      EXPECT_EQ(segment_count(p), 1u);
      const auto ref = reference_flat(body, 4096);
      ASSERT_EQ(p->size_bytes(), ref.size()) << body << " + " << spare;
      EXPECT_EQ(std::memcmp(p->data(), ref.data(), ref.size()), 0) << body << " + " << spare;
      auto v = view_mesh(*p);
      ASSERT_TRUE(v.ok()) << v.status();
      EXPECT_EQ(v->header.id, 42u);
      EXPECT_EQ(v->body.size(), body);
    }
  }
}

TEST(build_flat, a_message_that_outgrows_its_words_takes_more_segments) {
  for (std::size_t words : {0, 1, 3, 6}) {
    auto p = build_flat(words, [&](capnp::MessageBuilder& b) { build_mesh(b, 1000); });
    ASSERT_TRUE(p);
    EXPECT_GT(segment_count(p), 1u) << words;
    auto v = view_mesh(*p);
    ASSERT_TRUE(v.ok()) << v.status();
    EXPECT_EQ(v->header.id, 42u);
    ASSERT_EQ(v->body.size(), 1000u);
    for (std::size_t i = 0; i < 1000; ++i)
      ASSERT_EQ(v->body[i], static_cast<std::byte>(i * 13)) << words << " at " << i;
  }
}

TEST(build_flat, an_exception_while_building_passes_through) {
  EXPECT_THROW(build_flat(8, [](capnp::MessageBuilder&) { throw std::runtime_error("no"); }),
               std::runtime_error);
}

} // namespace
} // namespace satemu::protocol
