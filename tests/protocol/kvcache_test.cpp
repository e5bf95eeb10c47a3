// The KV chunk checksum: the same value whatever the bytes (zero filler
// takes a remembered path), and a filler chunk damaged on its way is caught.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <random>
#include <vector>

#include "protocol/kvcache.hpp"

namespace satemu::protocol {
namespace {

// kv_checksum as kvcache.hpp's format defines it, one word at a time.
std::uint64_t fmix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

std::uint64_t reference_checksum(std::uint64_t hash, std::uint32_t index, std::uint32_t tokens,
                                 const std::vector<std::byte>& data) {
  constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ULL;
  constexpr std::uint64_t k2 = 0xc2b2ae3d27d4eb4fULL;
  std::uint64_t lane[4] = {k1, k2, k1 ^ k2, k1 + k2};
  const std::size_t words = data.size() / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, data.data() + i * 8, 8);
    auto& l = lane[i < words / 4 * 4 ? i % 4 : 0];
    l = std::rotl((l ^ w) * k1, 31) * k2;
  }
  std::uint64_t tail = 0;
  for (std::size_t b = words * 8; b < data.size(); ++b)
    tail = (tail << 8) | std::to_integer<std::uint64_t>(data[b]);
  std::uint64_t h = fmix(lane[0]) ^ std::rotl(fmix(lane[1]), 16) ^ std::rotl(fmix(lane[2]), 32) ^
                    std::rotl(fmix(lane[3]), 48);
  h = fmix(h ^ tail * k2);
  h = fmix(h ^ hash);
  h = fmix(h ^ (static_cast<std::uint64_t>(index) << 32 | tokens));
  return fmix(h ^ data.size());
}

TEST(kv_checksum, zero_filler_random_and_mixed_bytes_match_the_definition) {
  std::mt19937_64 rng(7);
  std::vector<std::size_t> sizes;
  for (std::size_t n = 0; n <= 80; ++n)
    sizes.push_back(n);
  for (std::size_t n : {127, 128, 129, 4095, 12288, 12291, 524288})
    sizes.push_back(n);
  // Twice over, so that sizes leave the remembered zero lanes and come back.
  for (int round = 0; round < 2; ++round)
    for (auto n : sizes) {
      std::vector<std::byte> zeros(n);
      EXPECT_EQ(kv_checksum(0xabc, 3, 16, zeros), reference_checksum(0xabc, 3, 16, zeros)) << n;
      std::vector<std::byte> random(n);
      for (auto& b : random)
        b = static_cast<std::byte>(rng());
      EXPECT_EQ(kv_checksum(5, 1, 7, random), reference_checksum(5, 1, 7, random)) << n;
      if (n == 0)
        continue;
      // Zeros with one byte set: first, last, and in the middle.
      for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
        auto one = zeros;
        one[at] = std::byte{0x10};
        const auto sum = kv_checksum(0xabc, 3, 16, one);
        EXPECT_EQ(sum, reference_checksum(0xabc, 3, 16, one)) << n << " at " << at;
        EXPECT_NE(sum, kv_checksum(0xabc, 3, 16, zeros)) << n << " at " << at;
      }
    }
}

TEST(kv_checksum, a_filler_chunk_damaged_on_its_way_is_caught) {
  kv_message m;
  m.op = kv_op::chunk;
  m.chunk.hash = 0x1234;
  m.chunk.index = 2;
  m.chunk.tokens = 16;
  m.chunk.owner = 9;
  m.chunk.data_bytes = 524288;
  for (bool corrupt : {false, true}) {
    auto back = decode_kv(encode_kv(m, corrupt));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->chunk.checksum_ok, !corrupt);
    EXPECT_EQ(back->chunk.data_bytes, 524288u);
    if (!corrupt) {
      EXPECT_EQ(back->chunk.checksum,
                reference_checksum(0x1234, 2, 16, std::vector<std::byte>(524288)));
    }
  }
}

// encode_kv sizes each message beforehand, so that it is built in place in
// one segment (no copy); a size that fell short would show as a second one.
TEST(encode_kv, every_op_is_built_in_one_segment) {
  std::vector<kv_message> all;
  for (auto op : {kv_op::put, kv_op::chunk, kv_op::migrate_chunk})
    for (std::uint32_t bytes : {0u, 5u, 4096u, 524288u}) {
      kv_message m;
      m.op = op;
      m.chunk.data_bytes = bytes;
      all.push_back(m);
      m.chunk.data = std::make_shared<const std::vector<std::byte>>(bytes + 3, std::byte{9});
      all.push_back(m);
    }
  for (auto op : {kv_op::lookup, kv_op::lookup_reply, kv_op::get, kv_op::evict_notice})
    for (std::size_t n : {0, 1, 64, 1000}) {
      kv_message m;
      m.op = op;
      m.hashes.assign(n, 0x55);
      all.push_back(m);
    }
  kv_message m;
  m.op = kv_op::migrate;
  all.push_back(m);
  m.op = kv_op::error;
  all.push_back(m);
  m.op = kv_op::prompt;
  for (std::size_t n : {0, 1, 2, 1023}) {
    m.tokens.assign(n, 7);
    m.servers.assign(n / 2 + 1, 3);
    all.push_back(m);
  }
  m.op = kv_op::answer;
  for (std::size_t n : {0, 1, 2048}) {
    m.answer.hidden.assign(n, 0.5f);
    all.push_back(m);
  }
  for (const auto& x : all) {
    const auto p = encode_kv(x);
    ASSERT_TRUE(p);
    std::uint32_t more_segments;
    std::memcpy(&more_segments, p->data(), 4);
    EXPECT_EQ(more_segments, 0u) << static_cast<int>(x.op) << " " << x.chunk.data_bytes;
    auto back = decode_kv(p, /*keep_data=*/true);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->op, x.op);
  }
}

} // namespace
} // namespace satemu::protocol
