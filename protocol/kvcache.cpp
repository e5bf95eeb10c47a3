// SkyMemory KV-cache encoding.
#include "protocol/kvcache.hpp"

#include <array>
#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "capnp/message.h"
#include "protocol/codec.hpp"
#include "protocol/kvcache.capnp.h"

namespace satemu::protocol {

namespace {

constexpr std::uint64_t k1 = 0x9e3779b97f4a7c15ULL;
constexpr std::uint64_t k2 = 0xc2b2ae3d27d4eb4fULL;

constexpr std::uint64_t fmix(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

using lanes = std::array<std::uint64_t, 4>;

// kv_checksum's four independent lanes over `words` 8-byte words, `word(i)`
// the i-th (so the loop is not one long multiply chain): word i goes to lane
// i mod 4, the words after the last group of four to lane 0.
template <class Word>
lanes run_lanes(std::size_t words, Word word) {
  lanes lane = {k1, k2, k1 ^ k2, k1 + k2};
  std::size_t i = 0;
  for (; i + 4 <= words; i += 4)
    for (std::size_t l = 0; l < 4; ++l)
      lane[l] = std::rotl((lane[l] ^ word(i + l)) * k1, 31) * k2;
  for (; i < words; ++i)
    lane[0] = std::rotl((lane[0] ^ word(i)) * k1, 31) * k2;
  return lane;
}

// Whether every byte is zero: OR over blocks of 1 KiB (a loop the compiler
// vectorises), stopping after the first block that is not.
bool all_zero(std::span<const std::byte> data) {
  constexpr std::size_t block = 1024;
  const std::byte* p = data.data();
  std::size_t i = 0;
  for (; i + block <= data.size(); i += block) {
    std::uint64_t any = 0;
    for (std::size_t j = 0; j < block; j += 8) {
      std::uint64_t w;
      std::memcpy(&w, p + i + j, 8);
      any |= w;
    }
    if (any != 0)
      return false;
  }
  for (; i < data.size(); ++i)
    if (p[i] != std::byte{0})
      return false;
  return true;
}

// run_lanes over `words` zero words. A chunk without real KV data carries
// zero filler, and a run's chunks come in a few sizes: the lanes of the
// last sizes seen are kept (per thread), so checking such a chunk costs a
// scan for non-zero bytes instead of two multiplies per word.
lanes zero_lanes(std::size_t words) {
  struct seen {
    std::size_t words = 0;
    lanes lane{};
    bool set = false;
  };
  thread_local std::array<seen, 8> cache;
  thread_local std::size_t next = 0;
  for (const auto& s : cache)
    if (s.set && s.words == words)
      return s.lane;
  auto& s = cache[next++ % cache.size()];
  s = {words, run_lanes(words, [](std::size_t) { return std::uint64_t{0}; }), true};
  return s.lane;
}

// kv_checksum from its lanes and the bytes after the last whole word.
std::uint64_t finish(const lanes& lane, std::uint64_t tail, std::uint64_t hash,
                     std::uint32_t index, std::uint32_t tokens, std::size_t size) {
  std::uint64_t h = fmix(lane[0]) ^ std::rotl(fmix(lane[1]), 16) ^ std::rotl(fmix(lane[2]), 32) ^
                    std::rotl(fmix(lane[3]), 48);
  h = fmix(h ^ tail * k2);
  h = fmix(h ^ hash);
  h = fmix(h ^ (static_cast<std::uint64_t>(index) << 32 | tokens));
  return fmix(h ^ size);
}

void set_chunk(schema::KvChunk::Builder b, const kv_chunk& c, bool corrupt) {
  b.setHash(c.hash);
  b.setIndex(c.index);
  b.setTokens(c.tokens);
  b.setOwner(c.owner);
  auto data = b.initData(c.data ? static_cast<unsigned>(c.data->size()) : c.data_bytes);
  if (c.data && !c.data->empty())
    std::memcpy(data.begin(), c.data->data(), c.data->size());
  const auto bytes = std::as_bytes(std::span<const kj::byte>(data.begin(), data.size()));
  // Filler is the zeros Cap'n Proto built: its checksum needs no pass over it.
  b.setChecksum(c.data ? kv_checksum(c.hash, c.index, c.tokens, bytes)
                       : finish(zero_lanes(bytes.size() / 8), 0, c.hash, c.index, c.tokens,
                                bytes.size()));
  if (corrupt && data.size() > 0)
    data[data.size() / 2] ^= 0x10;
  else if (corrupt)
    b.setChecksum(b.getChecksum() ^ 1);
}

kv_chunk get_chunk(schema::KvChunk::Reader r, bool keep_data) {
  kv_chunk c;
  c.hash = r.getHash();
  c.index = r.getIndex();
  c.tokens = r.getTokens();
  c.owner = r.getOwner();
  c.checksum = r.getChecksum();
  const auto data = r.getData();
  c.data_bytes = static_cast<std::uint32_t>(data.size());
  c.checksum_ok =
    c.checksum == kv_checksum(c.hash, c.index, c.tokens,
                              std::as_bytes(std::span<const kj::byte>(data.begin(), data.size())));
  if (keep_data) {
    const auto* first = reinterpret_cast<const std::byte*>(data.begin());
    c.data = std::make_shared<const std::vector<std::byte>>(first, first + data.size());
  }
  return c;
}

template <typename T>
void set_list(typename capnp::List<T>::Builder b, const std::vector<T>& v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    b.set(static_cast<unsigned>(i), v[i]);
}

template <typename T>
std::vector<T> get_list(typename capnp::List<T>::Reader r) {
  std::vector<T> out;
  out.reserve(r.size());
  for (auto h : r)
    out.push_back(h);
  return out;
}

void set_answer(schema::KvAnswer::Builder b, const kv_answer& a) {
  b.setLast(a.last);
  b.setReceivedNs(a.received_ns);
  b.setSentNs(a.sent_ns);
  b.setCachedTokens(a.cached_tokens);
  b.setChunksFetched(a.chunks_fetched);
  b.setChunksCorrupt(a.chunks_corrupt);
  b.setChunksMissing(a.chunks_missing);
  b.setBytesFetched(a.bytes_fetched);
  b.setBytesPut(a.bytes_put);
  b.setFetchNs(a.fetch_ns);
  b.setPrefillNs(a.prefill_ns);
  b.setDeviceWaitNs(a.device_wait_ns);
  b.setTimedOut(a.timed_out);
  auto h = b.initHidden(static_cast<unsigned>(a.hidden.size() * sizeof(float)));
  if (!a.hidden.empty())
    std::memcpy(h.begin(), a.hidden.data(), h.size());
}

absl::StatusOr<kv_answer> get_answer(schema::KvAnswer::Reader r) {
  kv_answer a;
  a.last = r.getLast();
  a.received_ns = r.getReceivedNs();
  a.sent_ns = r.getSentNs();
  a.cached_tokens = r.getCachedTokens();
  a.chunks_fetched = r.getChunksFetched();
  a.chunks_corrupt = r.getChunksCorrupt();
  a.chunks_missing = r.getChunksMissing();
  a.bytes_fetched = r.getBytesFetched();
  a.bytes_put = r.getBytesPut();
  a.fetch_ns = r.getFetchNs();
  a.prefill_ns = r.getPrefillNs();
  a.device_wait_ns = r.getDeviceWaitNs();
  a.timed_out = r.getTimedOut();
  const auto h = r.getHidden();
  if (h.size() % sizeof(float) != 0)
    return absl::InvalidArgumentError("kvcache: answer hidden state is not whole floats");
  a.hidden.resize(h.size() / sizeof(float));
  if (!a.hidden.empty())
    std::memcpy(a.hidden.data(), h.begin(), h.size());
  return a;
}

} // namespace

std::uint64_t kv_checksum(std::uint64_t hash, std::uint32_t index, std::uint32_t tokens,
                          std::span<const std::byte> data) {
  // The lanes over the whole words, then the tail, then the identity and the
  // length.
  const std::size_t words = data.size() / 8;
  const std::byte* p = data.data();
  const auto lane = all_zero(data) ? zero_lanes(words) : run_lanes(words, [p](std::size_t i) {
    std::uint64_t w;
    std::memcpy(&w, p + i * 8, 8);
    return w;
  });
  std::uint64_t tail = 0;
  for (std::size_t b = words * 8; b < data.size(); ++b)
    tail = (tail << 8) | std::to_integer<std::uint64_t>(p[b]);
  return finish(lane, tail, hash, index, tokens, data.size());
}

payload_ptr encode_kv(const kv_message& m, bool corrupt) {
  // Root pointer + KvMessage + a chunk and its data, or the prompt's two
  // lists, or an answer and its hidden state, or a list of hashes: the
  // whole message, built in one segment.
  std::size_t words = 1 + struct_words<schema::KvMessage>();
  if (carries_chunk(m.op)) {
    const std::size_t data_bytes = m.chunk.data ? m.chunk.data->size() : m.chunk.data_bytes;
    words += struct_words<schema::KvChunk>() + (data_bytes + 7) / 8;
  } else if (m.op == kv_op::prompt) {
    words += (m.tokens.size() + 1) / 2 + (m.servers.size() + 1) / 2;
  } else if (m.op == kv_op::answer) {
    words += struct_words<schema::KvAnswer>() + (m.answer.hidden.size() + 1) / 2;
  } else {
    words += m.hashes.size();
  }
  return build_flat(words, [&](capnp::MessageBuilder& builder) {
    auto root = builder.initRoot<schema::KvMessage>();
    root.setRequest(m.request);
    root.setOrigin(m.origin);
    const auto n = static_cast<unsigned>(m.hashes.size());
    switch (m.op) {
      case kv_op::put:
        set_chunk(root.initPut(), m.chunk, corrupt);
        break;
      case kv_op::chunk:
        set_chunk(root.initChunk(), m.chunk, corrupt);
        break;
      case kv_op::migrate_chunk:
        set_chunk(root.initMigrateChunk(), m.chunk, corrupt);
        break;
      case kv_op::lookup:
        set_list(root.initLookup(n), m.hashes);
        break;
      case kv_op::lookup_reply:
        set_list(root.initLookupReply(n), m.hashes);
        break;
      case kv_op::get:
        set_list(root.initGet(n), m.hashes);
        break;
      case kv_op::evict_notice:
        set_list(root.initEvictNotice(n), m.hashes);
        break;
      case kv_op::migrate: {
        auto g = root.initMigrate();
        g.setOwner(m.owner);
        g.setTarget(m.target);
        break;
      }
      case kv_op::error: {
        auto g = root.initError();
        g.setCode(static_cast<schema::KvError>(m.error));
        g.setHash(m.error_hash);
        break;
      }
      case kv_op::prompt: {
        auto g = root.initPrompt();
        set_list(g.initTokens(static_cast<unsigned>(m.tokens.size())), m.tokens);
        set_list(g.initServers(static_cast<unsigned>(m.servers.size())), m.servers);
        break;
      }
      case kv_op::answer:
        set_answer(root.initAnswer(), m.answer);
        break;
    }
  });
}

absl::StatusOr<kv_message> decode_kv(const payload_ptr& p, bool keep_data) {
  if (!p)
    return absl::InvalidArgumentError("kvcache: empty payload");
  kv_message m;
  auto st = decode_flat<schema::KvMessage>(*p, [&](schema::KvMessage::Reader r) -> absl::Status {
    m.request = r.getRequest();
    m.origin = r.getOrigin();
    switch (r.which()) {
      case schema::KvMessage::PUT:
        m.op = kv_op::put;
        m.chunk = get_chunk(r.getPut(), keep_data);
        break;
      case schema::KvMessage::CHUNK:
        m.op = kv_op::chunk;
        m.chunk = get_chunk(r.getChunk(), keep_data);
        break;
      case schema::KvMessage::MIGRATE_CHUNK:
        m.op = kv_op::migrate_chunk;
        m.chunk = get_chunk(r.getMigrateChunk(), keep_data);
        break;
      case schema::KvMessage::LOOKUP:
        m.op = kv_op::lookup;
        m.hashes = get_list<std::uint64_t>(r.getLookup());
        break;
      case schema::KvMessage::LOOKUP_REPLY:
        m.op = kv_op::lookup_reply;
        m.hashes = get_list<std::uint64_t>(r.getLookupReply());
        break;
      case schema::KvMessage::GET:
        m.op = kv_op::get;
        m.hashes = get_list<std::uint64_t>(r.getGet());
        break;
      case schema::KvMessage::EVICT_NOTICE:
        m.op = kv_op::evict_notice;
        m.hashes = get_list<std::uint64_t>(r.getEvictNotice());
        break;
      case schema::KvMessage::MIGRATE:
        m.op = kv_op::migrate;
        m.owner = r.getMigrate().getOwner();
        m.target = r.getMigrate().getTarget();
        break;
      case schema::KvMessage::ERROR: {
        m.op = kv_op::error;
        const auto code = static_cast<std::uint16_t>(r.getError().getCode());
        if (code > static_cast<std::uint16_t>(kv_error::bad_checksum))
          return absl::InvalidArgumentError("kvcache: unknown error code");
        m.error = static_cast<kv_error>(code);
        m.error_hash = r.getError().getHash();
        break;
      }
      case schema::KvMessage::PROMPT:
        m.op = kv_op::prompt;
        m.tokens = get_list<std::uint32_t>(r.getPrompt().getTokens());
        m.servers = get_list<std::uint32_t>(r.getPrompt().getServers());
        break;
      case schema::KvMessage::ANSWER: {
        m.op = kv_op::answer;
        auto a = get_answer(r.getAnswer());
        if (!a.ok())
          return a.status();
        m.answer = std::move(*a);
        break;
      }
      default:
        return absl::InvalidArgumentError("kvcache: unknown message");
    }
    return absl::OkStatus();
  });
  if (!st.ok())
    return st;
  return m;
}

bool operator==(const kv_chunk& a, const kv_chunk& b) {
  auto bytes = [](const kv_chunk& c) {
    return c.data ? *c.data : std::vector<std::byte>(c.data_bytes);
  };
  return a.hash == b.hash && a.index == b.index && a.tokens == b.tokens && a.owner == b.owner &&
         bytes(a) == bytes(b);
}

bool operator==(const kv_answer& a, const kv_answer& b) {
  return static_cast<const kv_account&>(a) == static_cast<const kv_account&>(b) &&
         a.last == b.last && a.received_ns == b.received_ns && a.sent_ns == b.sent_ns &&
         a.hidden.size() == b.hidden.size() &&
         (a.hidden.empty() ||
          std::memcmp(a.hidden.data(), b.hidden.data(), a.hidden.size() * sizeof(float)) == 0);
}

absl::Status check_kv_entities(const kv_message& m, std::size_t entities) {
  auto check = [&](const char* what, std::uint32_t id) {
    if (id < entities)
      return absl::OkStatus();
    return absl::InvalidArgumentError(
      absl::StrCat("kvcache: ", what, " is entity ", id, " of a run with ", entities));
  };
  auto st = check("origin", m.origin);
  if (st.ok() && carries_chunk(m.op))
    st = check("chunk owner", m.chunk.owner);
  if (st.ok() && m.op == kv_op::migrate) {
    st = check("migration owner", m.owner);
    if (st.ok())
      st = check("migration target", m.target);
  }
  for (std::size_t i = 0; st.ok() && i < m.servers.size(); ++i)
    st = check("a server", m.servers[i]);
  return st;
}

} // namespace satemu::protocol
