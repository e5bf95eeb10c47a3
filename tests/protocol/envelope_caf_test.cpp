// CAF (0.17) serialisation of envelopes: the cross-process path.

#include "protocol/envelope.hpp"

#include <vector>

#include <gtest/gtest.h>

#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "caf/deep_to_string.hpp"
#include "caf/message.hpp"
#include "caf/sec.hpp"
#include "protocol/caf_types.hpp"
#include "protocol/mesh.hpp"

namespace satemu::protocol {
namespace {

envelope make_envelope(std::uint64_t seq, std::size_t body_bytes) {
  envelope e;
  e.src = 12;
  e.dst = 34567;
  e.send_ns = 1'000'000'007;
  e.deliver_ns = -5;
  e.seq = seq;
  e.hops = 3;
  e.k = kind::mesh;
  e.body = encode_mesh({e.src, e.dst, e.send_ns, seq, body_bytes});
  return e;
}

template <class T>
std::vector<char> save(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  auto err = sink(x);
  EXPECT_FALSE(err);
  return buf;
}

template <class T>
caf::error load(const std::vector<char>& buf, T& x) {
  caf::binary_deserializer source{nullptr, buf};
  return source(x);
}

TEST(envelope_caf, single_round_trip) {
  for (std::size_t n : {0u, 1u, 256u, 65536u}) {
    auto e = make_envelope(n, n);
    auto buf = save(e);
    EXPECT_GE(buf.size(), e.body.size_bytes());
    envelope out;
    ASSERT_FALSE(load(buf, out)) << n;
    EXPECT_EQ(out.src, e.src);
    EXPECT_EQ(out.dst, e.dst);
    EXPECT_EQ(out.send_ns, e.send_ns);
    EXPECT_EQ(out.deliver_ns, e.deliver_ns);
    EXPECT_EQ(out.seq, e.seq);
    EXPECT_EQ(out.hops, e.hops);
    EXPECT_EQ(out.k, e.k);
    ASSERT_EQ(out.body.size_bytes(), e.body.size_bytes());
    EXPECT_NE(out.body->data(), e.body->data());
    EXPECT_TRUE(same_bytes(out.body, e.body));
    EXPECT_EQ(out, e);
    auto m = decode_mesh(*out.body);
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->body_bytes, n);
  }
}

TEST(envelope_caf, null_body_round_trip) {
  envelope e;
  e.src = 1;
  e.k = kind::timer;
  auto buf = save(e);
  envelope out;
  out.body = encode_mesh({});
  ASSERT_FALSE(load(buf, out));
  EXPECT_FALSE(out.body);
  EXPECT_EQ(out, e);
}

TEST(envelope_caf, vector_round_trip) {
  std::vector<envelope> xs;
  for (std::uint64_t i = 0; i < 10; ++i)
    xs.push_back(make_envelope(i, i * 100));
  xs.push_back(envelope{});
  auto buf = save(xs);
  std::vector<envelope> out;
  ASSERT_FALSE(load(buf, out));
  ASSERT_EQ(out.size(), xs.size());
  for (std::size_t i = 0; i < xs.size(); ++i)
    EXPECT_EQ(out[i], xs[i]) << i;
}

TEST(envelope_caf, truncated_input_is_an_error) {
  auto e = make_envelope(9, 64);
  auto buf = save(e);
  for (std::size_t n = 0; n < buf.size(); ++n) {
    std::vector<char> prefix(buf.begin(), buf.begin() + n);
    envelope out;
    EXPECT_TRUE(load(prefix, out)) << n;
  }
}

TEST(envelope_caf, bad_body_length_is_an_error) {
  envelope header_only;
  auto buf = save(header_only);
  // The last byte is the body length (varbyte 0). Replace it by lengths that
  // are not a multiple of 8, or far larger than the input, or enormous.
  ASSERT_EQ(buf.back(), 0);
  auto with_len = [&](std::vector<std::uint8_t> varbyte) {
    auto b = buf;
    b.pop_back();
    for (auto c : varbyte)
      b.push_back(static_cast<char>(c));
    b.resize(b.size() + 16, 0);
    return b;
  };
  envelope out;
  auto err = load(with_len({5}), out);
  EXPECT_EQ(err, caf::sec::invalid_argument);
  EXPECT_FALSE(out.body);
  err = load(with_len({0x80, 0x01}), out); // 128: multiple of 8, too long
  EXPECT_EQ(err, caf::sec::end_of_stream);
  err = load(with_len({0x80, 0x80, 0x80, 0x80, 0x08}), out); // 2^31
  EXPECT_EQ(err, caf::sec::invalid_argument);
}

TEST(envelope_caf, deep_to_string_is_readable) {
  auto e = make_envelope(5, 8);
  auto str = caf::deep_to_string(e);
  EXPECT_NE(str.find("seq=5"), std::string::npos) << str;
  EXPECT_NE(str.find("kind=mesh"), std::string::npos) << str;
}

TEST(envelope_caf, registered_types_cross_as_messages) {
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  register_protocol_types(cfg);
  caf::actor_system sys{cfg};
  auto e = make_envelope(77, 512);
  std::vector<envelope> batch{make_envelope(1, 8), make_envelope(2, 0)};
  auto msg = caf::make_message(e, batch);
  std::vector<char> buf;
  {
    caf::binary_serializer sink{sys, buf};
    ASSERT_FALSE(sink(msg));
  }
  caf::message out;
  caf::binary_deserializer source{sys, buf};
  auto err = source(out);
  ASSERT_FALSE(err) << sys.render(err);
  ASSERT_TRUE((out.match_elements<envelope, std::vector<envelope>>()));
  EXPECT_EQ(out.get_as<envelope>(0), e);
  EXPECT_EQ(out.get_as<std::vector<envelope>>(1), batch);
  EXPECT_TRUE(sys.types().make_value("satemu::envelope") != nullptr);
  EXPECT_TRUE(sys.types().make_value("std::vector<satemu::envelope>") != nullptr);
}

TEST(envelope_caf, unregistered_types_do_not_load) {
  // Guards the test above: without registration the message cannot be read.
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  EXPECT_TRUE(sys.types().make_value("satemu::envelope") == nullptr);
}

} // namespace
} // namespace satemu::protocol
