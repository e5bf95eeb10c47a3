// Flow packet encoding.
#include "protocol/flow.hpp"

#include "capnp/message.h"
#include "protocol/codec.hpp"
#include "protocol/envelope.hpp"
#include "protocol/flow.capnp.h"

namespace satemu::protocol {

payload_ptr encode_flow(const flow_packet& m) {
  const auto words = root_and_blob_words<schema::FlowPacket>(m.body_bytes);
  return build_flat(words, [&](capnp::MessageBuilder& builder) {
    auto root = builder.initRoot<schema::FlowPacket>();
    root.setFlow(m.flow);
    root.setSeq(m.seq);
    root.setOrigin(m.origin);
    root.setTarget(m.target);
    root.setSentNs(m.sent_ns);
    root.setPathChanged(m.path_changed);
    root.initBody(m.body_bytes);
  });
}

std::uint32_t flow_overhead_bytes() {
  static const auto bytes =
    static_cast<std::uint32_t>(envelope::header_bytes + encode_flow(flow_packet{})->size_bytes());
  return bytes;
}

absl::StatusOr<flow_packet> decode_flow(const payload_ptr& p) {
  if (!p)
    return absl::InvalidArgumentError("flow: empty payload");
  flow_packet m;
  auto st = decode_flat<schema::FlowPacket>(*p, [&](schema::FlowPacket::Reader r) {
    m.flow = r.getFlow();
    m.seq = r.getSeq();
    m.origin = r.getOrigin();
    m.target = r.getTarget();
    m.sent_ns = r.getSentNs();
    m.path_changed = r.getPathChanged();
    m.body_bytes = static_cast<std::uint32_t>(r.getBody().size());
  });
  if (!st.ok())
    return st;
  return m;
}

} // namespace satemu::protocol
