// The node layer's actor system and connection control.
#include "runtime/detail/node_caf.hpp"

#include <vector>

#include "absl/strings/str_cat.h"
#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "caf/io/basp_broker.hpp"
#include "caf/openssl/manager.hpp"
#include "caf/openssl/publish.hpp"
#include "protocol/caf_types.hpp"
#include "runtime/detail/address_space.hpp"
#include "runtime/output.hpp"

namespace satemu::runtime {

node_system::node_system(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}

node_system::~node_system() {
  if (impl_ && impl_->sys) {
    impl_->basp = nullptr;
    impl_->sys.reset();
  }
}

std::size_t node_system::threads() const noexcept {
  return impl_->threads;
}

absl::StatusOr<std::shared_ptr<node_system>> node_system::start(const node_options& opts) {
  auto p = std::make_unique<impl>();
  const auto threads = static_cast<decltype(opts.threads)>(
    threads_or_cores(static_cast<std::int64_t>(opts.threads)));
  p->threads = threads;
  auto& cfg = p->cfg;
  cfg.set("scheduler.max-threads", threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // A frame wakes one actor at a time: with work stealing the idle workers
  // back off into millisecond sleeps between polls (see runtime/kernel.cpp).
  cfg.set("scheduler.policy", caf::atom("sharing"));
  cfg.load<caf::io::middleman>();
  // Deserialise in the middleman's own thread (TOOLCHAIN.md: faster on
  // loopback) and keep other CAF applications out at BASP's handshake.
  cfg.set("middleman.workers", std::size_t{0});
  cfg.set("middleman.app-identifiers",
          std::vector<std::string>{detail::node_app_identifier});
  cfg.set("middleman.heartbeat-interval", caf::timespan{opts.heartbeat_interval});
  cfg.set("middleman.connection-timeout", caf::timespan{opts.connection_timeout});
  if (opts.tls) {
    // CAF raises (in the middleman's thread, per connection) on a file it
    // cannot load: check them here, where an error can still be reported.
    if (auto st = check_tls_files(*opts.tls); !st.ok())
      return st;
    // With any of these set, CAF's OpenSSL module requires and verifies a
    // certificate from the peer on both sides of every connection.
    cfg.load<caf::openssl::manager>();
    cfg.openssl_certificate = opts.tls->cert;
    cfg.openssl_key = opts.tls->key;
    cfg.openssl_cafile = opts.tls->ca;
    p->tls = true;
  }
  protocol::register_protocol_types(cfg);
  // A thread CAF starts with no room left under an address-space limit ends
  // the process (std::terminate, or in the allocator), with no word.
  if (const std::size_t n = threads + detail::caf_extra_threads + 1;
      !detail::address_space_room(n * detail::thread_room_bytes))
    return absl::ResourceExhaustedError(
      absl::StrCat("out of memory: no room to start the node's ", n,
                   " threads: let the process take more memory (ulimit -v)"));
  try {
    p->sys = std::make_unique<caf::actor_system>(cfg);
  } catch (const std::exception& e) {
    return absl::InternalError(std::string("cannot start the CAF actor system: ") + e.what());
  }
  // The broker exists once the middleman has started; looking it up is a
  // plain map read from now on.
  p->basp = p->sys->middleman().named_broker<caf::io::basp_broker>(caf::atom("BASP"));
  return std::shared_ptr<node_system>(new node_system(std::move(p)));
}

namespace detail {

void close_connection(node_system::impl& s, const caf::node_id& nid) {
  if (!s.sys || !s.basp || nid == caf::none)
    return;
  s.sys->middleman().backend().post([broker = s.basp, nid] {
    auto* b = dynamic_cast<caf::io::basp_broker*>(caf::actor_cast<caf::abstract_actor*>(broker));
    if (b == nullptr || b->getf(caf::abstract_actor::is_terminated_flag))
      return;
    auto hdl = b->instance.tbl().lookup_direct(nid);
    if (!hdl)
      return;
    b->connection_cleanup(*hdl, caf::sec::none);
    b->close(*hdl);
  });
}

caf::io::middleman_actor connector(node_system::impl& s) {
  return s.tls ? s.sys->openssl_manager().actor_handle() : s.sys->middleman().actor_handle();
}

caf::expected<std::uint16_t> publish(node_system::impl& s, const caf::actor& whom,
                                     std::uint16_t port, const std::string& addr) {
  if (s.tls)
    return caf::openssl::publish(whom, port, addr.c_str(), true);
  return s.sys->middleman().publish(whom, port, addr.c_str(), true);
}

std::string render(caf::actor_system& sys, const caf::error& err) {
  if (!err)
    return "no error";
  // CAF's name of the error stays, in brackets, after what it means here.
  const char* meaning = nullptr;
  if (err == caf::exit_reason::remote_link_unreachable)
    meaning = "connection lost: the process exited, was killed or stopped answering (no "
              "heartbeat for 5 s), or the network failed";
  else if (err == caf::sec::connection_timeout)
    meaning = "connected, but CAF's handshake got no answer in time: is it a satemu worker, and "
              "running (a stopped or overloaded process accepts connections but answers nothing)?";
  else if (err == caf::sec::malformed_basp_message)
    meaning = "the peer does not speak CAF's protocol: is it a satemu worker?";
  else if (err == caf::sec::cannot_open_port)
    meaning = "cannot open the port: is it in use (by another worker?), or the address not one "
              "of this host?";
  return meaning != nullptr ? absl::StrCat(meaning, " [", sys.render(err), "]") : sys.render(err);
}

std::string short_node_id(const caf::node_id& nid) {
  auto s = caf::to_string(nid);
  return s.size() > 24 ? s.substr(0, 24) + "..." : s;
}

} // namespace detail
} // namespace satemu::runtime
