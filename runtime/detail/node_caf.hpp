/// CAF side of the node layer (runtime/node.hpp): the actor system behind
/// `node_system`, closing one peer's connection, and small helpers shared by
/// the worker's gate and the coordinator's link. Private to runtime/ (it
/// includes CAF; runtime/node.hpp does not).
#pragma once

#include <memory>
#include <string>

#include "caf/actor.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/atom.hpp"
#include "caf/io/middleman_actor.hpp"
#include "caf/node_id.hpp"
#include "runtime/node.hpp"

namespace satemu::runtime {

struct node_system::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  /// The middleman's BASP broker (owns every connection to other nodes).
  caf::actor basp;
  std::size_t threads = 0;
  /// Connections go through CAF's OpenSSL module (mutual TLS).
  bool tls = false;
};

namespace detail {

/// Messages the gate and the link send themselves.
using node_timeout_atom = caf::atom_constant<caf::atom("ndtimeout")>;
using node_close_atom = caf::atom_constant<caf::atom("ndclose")>;

/// CAF's application identifier for satemu nodes: a CAF node of another
/// application is turned away by BASP's own handshake.
inline constexpr const char* node_app_identifier = "satemu-node-v1";

/// Closes the direct connection to `nid`, if any, the way the BASP broker
/// closes a connection on a protocol error: `connection_cleanup` (routing
/// table, proxies: actors of that node go down) then a graceful `close`
/// (unwritten data is still sent). Runs inside the middleman's event loop,
/// the thread that owns the broker's state; returns at once.
void close_connection(node_system::impl& s, const caf::node_id& nid);

/// The actor that opens this system's connections and publishes its actors:
/// CAF's OpenSSL middleman actor with TLS, the plain middleman's otherwise.
/// Both hand their connections to the same BASP broker (`impl::basp`).
caf::io::middleman_actor connector(node_system::impl& s);

/// Publishes `whom` at `addr`:`port` (0 = any free port; SO_REUSEADDR) over
/// TLS or plain TCP as the system is configured; returns the bound port.
caf::expected<std::uint16_t> publish(node_system::impl& s, const caf::actor& whom,
                                     std::uint16_t port, const std::string& addr);

/// `sys.render(err)`, or "no error".
std::string render(caf::actor_system& sys, const caf::error& err);

/// Short printable node id for logs.
std::string short_node_id(const caf::node_id& nid);

} // namespace detail
} // namespace satemu::runtime
