// Ping encoding.
#include "protocol/ping.hpp"

#include "capnp/message.h"
#include "protocol/codec.hpp"
#include "protocol/ping.capnp.h"

namespace satemu::protocol {

payload_ptr encode_ping(const ping_message& m) {
  const auto words = root_and_blob_words<schema::Ping>(m.body_bytes);
  return build_flat(words, [&](capnp::MessageBuilder& builder) {
    auto root = builder.initRoot<schema::Ping>();
    root.setId(m.id);
    root.setOrigin(m.origin);
    root.setTarget(m.target);
    root.setSentNs(m.sent_ns);
    root.setReply(m.reply);
    root.setArrivedNs(m.arrived_ns);
    root.setRequestHops(m.request_hops);
    root.setPathChanged(m.path_changed);
    root.initBody(m.body_bytes);
  });
}

absl::StatusOr<ping_message> decode_ping(const payload_ptr& p) {
  if (!p)
    return absl::InvalidArgumentError("ping: empty payload");
  ping_message m;
  auto st = decode_flat<schema::Ping>(*p, [&](schema::Ping::Reader r) {
    m.id = r.getId();
    m.origin = r.getOrigin();
    m.target = r.getTarget();
    m.sent_ns = r.getSentNs();
    m.reply = r.getReply();
    m.arrived_ns = r.getArrivedNs();
    m.request_hops = r.getRequestHops();
    m.path_changed = r.getPathChanged();
    m.body_bytes = static_cast<std::uint32_t>(r.getBody().size());
  });
  if (!st.ok())
    return st;
  return m;
}

} // namespace satemu::protocol
