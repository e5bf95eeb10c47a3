// The worker node: its gate actor (handshake, session) and `worker_node`.
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "runtime/detail/address_space.hpp"
#include "runtime/detail/node_caf.hpp"
#include "runtime/detail/worker_run.hpp"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"

namespace satemu::runtime {

namespace {

using protocol::node_message;

/// How the session ended, for `worker_node::wait`.
struct worker_outcome {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  absl::Status result;

  void finish(absl::Status st) {
    {
      std::lock_guard<std::mutex> guard(mu);
      if (done)
        return;
      done = true;
      result = std::move(st);
    }
    cv.notify_all();
  }
};

/// The run a session hosts, shared by the gate (which starts it and feeds it
/// grants) and `worker_node` (which waits for its thread), and the frames
/// the run thread has queued for the coordinator.
struct run_slot {
  std::mutex mu;
  std::unique_ptr<detail::worker_run> run;
  std::deque<std::string> outbound;
  /// Why the worker's owner stops it (worker_node::stop); the gate tells its
  /// coordinator as it exits.
  std::string stopping;
  /// A run was set up in the session; its results went out; why it was
  /// aborted (by the coordinator, or by this worker), if it was.
  bool set_up = false;
  bool results_sent = false;
  std::string aborted;

  /// How the session ended for its run, once the coordinator ends it: OK
  /// when the run's results went out (or no run was set up), Aborted
  /// otherwise.
  absl::Status ended() {
    std::lock_guard<std::mutex> guard(mu);
    if (!set_up || results_sent)
      return absl::OkStatus();
    return absl::AbortedError(absl::StrCat(
      "the session ended before the run completed",
      aborted.empty() ? "" : absl::StrCat(" (aborted: ", aborted, ")")));
  }

  void reset() {
    std::unique_ptr<detail::worker_run> r;
    {
      std::lock_guard<std::mutex> guard(mu);
      r = std::move(run);
    }
    r.reset(); // aborts and joins outside the lock
  }
};

using node_flush_atom = caf::atom_constant<caf::atom("ndflush")>;

/// What the gate needs of the options (the rest stays with `worker_node`).
struct gate_config {
  std::string secret;
  std::chrono::milliseconds handshake_timeout;
  std::size_t max_pending;
  std::chrono::milliseconds close_delay;
  std::function<void(const std::string&)> log;
  std::string software;
  std::uint32_t threads;
  std::size_t run_threads;
  std::function<absl::StatusOr<hosted_run>(const std::string&)> build_run;
  std::size_t run_room_bytes;
};

enum class phase { fresh, challenged, accepted, refused };

struct peer {
  caf::actor handle;
  std::string label; // "127.0.0.1:43210", or the node id until known
  phase ph = phase::fresh;
  std::uint64_t attempt = 0;
  std::string coordinator_nonce;
  std::string worker_nonce;
  std::string software;
  node_crypto::frame_sealer sealer;
  node_crypto::frame_opener opener;
  std::uint64_t dropped = 0;
};

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

/// The actor a worker publishes. Every peer is a CAF node; it goes through
/// the handshake (runtime/node.hpp) before anything else, and one accepted
/// coordinator then holds the session. Peers are keyed by node: CAF keeps
/// one connection per pair of nodes, and that is what a refusal closes.
class gate_actor final : public caf::event_based_actor {
public:
  gate_actor(caf::actor_config& cfg, node_system::impl* sys, gate_config conf,
             std::shared_ptr<worker_outcome> outcome, std::shared_ptr<run_slot> slot)
    : caf::event_based_actor(cfg), sys_(sys), conf_(std::move(conf)),
      outcome_(std::move(outcome)), slot_(std::move(slot)) {
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& dm) { on_down(dm); });
    // Exit messages end the gate as by default; one that worker_node::stop
    // sent first tells the coordinator why, which would otherwise see the run
    // vanish under its next grant.
    set_exit_handler([this](caf::exit_msg& x) {
      std::string why;
      {
        std::lock_guard<std::mutex> guard(slot_->mu);
        why = slot_->stopping;
      }
      if (!why.empty() && session_)
        if (auto it = peers_.find(*session_); it != peers_.end())
          reply_sealed(it->second, protocol::node_abort{why});
      quit(x.reason);
    });
    set_default_handler([this](caf::scheduled_actor*,
                               caf::message_view& x) -> caf::result<caf::message> {
      // Name the types only: printing untrusted content could be huge.
      std::string types;
      const auto& content = x.content();
      for (std::size_t i = 0; i < content.size() && i < 8; ++i)
        absl::StrAppend(&types, i > 0 ? ", " : "", system().types().portable_name(content.type(i)));
      const auto& sender = current_sender();
      log(absl::StrCat("dropped a message that is not a frame (", types, ") from ",
                       sender ? label_of(sender->node()) : std::string("an anonymous sender")));
      return caf::sec::unexpected_message;
    });
    return {
      [this](protocol::node_frame& f) { on_frame(f); },
      // The run thread queued frames for the coordinator. Only local code can
      // fill the queue, so a peer sending this atom achieves nothing.
      [this](node_flush_atom) { flush_outbound(); },
      [this](detail::node_timeout_atom, const caf::node_id& nid, std::uint64_t attempt) {
        if (!from_self())
          return;
        auto it = peers_.find(nid);
        if (it != peers_.end() && it->second.attempt == attempt
            && (it->second.ph == phase::fresh || it->second.ph == phase::challenged))
          refuse(it->first, it->second,
                 absl::StrCat("handshake not completed within ", conf_.handshake_timeout.count(),
                              " ms"));
      },
      [this](detail::node_close_atom, const caf::node_id& nid) {
        if (!from_self())
          return;
        auto it = peers_.find(nid);
        if (it == peers_.end() || it->second.ph != phase::refused)
          return;
        detail::close_connection(*sys_, nid);
        peers_.erase(it);
      },
    };
  }

private:
  // Internal messages must come from this actor. (BASP lets a peer claim
  // any sender, so this is hygiene, not a defence: see node.hpp.)
  bool from_self() {
    const auto& s = current_sender();
    return s != nullptr && s == ctrl();
  }

  void log(const std::string& line) {
    conf_.log(line);
  }

  std::string label_of(const caf::node_id& nid) const {
    auto it = peers_.find(nid);
    if (it != peers_.end())
      return it->second.label;
    return absl::StrCat("node ", detail::short_node_id(nid));
  }

  std::size_t pending() const {
    std::size_t n = 0;
    for (const auto& [nid, p] : peers_)
      if (p.ph == phase::fresh || p.ph == phase::challenged)
        ++n;
    return n;
  }

  void on_frame(const protocol::node_frame& f) {
    const auto& sender = current_sender();
    if (sender == nullptr) {
      log("dropped a frame without a sender");
      return;
    }
    const auto nid = sender->node();
    if (nid == node()) {
      log("dropped a frame from this node's own actors");
      return;
    }
    if (auto it = peers_.find(nid); it != peers_.end()) {
      handle(it->first, it->second, f);
      return;
    }
    // A new peer: learn its address for the logs first (frames that arrive
    // meanwhile wait in the mailbox), then handle the frame.
    auto& p = peers_[nid];
    p.handle = caf::actor_cast<caf::actor>(sender);
    p.label = absl::StrCat("node ", detail::short_node_id(nid));
    p.attempt = ++attempts_;
    monitor(p.handle);
    delayed_send(this, conf_.handshake_timeout, detail::node_timeout_atom::value, nid, p.attempt);
    if (f.bytes.size() > protocol::max_handshake_frame_bytes) {
      handle(nid, p, f); // refused at once, without copying it
      return;
    }
    auto frame = f;
    request(sys_->sys->middleman().actor_handle(), std::chrono::seconds(5), caf::get_atom::value,
            nid)
      .await(
        [this, nid, frame](const caf::node_id&, const std::string& host, std::uint16_t port) {
          auto it = peers_.find(nid);
          if (it == peers_.end())
            return;
          if (!host.empty())
            it->second.label = node_address{host, port}.to_string();
          handle(it->first, it->second, frame);
        },
        [this, nid, frame](const caf::error&) {
          if (auto it = peers_.find(nid); it != peers_.end())
            handle(it->first, it->second, frame);
        });
  }

  void handle(const caf::node_id& nid, peer& p, const protocol::node_frame& f) {
    switch (p.ph) {
      case phase::refused:
        // Log a few, not a flood.
        if (++p.dropped <= 3)
          log(absl::StrCat("dropped a frame from refused peer ", p.label));
        return;
      case phase::accepted:
        session_frame(p, f);
        return;
      case phase::fresh:
      case phase::challenged:
        handshake_frame(nid, p, f);
        return;
    }
  }

  /// The encoding of a reply to `p`; nothing, logged, for one too big to
  /// send (which a reply to a frame that arrived cannot be).
  std::optional<std::string> encode_reply(const peer& p, const node_message& m) {
    auto bytes = protocol::encode_node_message(m);
    if (!bytes.ok()) {
      log(absl::StrCat("cannot reply to ", p.label, ": ", bytes.status().message()));
      return std::nullopt;
    }
    return std::move(*bytes);
  }

  void reply_plain(peer& p, const node_message& m) {
    auto bytes = encode_reply(p, m);
    if (!bytes)
      return;
    protocol::node_frame f;
    f.bytes = std::move(*bytes);
    send(p.handle, std::move(f));
  }

  void reply_sealed(peer& p, const node_message& m) {
    if (auto bytes = encode_reply(p, m))
      send(p.handle, p.sealer.seal(std::move(*bytes)));
  }

  void refuse(const caf::node_id& nid, peer& p, const std::string& reason) {
    log(absl::StrCat("refused ", p.label, ": ", reason));
    reply_plain(p, protocol::node_refused{reason});
    p.ph = phase::refused;
    // Close a moment later, once the refusal has left.
    delayed_send(this, conf_.close_delay, detail::node_close_atom::value, nid);
  }

  void handshake_frame(const caf::node_id& nid, peer& p, const protocol::node_frame& f) {
    if (!f.tag.empty() || f.seq != 0) {
      refuse(nid, p, "frame carries a session MAC before the handshake");
      return;
    }
    if (f.bytes.size() > protocol::max_handshake_frame_bytes) {
      refuse(nid, p,
             absl::StrCat("a frame of ", f.bytes.size(), " bytes before authentication (at most ",
                          protocol::max_handshake_frame_bytes, ")"));
      return;
    }
    auto m = protocol::decode_node_message(f.bytes);
    if (!m.ok()) {
      refuse(nid, p, absl::StrCat("malformed frame before authentication: ", m.status().message()));
      return;
    }
    if (p.ph == phase::fresh) {
      auto* hello = std::get_if<protocol::node_hello>(&*m);
      if (hello == nullptr) {
        refuse(nid, p,
               absl::StrCat("expected a hello, got ", std::string(protocol::node_kind_name(*m))));
        return;
      }
      if (hello->version != protocol::node_protocol_version) {
        refuse(nid, p, absl::StrCat("protocol version ", hello->version, ", this worker speaks ",
                                    protocol::node_protocol_version));
        return;
      }
      if (hello->nonce.size() != protocol::node_nonce_bytes) {
        refuse(nid, p, absl::StrCat("hello with a nonce of ", hello->nonce.size(),
                                    " bytes (expected ", protocol::node_nonce_bytes, ")"));
        return;
      }
      if (pending() > conf_.max_pending) {
        refuse(nid, p, "too many handshakes in progress");
        return;
      }
      auto nonce = node_crypto::random_bytes(protocol::node_nonce_bytes);
      if (!nonce.ok()) {
        refuse(nid, p, std::string(nonce.status().message()));
        return;
      }
      p.coordinator_nonce = hello->nonce;
      p.worker_nonce = *nonce;
      p.software = hello->software.substr(0, 80);
      p.ph = phase::challenged;
      reply_plain(p, protocol::node_challenge{*nonce});
      return;
    }
    // phase::challenged
    auto* response = std::get_if<protocol::node_response>(&*m);
    if (response == nullptr) {
      refuse(nid, p,
             absl::StrCat("expected a response, got ", std::string(protocol::node_kind_name(*m))));
      return;
    }
    const auto expected =
      node_crypto::coordinator_mac(conf_.secret, p.worker_nonce, p.coordinator_nonce);
    if (!node_crypto::equal_constant_time(response->mac, expected)) {
      refuse(nid, p, "authentication failed (wrong secret)");
      return;
    }
    // Only a peer that knows the secret learns that the worker is busy, and
    // with whom.
    if (session_) {
      refuse(nid, p, absl::StrCat("busy: serving coordinator ", label_of(*session_)));
      return;
    }
    const auto key = node_crypto::session_key(conf_.secret, p.worker_nonce, p.coordinator_nonce);
    p.sealer = node_crypto::frame_sealer(key, node_crypto::frame_direction::to_coordinator);
    p.opener = node_crypto::frame_opener(key, node_crypto::frame_direction::to_worker);
    p.ph = phase::accepted;
    session_ = nid;
    log(absl::StrCat("accepted coordinator ", p.label,
                     p.software.empty() ? "" : absl::StrCat(" (", p.software, ")")));
    reply_plain(p, protocol::node_accepted{
                     node_crypto::worker_proof(conf_.secret, p.coordinator_nonce, p.worker_nonce),
                     conf_.threads, conf_.software});
  }

  /// Whether the session that is ending is one whose coordinator aborted
  /// it, or went down, before setting up a run, so the worker goes on to
  /// serve the next coordinator: one that gave up before its run (on
  /// another worker it could not take, say) or died before it does not use
  /// this one up, since nothing of a run was lost here.
  bool wait_again(const std::string& coordinator, bool went_down) {
    {
      std::lock_guard<std::mutex> guard(slot_->mu);
      if (slot_->set_up || (slot_->aborted.empty() && !went_down) || !slot_->stopping.empty())
        return false;
      slot_->outbound.clear();
      slot_->aborted.clear();
    }
    log(absl::StrCat("coordinator ", coordinator, went_down ? " went down" : " gave up",
                     " before setting up a run; waiting for a coordinator"));
    return true;
  }

  void flush_outbound() {
    std::deque<std::string> frames;
    {
      std::lock_guard<std::mutex> guard(slot_->mu);
      frames.swap(slot_->outbound);
    }
    if (!session_)
      return;
    auto it = peers_.find(*session_);
    if (it == peers_.end() || it->second.ph != phase::accepted)
      return;
    for (auto& bytes : frames)
      send(it->second.handle, it->second.sealer.seal(std::move(bytes)));
  }

  void start_run(peer& p, protocol::node_setup& setup) {
    if (!conf_.build_run) {
      reply_sealed(p, protocol::node_error{protocol::node_error_code::unsupported_frame,
                                           "this worker does not host runs"});
      return;
    }
    std::lock_guard<std::mutex> guard(slot_->mu);
    if (slot_->run) {
      log(absl::StrCat("coordinator ", p.label, " sent a second setup"));
      reply_sealed(p, protocol::node_error{protocol::node_error_code::unexpected_frame,
                                           "a run is already set up in this session"});
      return;
    }
    if (!detail::address_space_room(conf_.run_room_bytes)) {
      std::string why =
        absl::StrCat("out of memory on this worker as the run started: ", out_of_memory_advice);
      log(absl::StrCat("cannot run the scenario: ", why));
      if (slot_->aborted.empty())
        slot_->aborted = why;
      reply_sealed(p, protocol::node_refused{std::move(why)});
      return;
    }
    auto self = caf::actor_cast<caf::actor>(this);
    auto slot = slot_;
    auto send_fn = [self, slot](protocol::node_message m) {
      auto bytes = protocol::encode_node_message(m);
      if (!bytes.ok()) {
        // Too big for one frame: the run cannot go on without it.
        m = protocol::node_abort{absl::StrCat("the worker cannot send its ",
                                              std::string(protocol::node_kind_name(m)), ": ",
                                              bytes.status().message())};
        bytes = protocol::encode_node_message(m);
      }
      {
        std::lock_guard<std::mutex> g(slot->mu);
        if (std::holds_alternative<protocol::node_results>(m))
          slot->results_sent = true;
        if (const auto* a = std::get_if<protocol::node_abort>(&m); a && slot->aborted.empty())
          slot->aborted = a->reason;
        if (const auto* r = std::get_if<protocol::node_refused>(&m); r && slot->aborted.empty())
          slot->aborted = r->reason;
        slot->outbound.push_back(std::move(*bytes));
      }
      caf::anon_send(self, node_flush_atom::value);
    };
    slot_->run = std::make_unique<detail::worker_run>(conf_.build_run, std::move(send_fn),
                                                      conf_.log, conf_.run_threads);
    slot_->set_up = true;
    log(absl::StrCat("coordinator ", p.label, " set up a run (node ", setup.node, " of ",
                     setup.nodes, ", ", setup.node_of.size(), " entities)"));
    slot_->run->start(std::move(setup));
  }

  void grant_run(peer& p, protocol::node_grant& g) {
    std::lock_guard<std::mutex> guard(slot_->mu);
    if (!slot_->run) {
      // A worker being stopped has ended its run: its abort says why.
      if (slot_->stopping.empty())
        reply_sealed(p, protocol::node_error{protocol::node_error_code::unexpected_frame,
                                             "a grant before any setup"});
      return;
    }
    slot_->run->grant(std::move(g));
  }

  void abort_run() {
    std::lock_guard<std::mutex> guard(slot_->mu);
    if (slot_->run)
      slot_->run->abort();
  }

  void session_frame(peer& p, const protocol::node_frame& f) {
    if (auto st = p.opener.open(f); !st.ok()) {
      log(absl::StrCat("rejected a frame from coordinator ", p.label, ": ", st.message()));
      reply_sealed(p, protocol::node_error{protocol::node_error_code::unauthenticated_frame,
                                           std::string(st.message())});
      return;
    }
    auto m = protocol::decode_node_message(f.bytes);
    if (!m.ok()) {
      const bool unknown = absl::IsUnimplemented(m.status());
      log(absl::StrCat(unknown ? "unsupported" : "malformed", " frame from coordinator ", p.label,
                       ": ", m.status().message()));
      reply_sealed(p, protocol::node_error{unknown ? protocol::node_error_code::unsupported_frame
                                                   : protocol::node_error_code::malformed_frame,
                                           std::string(m.status().message())});
      return;
    }
    std::visit(overloaded{
                 [&](protocol::node_ping& x) {
                   reply_sealed(p, protocol::node_pong{x.seq, std::move(x.data)});
                 },
                 [&](protocol::node_setup& x) { start_run(p, x); },
                 [&](protocol::node_grant& x) { grant_run(p, x); },
                 [&](protocol::node_abort& x) {
                   log(absl::StrCat("coordinator ", p.label, " aborted the run: ", x.reason));
                   {
                     std::lock_guard<std::mutex> guard(slot_->mu);
                     if (slot_->aborted.empty())
                       slot_->aborted = x.reason;
                   }
                   abort_run();
                 },
                 [&](protocol::node_end& x) {
                   abort_run();
                   flush_outbound();
                   log(absl::StrCat("coordinator ", p.label, " ended the session",
                                    x.reason.empty() ? "" : absl::StrCat(": ", x.reason)));
                   reply_sealed(p, protocol::node_end{"worker done"});
                   if (wait_again(p.label, false)) {
                     // Closed a moment later, once the reply has left.
                     p.ph = phase::refused;
                     delayed_send(this, conf_.close_delay, detail::node_close_atom::value,
                                  *std::exchange(session_, std::nullopt));
                     return;
                   }
                   outcome_->finish(slot_->ended());
                   quit();
                 },
                 [&](protocol::node_error& x) {
                   log(absl::StrCat("coordinator ", p.label, " reported ",
                                    protocol::node_error_code_name(x.code), ": ", x.message));
                 },
                 [&](auto& x) {
                   const node_message tmp{x};
                   const std::string kind(protocol::node_kind_name(tmp));
                   log(absl::StrCat("unexpected ", kind, " frame from coordinator ", p.label));
                   reply_sealed(p, protocol::node_error{
                                     protocol::node_error_code::unexpected_frame,
                                     absl::StrCat(kind, " is not expected in a session")});
                 },
               },
               *m);
  }

  void on_down(const caf::down_msg& dm) {
    const auto nid = dm.source.node();
    auto it = peers_.find(nid);
    if (it == peers_.end() || dm.source != it->second.handle.address())
      return;
    if (session_ && *session_ == nid) {
      abort_run();
      const auto reason = detail::render(system(), dm.reason);
      log(absl::StrCat("coordinator ", it->second.label, " went down (", reason, ")"));
      if (wait_again(it->second.label, true)) {
        session_.reset();
        peers_.erase(it);
        return;
      }
      outcome_->finish(absl::UnavailableError(absl::StrCat(
        "coordinator ", it->second.label, " went down (", reason, ") before ending the session")));
      quit();
      return;
    }
    if (it->second.ph != phase::refused)
      log(absl::StrCat("peer ", it->second.label, " disconnected before authenticating"));
    peers_.erase(it);
  }

  node_system::impl* sys_;
  gate_config conf_;
  std::shared_ptr<worker_outcome> outcome_;
  std::shared_ptr<run_slot> slot_;
  std::map<caf::node_id, peer> peers_;
  std::optional<caf::node_id> session_;
  std::uint64_t attempts_ = 0;
};

} // namespace

struct worker_node::impl {
  std::shared_ptr<node_system> system;
  node_address bound;
  caf::actor gate;
  std::shared_ptr<worker_outcome> outcome = std::make_shared<worker_outcome>();
  std::shared_ptr<run_slot> slot = std::make_shared<run_slot>();

  ~impl() {
    slot->reset();
    if (gate) {
      caf::anon_send_exit(gate, caf::exit_reason::user_shutdown);
      gate = nullptr;
    }
  }
};

worker_node::worker_node(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}
worker_node::worker_node(worker_node&&) noexcept = default;
worker_node& worker_node::operator=(worker_node&&) noexcept = default;
worker_node::~worker_node() = default;

const node_address& worker_node::address() const noexcept {
  return impl_->bound;
}

absl::StatusOr<worker_node> worker_node::start(worker_options opts) {
  if (opts.secret.empty())
    return absl::InvalidArgumentError("a worker needs a non-empty shared secret");
  if (opts.listen.host.empty())
    opts.listen.host = "127.0.0.1";
  auto sys = node_system::start(opts.node);
  if (!sys.ok())
    return sys.status();
  auto p = std::make_unique<impl>();
  p->system = std::move(*sys);
  gate_config conf;
  conf.secret = std::move(opts.secret);
  conf.handshake_timeout = opts.handshake_timeout;
  conf.max_pending = opts.max_pending_handshakes;
  conf.close_delay = opts.close_delay;
  conf.log = opts.log ? std::move(opts.log)
                      : [](const std::string& line) { print_worker_log(line); };
  conf.software = opts.software;
  conf.threads = static_cast<std::uint32_t>(p->system->threads());
  conf.run_threads = opts.node.threads;
  conf.build_run = std::move(opts.build_run);
  conf.run_room_bytes = opts.run_room_bytes;
  auto& s = p->system->get();
  p->gate = s.sys->spawn<gate_actor>(&s, std::move(conf), p->outcome, p->slot);
  // If the gate stops for any other reason (CAF lets any peer send it an
  // exit message), `wait` must not hang.
  caf::actor_cast<caf::abstract_actor*>(p->gate)->attach_functor(
    [outcome = p->outcome, sysp = s.sys.get()](const caf::error& reason) {
      outcome->finish(absl::InternalError(
        absl::StrCat("the worker's gate stopped (", detail::render(*sysp, reason), ")")));
    });
  auto port = detail::publish(s, p->gate, opts.listen.port, opts.listen.host);
  if (!port)
    return absl::UnavailableError(absl::StrCat("cannot listen on ", opts.listen.to_string(), ": ",
                                               detail::render(*s.sys, port.error())));
  p->bound = node_address{opts.listen.host, *port};
  return worker_node(std::move(p));
}

void worker_node::stop(std::string reason) {
  {
    std::lock_guard<std::mutex> guard(impl_->slot->mu);
    impl_->slot->stopping = std::move(reason);
  }
  if (impl_->gate)
    caf::anon_send_exit(impl_->gate, caf::exit_reason::user_shutdown);
}

absl::Status worker_node::wait(std::optional<std::chrono::milliseconds> timeout) {
  auto& o = *impl_->outcome;
  std::unique_lock<std::mutex> guard(o.mu);
  if (timeout) {
    if (!o.cv.wait_for(guard, *timeout, [&] { return o.done; }))
      return absl::DeadlineExceededError("the worker's session is still running");
  } else {
    o.cv.wait(guard, [&] { return o.done; });
  }
  auto result = o.result;
  guard.unlock();
  // The session is over: stop a run still going and wait for its thread.
  impl_->slot->reset();
  return result;
}

} // namespace satemu::runtime
