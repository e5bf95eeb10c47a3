/// @file node.hpp
/// Messages between the nodes of a distributed run (protocol/node.capnp):
/// a capnp-free C++ form of each kind, their flat encoding, and the CAF
/// message type `node_frame` that carries one encoded message between
/// processes. The protocol itself (handshake, session) is described in
/// runtime/node.hpp.
///
/// Only a light CAF header here (like envelope.hpp): the frame's `inspect`.

#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "caf/meta/type_name.hpp"

namespace satemu::protocol {

/// Version of the node protocol, and of the messages it carries between
/// nodes; a hello with another version is refused. 3: flow packets carry
/// pathChanged instead of routeHash.
inline constexpr std::uint32_t node_protocol_version = 3;

/// Size of the handshake's nonces and MACs [bytes].
inline constexpr std::size_t node_nonce_bytes = 32;
inline constexpr std::size_t node_mac_bytes = 32;

/// Largest encoded frame a node sends or accepts [bytes]. CAF's BASP header
/// counts payloads in 32 bits; this stays well below.
inline constexpr std::size_t max_node_frame_bytes = std::size_t{1} << 30;

/// Largest single field (an envelope batch, the scenario text, a results
/// blob) of a node message [bytes]: Cap'n Proto's limit on one Data or Text.
inline constexpr std::size_t max_node_blob_bytes = (std::size_t{1} << 29) - 2;

/// Largest frame a node accepts before the peer has authenticated [bytes]:
/// the handshake's messages hold a nonce or a MAC and a short text.
inline constexpr std::size_t max_handshake_frame_bytes = 64 * 1024;

/// One node message on the wire: the flat Cap'n Proto bytes of a
/// `schema::NodeMessage`, plus, inside an authenticated session, the frame's
/// number and MAC (runtime/node.hpp). Byte containers are `std::string`
/// because CAF 0.17 ships them as they are (an unregistered
/// `std::vector<uint8_t>` silently arrives empty). Nothing here is trusted:
/// `bytes` need not even be a multiple of 8 long; decoding checks it.
struct node_frame {
  /// Session frames: 1, 2, ... per direction. Handshake frames: 0.
  std::uint64_t seq = 0;
  /// Session frames: HMAC-SHA256 under the session key. Handshake frames: empty.
  std::string tag;
  /// The encoded `node_message`.
  std::string bytes;
};

/// CAF 0.17 inspection; registered as "satemu::node_frame" (caf_types.hpp).
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_frame& x) {
  return f(caf::meta::type_name("satemu::node_frame"), x.seq, x.tag, x.bytes);
}

/// Codes of `node_error`. Pinned: they cross process boundaries.
enum class node_error_code : std::uint16_t {
  /// The frame could not be decoded (not a valid NodeMessage).
  malformed_frame = 1,
  /// A valid frame that is not allowed in the receiver's current state.
  unexpected_frame = 2,
  /// A kind the receiver does not implement.
  unsupported_frame = 3,
  /// A session frame with a missing or wrong MAC or an unexpected number.
  unauthenticated_frame = 4,
};

/// Coordinator -> worker, first frame of a connection.
struct node_hello {
  std::uint32_t version = node_protocol_version;
  /// The coordinator's fresh random nonce (`node_nonce_bytes`).
  std::string nonce;
  /// Free text for logs, e.g. "satemu 0.1.0".
  std::string software;
  friend bool operator==(const node_hello&, const node_hello&) = default;
};

/// Worker -> coordinator: the worker's fresh random nonce.
struct node_challenge {
  std::string nonce;
  friend bool operator==(const node_challenge&, const node_challenge&) = default;
};

/// Coordinator -> worker: HMAC-SHA256(secret, "satemu-v1" || worker nonce ||
/// coordinator nonce).
struct node_response {
  std::string mac;
  friend bool operator==(const node_response&, const node_response&) = default;
};

/// Worker -> coordinator: the session is open. `proof` =
/// HMAC-SHA256(secret, "satemu-v1-worker" || coordinator nonce || worker nonce)
/// lets the coordinator check the worker as well.
struct node_accepted {
  std::string proof;
  std::uint32_t threads = 0;
  std::string software;
  friend bool operator==(const node_accepted&, const node_accepted&) = default;
};

/// Worker -> coordinator: the handshake failed; the connection is closed.
struct node_refused {
  std::string reason;
  friend bool operator==(const node_refused&, const node_refused&) = default;
};

/// A request for a sign of life; the answer is a `node_pong` with the same
/// `seq` and `data`.
struct node_ping {
  std::uint64_t seq = 0;
  std::string data;
  friend bool operator==(const node_ping&, const node_ping&) = default;
};

struct node_pong {
  std::uint64_t seq = 0;
  std::string data;
  friend bool operator==(const node_pong&, const node_pong&) = default;
};

/// Coordinator -> worker: end of the session (the worker exits 0). The worker
/// answers with an `end` of its own right before it exits.
struct node_end {
  std::string reason;
  friend bool operator==(const node_end&, const node_end&) = default;
};

/// A rejected frame; the session stays open.
struct node_error {
  node_error_code code = node_error_code::malformed_frame;
  std::string message;
  friend bool operator==(const node_error&, const node_error&) = default;
};

// --- The run (runtime/distributed.hpp); fields as in node.capnp ----------

/// Coordinator -> worker: host your share of this run.
struct node_setup {
  std::string scenario;
  std::uint32_t node = 0;
  std::uint32_t nodes = 0;
  std::vector<std::uint32_t> node_of;
  std::uint32_t threads = 0;
  friend bool operator==(const node_setup&, const node_setup&) = default;
};

/// A file the scenario names (its key), and a digest of its bytes as one
/// node read it.
struct node_input {
  std::string key;
  std::uint64_t digest = 0;
  friend bool operator==(const node_input&, const node_input&) = default;
};

/// Worker -> coordinator: built, ready for the first grant.
struct node_ready {
  std::uint64_t entities = 0;
  std::uint64_t total = 0;
  std::int64_t lookahead_ns = 0;
  std::vector<node_input> inputs;
  friend bool operator==(const node_ready&, const node_ready&) = default;
};

/// Coordinator -> worker: the next window (or the end of the run).
struct node_grant {
  std::int64_t window_end = 0;
  bool stop = false;
  bool interrupted = false;
  std::vector<std::string> batches;
  /// The window's start (not with `stop`): nothing granted is due before it.
  std::int64_t window_start = 0;
  friend bool operator==(const node_grant&, const node_grant&) = default;
};

/// Envelopes for the entities of node `node`.
struct node_batch {
  std::uint32_t node = 0;
  std::int64_t first_ns = 0;
  std::uint64_t count = 0;
  std::string data;
  friend bool operator==(const node_batch&, const node_batch&) = default;
};

/// Worker -> coordinator: a window is done.
struct node_report {
  std::int64_t next_ns = 0;
  std::uint64_t events = 0;
  std::vector<node_batch> batches;
  friend bool operator==(const node_report&, const node_report&) = default;
};

/// Worker -> coordinator: the hosted entities' final state and the node's figures.
struct node_results {
  std::string entities;
  std::string workload;
  std::uint64_t events = 0;
  std::uint64_t windows = 0;
  std::uint64_t cross_envelopes = 0;
  std::uint64_t cross_bytes = 0;
  std::int64_t barrier_wait_ns = 0;
  std::uint64_t compute_requests = 0;
  std::uint64_t compute_batches = 0;
  friend bool operator==(const node_results&, const node_results&) = default;
};

/// Either side: the run cannot go on.
struct node_abort {
  std::string reason;
  friend bool operator==(const node_abort&, const node_abort&) = default;
};

/// Any node message. The index order is the schema's union order.
using node_message =
  std::variant<node_hello, node_challenge, node_response, node_accepted, node_refused, node_ping,
               node_pong, node_end, node_error, node_setup, node_ready, node_grant, node_report,
               node_results, node_abort>;

/// Short name of the message's kind ("hello", "challenge", ...).
std::string_view node_kind_name(const node_message& m) noexcept;

/// Name of an error code ("malformed frame", ...), or "error <n>" for an
/// unknown one.
std::string node_error_code_name(node_error_code c);

/// Encodes `m` as one flat Cap'n Proto message. InvalidArgument, naming the
/// size, for a message with a field above `max_node_blob_bytes` or an
/// encoding above `max_node_frame_bytes`.
absl::StatusOr<std::string> encode_node_message(const node_message& m);

/// Decodes a frame without trusting it: the flat message is checked with
/// the project's traversal limits (codec.hpp), its size must be a non-zero
/// multiple of 8 and at most `max_node_frame_bytes`. InvalidArgument with a
/// description of the defect otherwise; Unimplemented for a well-formed
/// message of a kind this build does not know (a newer peer).
absl::StatusOr<node_message> decode_node_message(std::string_view frame);

/// Human-readable description for CAF's `to_string` and for logs.
std::string to_string(const node_frame& x);

} // namespace satemu::protocol
