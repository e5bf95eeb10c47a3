/// @file node.hpp
/// Nodes of a distributed run (DESIGN.md, Distribution): addresses, the
/// worker that waits for a coordinator (`satemu worker`), and the
/// coordinator's authenticated link to one worker. The distributed window
/// protocol builds on these; this layer carries frames, it does not run
/// entities.
///
/// Transport. Nodes are CAF actor systems joined by CAF's middleman (BASP
/// over TCP). A worker publishes one actor, its gate, at ADDR:PORT; the
/// coordinator connects to it (`remote_actor`) and talks to it through a
/// local link actor. Every message between nodes is a `protocol::node_frame`:
/// a flat Cap'n Proto `NodeMessage` (protocol/node.capnp), decoded with the
/// project's checked decoding (traversal limits, exact sizes). A frame that
/// does not decode is rejected with an error that names the peer; it never
/// brings a node down.
///
/// Handshake (C = coordinator, W = worker, nonces of 32 bytes from OpenSSL's
/// RAND_bytes, secret = the run's shared secret):
///
///     C -> W  hello     {version, nonce_c}
///     W -> C  challenge {nonce_w}                            (fresh per hello)
///     C -> W  response  {HMAC-SHA256(secret, "satemu-v1" || nonce_w || nonce_c)}
///     W -> C  accepted  {proof = HMAC-SHA256(secret, "satemu-v1-worker" || nonce_c || nonce_w),
///                        threads}
///          or refused   {reason}, then W closes the connection
///
/// W compares the response with CRYPTO_memcmp; C checks the proof the same
/// way, so neither side talks to a node that does not know the secret. W
/// takes only a hello as a peer's first frame, and nothing but the expected
/// frame in each later step: anything else (another kind, a
/// malformed frame, a wrong MAC, a wrong protocol version, silence past the
/// handshake timeout) refuses the peer, logs the refusal with the peer's
/// address on stderr and closes its connection; the worker keeps serving and
/// admits a later coordinator that knows the secret. One coordinator per
/// worker: once one is accepted, later hellos are refused ("busy").
///
/// Session. Both sides derive a session key
/// K = HMAC-SHA256(secret, "satemu-v1-session" || nonce_w || nonce_c), and
/// every later frame carries a number (1, 2, ... per direction) and
/// tag = HMAC-SHA256(K, direction || number || bytes). A frame with a missing
/// or wrong tag or an unexpected number is rejected and logged, so frames
/// cannot be forged, replayed, reordered or reflected even by a peer that can
/// reach the worker's port. Session frames implemented here: ping/pong
/// (liveness; pong echoes the ping's bytes), end (C ends the session; W
/// acknowledges with an end of its own and `wait()` returns OK, so
/// `satemu worker` exits 0; Aborted when a run was set up and its results
/// never went out, so that a supervisor tells an aborted run from a
/// completed one) and error (a rejected frame; the session stays
/// open). A kind the worker does not serve (a handshake kind, or one from a
/// newer version) is answered with `error{unexpected frame}` or
/// `error{unsupported frame}`. If the coordinator's node goes
/// down (process killed, connection lost, or silent past the BASP connection
/// timeout), `wait()` returns Unavailable naming it and `satemu worker`
/// exits non-zero.
///
/// Security model, and its limits.
/// - Workers bind 127.0.0.1 unless told otherwise; binding a routable
///   address is an explicit choice (`--listen 0.0.0.0:PORT`).
/// - Authentication is the shared secret. CAF 0.17's own protocol (BASP) has
///   none: it trusts the node ids peers claim, routes messages between
///   nodes, and anyone who reaches the port can send messages to any actor of
///   the process. Hence the per-frame MACs above, and node ids are used only
///   for bookkeeping, never as proof of identity. Non-frame messages to the
///   gate are dropped and logged.
/// - Without TLS, frames are authenticated, not encrypted: anyone on the
///   path can read scenarios and envelopes. Nor does authentication bound
///   what an unauthenticated peer costs: BASP buffers a message of whatever
///   length its header declares (up to 4 GiB) and keeps connections that
///   never finish its handshake, all before the gate sees the peer. Use
///   loopback, a network only the run's nodes reach, a tunnel, or TLS:
/// - TLS (`node_options::tls`; `--tls-cert/--tls-key/--tls-ca`) puts every
///   connection of the node's actor system through CAF's OpenSSL module
///   (`caf::openssl::manager`; the worker publishes with
///   `caf::openssl::publish`, the coordinator connects through the module's
///   middleman actor; both hand the connections to the same BASP broker, so
///   connection closing and node monitoring work as without TLS). What it
///   adds: confidentiality and integrity of the transport, CAF's own
///   handshake included, and peer verification before any CAF message is
///   read: CAF 0.17.6, once any openssl.* key is set, requires a
///   certificate from the peer on both sides (SSL_VERIFY_PEER |
///   SSL_VERIFY_FAIL_IF_NO_PEER_CERT) and verifies it against
///   `openssl.cafile` only (OpenSSL's default trust store is not loaded; a
///   node without a CA file would refuse every peer). It checks no host
///   name or certificate name: any certificate signed by the CA is
///   admitted, so a run's nodes need a CA of their own. The secret
///   handshake and the frame MACs stay, unchanged, inside TLS: TLS says
///   "holds a certificate of the run's CA", the secret says "belongs to this
///   run". A TLS node and a plain node cannot connect. CAF closes a
///   connection whose TLS handshake fails without telling the application,
///   so the worker cannot log it (the coordinator names the worker); CAF
///   also raises inside its middleman thread on a file it cannot load, hence
///   `check_tls_files` before the system starts. Keys must be unencrypted
///   (an encrypted one would make OpenSSL prompt on the terminal).
/// - Denial of service by a peer that can reach the port (flooding,
///   spoofed CAF down or routing messages that cut a connection) is out of
///   scope; such a run fails with an error, it never produces wrong results.
///
/// Closing one connection. CAF 0.17 has no public call that closes one peer's
/// connection. The node layer runs what the BASP broker itself does on a
/// protocol error (`connection_cleanup` then `close` on the peer's
/// connection handle) inside the middleman's event loop, the thread that owns
/// the broker's state, a moment after the refusal was sent so that it is
/// flushed first (runtime/detail/node_caf.hpp).

#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "protocol/node.hpp"

namespace satemu::runtime {

/// A node's network address.
struct node_address {
  /// IPv4 or IPv6 literal (without brackets) or a host name.
  std::string host;
  /// TCP port; 0 in a listen address = any free port.
  std::uint16_t port = 0;

  /// "host:port", or "[v6]:port" for an IPv6 literal.
  std::string to_string() const;

  friend bool operator==(const node_address&, const node_address&) = default;
};

/// Parses "host:port", "[ipv6]:port" or ":port" (host 127.0.0.1). The port
/// is 0..65535 and the host a name or an address literal. InvalidArgument
/// naming the bad part and quoting the input otherwise.
absl::StatusOr<node_address> parse_node_address(std::string_view text);

/// Parses a comma-separated list of addresses ("h:p,h:p"); spaces around the
/// commas are allowed. Every port must be non-zero and no address may appear
/// twice. Errors name the entry (1-based) and what is wrong with it.
absl::StatusOr<std::vector<node_address>> parse_worker_list(std::string_view text);

/// Reads a shared secret: the whole file, with one trailing newline ("\n" or
/// "\r\n") removed. NotFound when the file cannot be opened and
/// InvalidArgument when the secret is empty; both name the file.
absl::StatusOr<std::string> read_secret_file(const std::string& path);

/// Warnings worth printing about a secret file (readable by other users,
/// shorter than 16 bytes); empty when there is nothing to say.
std::vector<std::string> secret_file_warnings(const std::string& path, const std::string& secret);

/// A warning for a worker that listens on an address other than loopback
/// (127.0.0.0/8, ::1, localhost) without TLS (see the security model above:
/// anyone who reaches the port can read the frames, and exhaust the worker's
/// memory through CAF's transport); empty otherwise.
std::vector<std::string> listen_warnings(const node_address& listen, bool tls);

/// Mutual TLS between nodes (CAF's OpenSSL module): three PEM files. Every
/// node presents `cert` and accepts a peer only if the peer's certificate
/// chains to a CA in `ca`; no host name is checked.
struct tls_options {
  /// This node's certificate (a chain may follow it).
  std::string cert;
  /// Its private key, unencrypted.
  std::string key;
  /// The CA certificate(s) that sign the peers' certificates.
  std::string ca;
};

/// Checks that the files of `tls` can be read and parsed and that the key
/// belongs to the certificate, so that CAF never meets a bad file in the
/// middle of a connection. NotFound when a file cannot be opened,
/// InvalidArgument otherwise; both name the file.
absl::Status check_tls_files(const tls_options& tls);

/// Warnings worth printing about the files of `tls` (a key readable by
/// other users); empty when there is nothing to say.
std::vector<std::string> tls_file_warnings(const tls_options& tls);

/// Settings of a node's actor system.
struct node_options {
  /// CAF scheduler threads; 0 = one per core.
  std::size_t threads = 0;
  /// BASP heartbeat period, and the silence after which a connected node
  /// counts as gone (its actors go down with it). Zero disables either.
  /// A worker gives up on a silent coordinator after as long as the
  /// coordinator waits for a silent worker (coordinator_options).
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds connection_timeout{5000};
  /// Set: every connection of this system, in and out, is mutual TLS
  /// (`check_tls_files` first); unset: plain TCP. A TLS node and a plain
  /// one cannot talk to each other.
  std::optional<tls_options> tls;
};

/// A CAF actor system with networking. Links of one process may share one.
class node_system {
public:
  static absl::StatusOr<std::shared_ptr<node_system>> start(const node_options& opts = {});

  ~node_system();
  node_system(const node_system&) = delete;
  node_system& operator=(const node_system&) = delete;

  /// Scheduler threads in use.
  std::size_t threads() const noexcept;

  /// Implementation (runtime/detail/node_caf.hpp).
  struct impl;
  impl& get() noexcept {
    return *impl_;
  }

private:
  explicit node_system(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The coordinator's connection to one worker. Thread-compatible: one thread
/// at a time (sending and receiving from two threads needs a lock).
class worker_link {
public:
  using milliseconds = std::chrono::milliseconds;

  /// Connects to the worker at `addr` and runs the handshake with `secret`
  /// (`open` + `authenticate`); at most `timeout` for each. `system` = null
  /// starts a private one (2 threads). `stop` as for `probe` and
  /// `authenticate`.
  static absl::StatusOr<worker_link> connect(const node_address& addr, const std::string& secret,
                                             milliseconds timeout,
                                             std::shared_ptr<node_system> system = nullptr,
                                             const std::atomic<bool>* stop = nullptr);

  /// Connects without authenticating (after `probe`). The worker accepts
  /// nothing but a hello on such a link; useful for tests and tools.
  static absl::StatusOr<worker_link> open(const node_address& addr, milliseconds timeout,
                                          std::shared_ptr<node_system> system = nullptr,
                                          const std::atomic<bool>* stop = nullptr);

  /// Opens a plain TCP connection to `addr` and closes it at once (a worker
  /// ignores it): whether anything listens there, found before CAF's own
  /// connect, which blocks until the kernel gives up (about 2 minutes) when
  /// a host drops the packets. Unavailable naming the worker when the host
  /// name does not resolve, the connection is refused, or none is made
  /// within `timeout`; Cancelled within 100 ms of `stop` (when given)
  /// turning true.
  static absl::Status probe(const node_address& addr, milliseconds timeout,
                            const std::atomic<bool>* stop = nullptr);

  /// Runs the handshake. PermissionDenied when the worker refuses (its
  /// reason included) or cannot prove it knows the secret; Unavailable when
  /// it goes away; DeadlineExceeded after `timeout`; Cancelled within 100 ms
  /// of `stop` (when given) turning true. On failure the link is closed.
  absl::Status authenticate(const std::string& secret, milliseconds timeout,
                            const std::atomic<bool>* stop = nullptr);

  worker_link(worker_link&&) noexcept;
  worker_link& operator=(worker_link&&) noexcept;
  /// Disconnects without ending the session (the worker sees its
  /// coordinator go down); call `close` for an orderly end.
  ~worker_link();

  /// The worker's address as given.
  const node_address& address() const noexcept;
  /// True after a successful handshake.
  bool authenticated() const noexcept;
  /// The worker's scheduler threads (from its `accepted`); 0 before.
  std::uint32_t worker_threads() const noexcept;
  /// The worker's software string (from its `accepted`); empty before.
  const std::string& worker_software() const noexcept;
  /// The worker process's CAF node id as text (from `open`): two links with
  /// the same one reach the same process, under two names.
  const std::string& worker_node() const noexcept;
  /// Ends this link but leaves the connection to the worker's process open:
  /// for a second link to a process that another link of this node system
  /// serves (destroying or closing it would cut that one off too).
  void detach();
  /// Unavailable (naming the worker and why) once the worker is gone; OK
  /// while it is connected. Does not consume frames.
  absl::Status health() const;

  /// Encodes and sends `m` (sealed with the session MAC once authenticated).
  /// Unavailable when the worker is gone or the link closed; InvalidArgument
  /// for a message too big for one frame (protocol::encode_node_message).
  absl::Status send(const protocol::node_message& m);

  /// Sends `bytes` as a frame as they are, without encoding or checking them
  /// (sealed once authenticated): for tests of malformed input and for
  /// frames encoded elsewhere.
  absl::Status send_bytes(std::string bytes);

  /// The next frame from the worker, decoded; waits up to `timeout`.
  /// DeadlineExceeded when none came; Unavailable when the worker is gone
  /// (the message names it and says why); InvalidArgument or
  /// PermissionDenied for a frame that was rejected (malformed, bad MAC;
  /// named, the link stays usable).
  absl::StatusOr<protocol::node_message> receive(milliseconds timeout);

  /// Ends the session: sends `end` (when authenticated and connected),
  /// waits up to `timeout` for the worker's acknowledgement, then
  /// disconnects. Idempotent. OK when the worker acknowledged or went down
  /// after the end was sent (or the link was never authenticated);
  /// DeadlineExceeded or Unavailable otherwise.
  absl::Status close(milliseconds timeout = milliseconds(5000));

  struct impl;

private:
  explicit worker_link(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

class entity;
class compute_service;

/// What a worker hosts for one run, built from the run's scenario by the
/// layer that knows workloads (the CLI).
struct hosted_run {
  /// Every entity of the run, entity i at index i; the worker drives only
  /// its share. Owned by `owner`.
  std::vector<std::unique_ptr<entity>>* entities = nullptr;
  /// As the scenario gives them (the coordinator derived the same).
  std::int64_t lookahead_ns = 0;
  std::int64_t end_ns = 0;
  std::uint64_t seed = 1;
  /// The workload's node-wide state after the run (e.g. topology epochs
  /// built); sent with the results. May be unset.
  std::function<std::string()> workload_state;
  /// Keeps the workload alive while the run needs it.
  std::shared_ptr<void> owner;
  /// This node's compute service (kept alive by `owner`), or null.
  compute_service* compute = nullptr;
  /// The files the scenario names, as this node read them (sent with
  /// `ready`, so that the coordinator can check every node read the same).
  std::vector<protocol::node_input> inputs;
};

/// Writes one line of a worker's log to stderr, stamped with the local time
/// (a worker runs for days): "[satemu worker] 2026-11-22 10:31:05 LINE".
void print_worker_log(std::string_view line);

struct worker_options {
  /// Where to listen; port 0 = any free port (see `worker_node::address`).
  node_address listen{"127.0.0.1", 0};
  /// The run's shared secret; must not be empty.
  std::string secret;
  node_options node;
  /// A peer that has not completed the handshake by then is refused.
  std::chrono::milliseconds handshake_timeout{10000};
  /// Peers in the middle of a handshake at once; more are refused.
  std::size_t max_pending_handshakes = 16;
  /// Delay between refusing a peer and closing its connection, so that the
  /// refusal is flushed first.
  std::chrono::milliseconds close_delay{200};
  /// Receives every log line; default: print_worker_log.
  std::function<void(const std::string&)> log;
  /// Software name sent in `accepted`.
  std::string software = "satemu";
  /// Builds what this worker hosts when a coordinator sends a run's setup
  /// (runtime/distributed.hpp); unset = the worker refuses runs (it still
  /// serves the handshake and the session frames).
  std::function<absl::StatusOr<hosted_run>(const std::string& scenario_yaml)> build_run;
  /// Address space a setup must find free (under ulimit -v) for the thread
  /// that builds and runs it to start; with less, the scenario is refused
  /// as out of memory on this worker. The thread would otherwise end the
  /// process in the allocator as it first allocates, with no word.
  std::size_t run_room_bytes = std::size_t{32} << 20;
};

/// A worker node: listens, admits one authenticated coordinator, serves its
/// session until it ends.
class worker_node {
public:
  /// Binds and publishes the gate; fails with Unavailable naming the address
  /// when it cannot bind (e.g. in use), InvalidArgument for an empty secret.
  static absl::StatusOr<worker_node> start(worker_options opts);

  worker_node(worker_node&&) noexcept;
  worker_node& operator=(worker_node&&) noexcept;
  ~worker_node();

  /// The bound address (the actual port when 0 was asked for).
  const node_address& address() const noexcept;

  /// Blocks until the session ends, at most `timeout` (forever if unset).
  /// OK: the coordinator sent `end`. Unavailable: the coordinator went down
  /// (named, with CAF's reason) after setting up a run; one that goes down
  /// before leaves the worker waiting for the next. Internal: the gate
  /// actor was stopped (CAF lets any peer send it an exit message).
  /// DeadlineExceeded: still running.
  absl::Status wait(std::optional<std::chrono::milliseconds> timeout = std::nullopt);

  /// Ends the worker (e.g. on SIGTERM), telling a coordinator in session why:
  /// it fails its run naming the worker and `reason`.
  void stop(std::string reason);

  struct impl;

private:
  explicit worker_node(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// The protocol's cryptography (see the top of this file), public so that
/// tests and other implementations can check it. OpenSSL stays in the .cpp.
namespace node_crypto {

/// `n` bytes from OpenSSL's CSPRNG (RAND_bytes); Internal if it fails.
absl::StatusOr<std::string> random_bytes(std::size_t n);

/// HMAC-SHA256 under `key` over the concatenation of `parts` (32 bytes).
/// Throws std::runtime_error if OpenSSL fails.
std::string hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts);

/// Constant-time comparison (CRYPTO_memcmp); false for different lengths.
bool equal_constant_time(std::string_view a, std::string_view b) noexcept;

/// What the coordinator answers to a challenge:
/// HMAC(secret, "satemu-v1" || worker nonce || coordinator nonce).
std::string coordinator_mac(std::string_view secret, std::string_view worker_nonce,
                            std::string_view coordinator_nonce);

/// What the worker sends with `accepted` to prove it knows the secret too:
/// HMAC(secret, "satemu-v1-worker" || coordinator nonce || worker nonce).
std::string worker_proof(std::string_view secret, std::string_view coordinator_nonce,
                         std::string_view worker_nonce);

/// Key of the session's frame MACs:
/// HMAC(secret, "satemu-v1-session" || worker nonce || coordinator nonce).
std::string session_key(std::string_view secret, std::string_view worker_nonce,
                        std::string_view coordinator_nonce);

/// Direction of a frame within a session; part of its MAC, so a frame cannot
/// be reflected back to its sender.
enum class frame_direction : std::uint8_t { to_worker = 1, to_coordinator = 2 };

/// Numbers and MACs one direction's frames: frame `i` (from 1) carries
/// seq = i and tag = HMAC(key, direction || seq (8 bytes LE) || bytes).
class frame_sealer {
public:
  frame_sealer() = default;
  frame_sealer(std::string key, frame_direction dir) : key_(std::move(key)), dir_(dir) {
  }

  /// True once constructed with a key.
  bool active() const noexcept {
    return !key_.empty();
  }

  protocol::node_frame seal(std::string bytes);

private:
  std::string key_;
  frame_direction dir_ = frame_direction::to_worker;
  std::uint64_t next_seq_ = 1;
};

/// Checks one direction's frames: the tag must match and the sequence number
/// must be the next one (no replay, no reordering, no gap). A rejected frame
/// does not advance the expected number.
class frame_opener {
public:
  frame_opener() = default;
  frame_opener(std::string key, frame_direction dir) : key_(std::move(key)), dir_(dir) {
  }

  bool active() const noexcept {
    return !key_.empty();
  }

  /// PermissionDenied naming the defect (no tag, bad tag, wrong number).
  absl::Status open(const protocol::node_frame& f);

private:
  std::string key_;
  frame_direction dir_ = frame_direction::to_worker;
  std::uint64_t next_seq_ = 1;
};

} // namespace node_crypto

} // namespace satemu::runtime
