// Mesh test traffic encoding.

#include "protocol/mesh.hpp"

#include <algorithm>
#include <cstring>

#include "capnp/message.h"
#include "protocol/codec.hpp"
#include "protocol/mesh.capnp.h"

namespace satemu::protocol {

namespace {

template <class Fill>
payload_ptr encode_mesh_impl(const mesh_message& m, std::size_t body_bytes,
                             Fill&& fill) {
  if (body_bytes > max_mesh_body_bytes)
    return payload_ptr{};
  const auto words = root_and_blob_words<schema::MeshMessage>(body_bytes);
  return build_flat(words, [&](capnp::MessageBuilder& builder) {
    auto root = builder.initRoot<schema::MeshMessage>();
    root.setOrigin(m.origin);
    root.setTarget(m.target);
    root.setCreatedNs(m.created_ns);
    root.setId(m.id);
    auto body = root.initBody(static_cast<unsigned>(body_bytes));
    fill(std::span<std::byte>{reinterpret_cast<std::byte*>(body.begin()), body.size()});
  });
}

} // namespace

void fill_mesh_pattern(std::uint64_t id, std::span<std::byte> out) noexcept {
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = mesh_pattern_byte(id, i);
}

bool is_mesh_pattern(std::uint64_t id, std::span<const std::byte> body) noexcept {
  for (std::size_t i = 0; i < body.size(); ++i)
    if (body[i] != mesh_pattern_byte(id, i))
      return false;
  return true;
}

payload_ptr encode_mesh(const mesh_message& m, std::span<const std::byte> body) {
  return encode_mesh_impl(m, body.size(), [&](std::span<std::byte> out) {
    if (!body.empty())
      std::memcpy(out.data(), body.data(), body.size());
  });
}

payload_ptr encode_mesh(const mesh_message& m) {
  return encode_mesh_impl(m, m.body_bytes, [&](std::span<std::byte> out) {
    fill_mesh_pattern(m.id, out);
  });
}

absl::StatusOr<mesh_view> view_mesh(const payload& p) {
  mesh_view result;
  auto st = decode_flat<schema::MeshMessage>(p, [&](schema::MeshMessage::Reader r) {
    result.header.origin = r.getOrigin();
    result.header.target = r.getTarget();
    result.header.created_ns = r.getCreatedNs();
    result.header.id = r.getId();
    auto body = r.getBody();
    result.header.body_bytes = body.size();
    result.body = {reinterpret_cast<const std::byte*>(body.begin()),
                   body.size()};
  });
  if (!st.ok())
    return st;
  return result;
}

absl::StatusOr<mesh_message> decode_mesh(const payload& p) {
  auto v = view_mesh(p);
  if (!v.ok())
    return v.status();
  return v->header;
}

absl::StatusOr<mesh_message> decode_mesh(const payload_ptr& p) {
  if (!p)
    return absl::InvalidArgumentError("empty payload: no mesh message");
  return decode_mesh(*p);
}

absl::StatusOr<mesh_view> view_mesh(const payload_ptr& p) {
  if (!p)
    return absl::InvalidArgumentError("empty payload: no mesh message");
  return view_mesh(*p);
}

} // namespace satemu::protocol
