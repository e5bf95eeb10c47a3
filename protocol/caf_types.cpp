// CAF type registration for the protocol layer.

#include "protocol/caf_types.hpp"

#include <vector>

#include "caf/actor_system_config.hpp"
#include "protocol/envelope.hpp"
#include "protocol/node.hpp"

namespace satemu::protocol {

void register_protocol_types(caf::actor_system_config& cfg) {
  // add_message_type<T> also registers std::vector<T> and stream<T>, so the
  // batch type needs no separate call (a second one would register
  // std::vector<std::vector<envelope>> under a confusing name).
  cfg.add_message_type<envelope>("satemu::envelope");
  // Frames between the nodes of a distributed run (protocol/node.hpp).
  cfg.add_message_type<node_frame>("satemu::node_frame");
}

} // namespace satemu::protocol
