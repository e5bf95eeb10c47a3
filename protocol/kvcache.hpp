/// satemu SkyMemory KV-cache messages (protocol/kvcache.capnp,
/// `kind::kvcache`): capnp-free API.
///
/// A chunk carries its KV bytes (the keys and values the model computed
/// when they are real, else zero filler of the block's real size) and a
/// checksum over
/// the block's hash, index, token count and bytes. Decoding recomputes the
/// checksum, so a chunk damaged anywhere on its way is told apart from a
/// good one (`kv_chunk::checksum_ok`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/payload.hpp"

namespace satemu::protocol {

/// What a KV-cache message asks or answers (the union of KvMessage).
enum class kv_op : std::uint8_t {
  put,
  lookup,
  lookup_reply,
  get,
  chunk,
  migrate,
  migrate_chunk,
  evict_notice,
  error,
  /// The LLM on a satellite: a user's prompt to its serving satellite.
  prompt,
  /// The LLM on a satellite: an output token back to the user.
  answer,
};

/// KvError; the values cross process boundaries.
enum class kv_error : std::uint16_t { not_found = 0, too_large = 1, bad_checksum = 2 };

struct kv_chunk {
  std::uint64_t hash = 0;
  std::uint32_t index = 0;
  std::uint32_t tokens = 0;
  std::uint32_t owner = 0;
  /// Decoded: the checksum carried. Ignored when encoding (computed then).
  std::uint64_t checksum = 0;
  /// Bytes of KV data carried.
  std::uint32_t data_bytes = 0;
  /// The KV data itself when the sender has it (`compute: real`): encoded
  /// as is (its size wins over data_bytes), and filled in by decode_kv when
  /// asked to keep data. Null: `data_bytes` zero bytes of filler.
  std::shared_ptr<const std::vector<std::byte>> data;
  /// Decoded: whether the carried checksum matches the data.
  bool checksum_ok = false;

  /// Same identity and bytes (null data: `data_bytes` zero bytes). The
  /// checksum fields are a decoder's verdict, not content, and not compared.
  friend bool operator==(const kv_chunk& a, const kv_chunk& b);
};

/// What the node that ran a request saw of it: the account a satellite
/// running the model sends down in its answers (KvAnswer), and part of a
/// user's record of the request.
struct kv_account {
  std::uint32_t cached_tokens = 0;
  std::uint32_t chunks_fetched = 0;
  std::uint32_t chunks_corrupt = 0;
  std::uint32_t chunks_missing = 0;
  std::uint64_t bytes_fetched = 0;
  std::uint64_t bytes_put = 0;
  std::int64_t fetch_ns = 0;
  std::int64_t prefill_ns = 0;
  /// Before fetch_ns, the time the request waited for its device, busy
  /// with earlier requests.
  std::int64_t device_wait_ns = 0;
  /// A lookup or get of the request timed out.
  bool timed_out = false;

  friend bool operator==(const kv_account&, const kv_account&) = default;
};

/// KvAnswer: an output token and the serving satellite's account of the
/// request.
struct kv_answer : kv_account {
  bool last = false;
  std::int64_t received_ns = 0;
  std::int64_t sent_ns = 0;
  std::vector<float> hidden;

  /// Field by field, `hidden` bit for bit (a NaN equals itself).
  friend bool operator==(const kv_answer& a, const kv_answer& b);
};

struct kv_message {
  kv_op op = kv_op::lookup;
  std::uint64_t request = 0;
  std::uint32_t origin = 0;
  /// put, chunk, migrate_chunk.
  kv_chunk chunk;
  /// lookup, lookup_reply, get, evict_notice.
  std::vector<std::uint64_t> hashes;
  /// migrate: whose chunks move, and where to.
  std::uint32_t owner = 0;
  std::uint32_t target = 0;
  /// error.
  kv_error error = kv_error::not_found;
  std::uint64_t error_hash = 0;
  /// prompt: its tokens and the user's layout (block i on servers[i mod
  /// size]; empty: no cache).
  std::vector<std::uint32_t> tokens;
  std::vector<std::uint32_t> servers;
  /// answer.
  kv_answer answer;

  friend bool operator==(const kv_message&, const kv_message&) = default;
};

/// True for the ops that carry a chunk.
constexpr bool carries_chunk(kv_op op) {
  return op == kv_op::put || op == kv_op::chunk || op == kv_op::migrate_chunk;
}

/// Checksum of a chunk: its identity (hash, index, tokens) and every data
/// byte. Deterministic across processes.
std::uint64_t kv_checksum(std::uint64_t hash, std::uint32_t index, std::uint32_t tokens,
                          std::span<const std::byte> data);

/// Most data bytes a chunk carries (a Cap'n Proto Data blob).
inline constexpr std::size_t max_kv_chunk_bytes = (std::size_t{1} << 29) - 1;

/// Encodes `m`. A chunk gets `m.chunk.data_bytes` bytes of data (at most
/// `max_kv_chunk_bytes`) and the
/// checksum over them; with `corrupt`, one data bit is flipped after the
/// checksum is taken (a fault injected at the sender, to be caught by the
/// receiver).
payload_ptr encode_kv(const kv_message& m, bool corrupt = false);

/// Decodes and validates (recomputing a chunk's checksum); InvalidArgument
/// for a malformed or empty payload. A checksum mismatch is not an error
/// here: it shows as `chunk.checksum_ok == false`. With `keep_data`, a
/// chunk's bytes are copied into `chunk.data`.
absl::StatusOr<kv_message> decode_kv(const payload_ptr& p, bool keep_data = false);

/// Checks that every entity `m` names (its origin, a chunk's owner, a
/// migration's owner and target, a prompt's servers) is one of the run's
/// `entities`; InvalidArgument naming the first that is not. A receiver
/// sends to these ids, so it checks them before use.
absl::Status check_kv_entities(const kv_message& m, std::size_t entities);

} // namespace satemu::protocol
