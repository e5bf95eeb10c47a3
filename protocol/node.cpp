// Node message encoding and checked decoding.
#include "protocol/node.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "capnp/message.h"
#include "protocol/codec.hpp"
#include "protocol/node.capnp.h"

namespace satemu::protocol {

namespace {

using schema::NodeMessage;

capnp::Data::Reader as_data(const std::string& s) {
  return {reinterpret_cast<const capnp::byte*>(s.data()), s.size()};
}

// The whole string, NULs inside included (a std::string converts to a Text
// through c_str() and would stop at the first one; from_text keeps them).
capnp::Text::Reader as_text(const std::string& s) { return {s.data(), s.size()}; }

std::string from_data(capnp::Data::Reader d) {
  return {reinterpret_cast<const char*>(d.begin()), d.size()};
}

std::string from_text(capnp::Text::Reader t) {
  return {t.cStr(), t.size()};
}

template <class... Fs>
struct overloaded : Fs... {
  using Fs::operator()...;
};
template <class... Fs>
overloaded(Fs...) -> overloaded<Fs...>;

/// The sizes that decide whether a message can be encoded: its bytes,
/// roughly (for the builder's first segment), and its largest blob.
struct message_size {
  std::size_t bytes = 0;
  std::size_t largest_blob = 0;

  /// A blob (Data, Text, List(UInt32)) of `n` bytes and `extra` bytes around it.
  void add(std::size_t n, std::size_t extra = 0) {
    bytes += n + extra;
    largest_blob = std::max(largest_blob, n);
  }
  /// Root, union struct, inner struct and list pointers, padding of each blob.
  std::size_t words() const { return 16 + (bytes + 7) / 8 + 4; }
};

message_size size_of(const node_message& m) {
  message_size s;
  std::visit(overloaded{
               [&](const node_hello& x) {
                 s.add(x.nonce.size());
                 s.add(x.software.size());
               },
               [&](const node_challenge& x) { s.add(x.nonce.size()); },
               [&](const node_response& x) { s.add(x.mac.size()); },
               [&](const node_accepted& x) {
                 s.add(x.proof.size());
                 s.add(x.software.size());
               },
               [&](const node_refused& x) { s.add(x.reason.size()); },
               [&](const node_ping& x) { s.add(x.data.size()); },
               [&](const node_pong& x) { s.add(x.data.size()); },
               [&](const node_end& x) { s.add(x.reason.size()); },
               [&](const node_error& x) { s.add(x.message.size()); },
               [&](const node_setup& x) {
                 s.add(x.scenario.size());
                 s.add(4 * x.node_of.size());
               },
               [&](const node_ready& x) {
                 for (const auto& i : x.inputs)
                   s.add(i.key.size(), 24);
               },
               [&](const node_grant& x) {
                 for (const auto& b : x.batches)
                   s.add(b.size(), 16);
               },
               [&](const node_report& x) {
                 for (const auto& b : x.batches)
                   s.add(b.data.size(), 48);
               },
               [&](const node_results& x) {
                 s.add(x.entities.size());
                 s.add(x.workload.size(), 16);
               },
               [&](const node_abort& x) { s.add(x.reason.size()); },
             },
             m);
  return s;
}

absl::Status frame_too_big(const node_message& m, std::size_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat("a ", std::string(node_kind_name(m)),
                                                 " message of ", bytes, " bytes or more is above the ",
                                                 max_node_frame_bytes, " bytes one frame carries"));
}

} // namespace

std::string_view node_kind_name(const node_message& m) noexcept {
  static constexpr std::string_view names[] = {
    "hello", "challenge", "response", "accepted", "refused", "ping",   "pong",  "end",
    "error", "setup",     "ready",    "grant",    "report",  "results", "abort"};
  static_assert(std::size(names) == std::variant_size_v<node_message>);
  return names[m.index()];
}

std::string node_error_code_name(node_error_code c) {
  switch (c) {
    case node_error_code::malformed_frame:
      return "malformed frame";
    case node_error_code::unexpected_frame:
      return "unexpected frame";
    case node_error_code::unsupported_frame:
      return "unsupported frame";
    case node_error_code::unauthenticated_frame:
      return "unauthenticated frame";
  }
  return absl::StrCat("error ", static_cast<unsigned>(c));
}

absl::StatusOr<std::string> encode_node_message(const node_message& m) {
  const auto size = size_of(m);
  // Checked before building: Cap'n Proto throws on a blob above its limit.
  if (size.largest_blob > max_node_blob_bytes)
    return absl::InvalidArgumentError(
      absl::StrCat("a ", std::string(node_kind_name(m)), " message would hold a field of ",
                   size.largest_blob, " bytes, above the ", max_node_blob_bytes,
                   " bytes one field carries"));
  if (size.bytes > max_node_frame_bytes)
    return frame_too_big(m, size.bytes);
  const auto flat = build_flat(size.words(), [&](capnp::MessageBuilder& builder) {
    auto root = builder.initRoot<NodeMessage>();
    std::visit(overloaded{
                 [&](const node_hello& x) {
                   auto b = root.initHello();
                   b.setVersion(x.version);
                   b.setNonce(as_data(x.nonce));
                   b.setSoftware(as_text(x.software));
                 },
                 [&](const node_challenge& x) { root.initChallenge().setNonce(as_data(x.nonce)); },
                 [&](const node_response& x) { root.initResponse().setMac(as_data(x.mac)); },
                 [&](const node_accepted& x) {
                   auto b = root.initAccepted();
                   b.setProof(as_data(x.proof));
                   b.setThreads(x.threads);
                   b.setSoftware(as_text(x.software));
                 },
                 [&](const node_refused& x) { root.initRefused().setReason(as_text(x.reason)); },
                 [&](const node_ping& x) {
                   auto b = root.initPing();
                   b.setSeq(x.seq);
                   b.setData(as_data(x.data));
                 },
                 [&](const node_pong& x) {
                   auto b = root.initPong();
                   b.setSeq(x.seq);
                   b.setData(as_data(x.data));
                 },
                 [&](const node_end& x) { root.initEnd().setReason(as_text(x.reason)); },
                 [&](const node_error& x) {
                   auto b = root.initError();
                   b.setCode(static_cast<std::uint16_t>(x.code));
                   b.setMessage(as_text(x.message));
                 },
                 [&](const node_setup& x) {
                   auto b = root.initSetup();
                   b.setScenario(as_text(x.scenario));
                   b.setNode(x.node);
                   b.setNodes(x.nodes);
                   auto l = b.initNodeOf(static_cast<unsigned>(x.node_of.size()));
                   for (unsigned i = 0; i < x.node_of.size(); ++i)
                     l.set(i, x.node_of[i]);
                   b.setThreads(x.threads);
                 },
                 [&](const node_ready& x) {
                   auto b = root.initReady();
                   b.setEntities(x.entities);
                   b.setTotal(x.total);
                   b.setLookaheadNs(x.lookahead_ns);
                   auto l = b.initInputs(static_cast<unsigned>(x.inputs.size()));
                   for (unsigned i = 0; i < x.inputs.size(); ++i) {
                     l[i].setKey(as_text(x.inputs[i].key));
                     l[i].setDigest(x.inputs[i].digest);
                   }
                 },
                 [&](const node_grant& x) {
                   auto b = root.initGrant();
                   b.setWindowEnd(x.window_end);
                   b.setWindowStart(x.window_start);
                   b.setStop(x.stop);
                   b.setInterrupted(x.interrupted);
                   auto l = b.initBatches(static_cast<unsigned>(x.batches.size()));
                   for (unsigned i = 0; i < x.batches.size(); ++i)
                     l.set(i, as_data(x.batches[i]));
                 },
                 [&](const node_report& x) {
                   auto b = root.initReport();
                   b.setNextNs(x.next_ns);
                   b.setEvents(x.events);
                   auto l = b.initBatches(static_cast<unsigned>(x.batches.size()));
                   for (unsigned i = 0; i < x.batches.size(); ++i) {
                     auto e = l[i];
                     e.setNode(x.batches[i].node);
                     e.setFirstNs(x.batches[i].first_ns);
                     e.setCount(x.batches[i].count);
                     e.setData(as_data(x.batches[i].data));
                   }
                 },
                 [&](const node_results& x) {
                   auto b = root.initResults();
                   b.setEntities(as_data(x.entities));
                   b.setWorkload(as_data(x.workload));
                   b.setEvents(x.events);
                   b.setWindows(x.windows);
                   b.setCrossEnvelopes(x.cross_envelopes);
                   b.setCrossBytes(x.cross_bytes);
                   b.setBarrierWaitNs(x.barrier_wait_ns);
                   b.setComputeRequests(x.compute_requests);
                   b.setComputeBatches(x.compute_batches);
                 },
                 [&](const node_abort& x) { root.initAbort().setReason(as_text(x.reason)); },
               },
               m);
  });
  if (flat->size_bytes() > max_node_frame_bytes)
    return frame_too_big(m, flat->size_bytes());
  return std::string(reinterpret_cast<const char*>(flat->data()), flat->size_bytes());
}

absl::StatusOr<node_message> decode_node_message(std::string_view frame) {
  if (frame.size() > max_node_frame_bytes)
    return absl::InvalidArgumentError(absl::StrCat("frame of ", frame.size(),
                                                   " bytes exceeds the limit of ",
                                                   max_node_frame_bytes));
  if (frame.empty())
    return absl::InvalidArgumentError("empty frame");
  if (frame.size() % 8 != 0)
    return absl::InvalidArgumentError(
      absl::StrCat("frame size ", frame.size(), " bytes is not a multiple of 8"));
  // The string's bytes need not be word-aligned: copy them into words.
  auto words = std::make_unique_for_overwrite<std::uint64_t[]>(frame.size() / 8);
  std::memcpy(words.get(), frame.data(), frame.size());
  flat_message msg;
  if (auto st = msg.open(std::span<const std::byte>(
        reinterpret_cast<const std::byte*>(words.get()), frame.size()));
      !st.ok())
    return st;
  node_message out;
  auto st = msg.read<NodeMessage>([&](NodeMessage::Reader r) -> absl::Status {
    switch (r.which()) {
      case NodeMessage::HELLO: {
        auto x = r.getHello();
        out = node_hello{x.getVersion(), from_data(x.getNonce()), from_text(x.getSoftware())};
        return absl::OkStatus();
      }
      case NodeMessage::CHALLENGE:
        out = node_challenge{from_data(r.getChallenge().getNonce())};
        return absl::OkStatus();
      case NodeMessage::RESPONSE:
        out = node_response{from_data(r.getResponse().getMac())};
        return absl::OkStatus();
      case NodeMessage::ACCEPTED: {
        auto x = r.getAccepted();
        out = node_accepted{from_data(x.getProof()), x.getThreads(), from_text(x.getSoftware())};
        return absl::OkStatus();
      }
      case NodeMessage::REFUSED:
        out = node_refused{from_text(r.getRefused().getReason())};
        return absl::OkStatus();
      case NodeMessage::PING: {
        auto x = r.getPing();
        out = node_ping{x.getSeq(), from_data(x.getData())};
        return absl::OkStatus();
      }
      case NodeMessage::PONG: {
        auto x = r.getPong();
        out = node_pong{x.getSeq(), from_data(x.getData())};
        return absl::OkStatus();
      }
      case NodeMessage::END:
        out = node_end{from_text(r.getEnd().getReason())};
        return absl::OkStatus();
      case NodeMessage::ERROR: {
        auto x = r.getError();
        out = node_error{static_cast<node_error_code>(x.getCode()), from_text(x.getMessage())};
        return absl::OkStatus();
      }
      case NodeMessage::SETUP: {
        auto x = r.getSetup();
        node_setup v{from_text(x.getScenario()), x.getNode(), x.getNodes(), {}, x.getThreads()};
        auto l = x.getNodeOf();
        v.node_of.reserve(l.size());
        for (auto k : l)
          v.node_of.push_back(k);
        out = std::move(v);
        return absl::OkStatus();
      }
      case NodeMessage::READY: {
        auto x = r.getReady();
        node_ready v{x.getEntities(), x.getTotal(), x.getLookaheadNs(), {}};
        for (auto i : x.getInputs())
          v.inputs.push_back({from_text(i.getKey()), i.getDigest()});
        out = std::move(v);
        return absl::OkStatus();
      }
      case NodeMessage::GRANT: {
        auto x = r.getGrant();
        node_grant v{x.getWindowEnd(), x.getStop(), x.getInterrupted(), {}, x.getWindowStart()};
        for (auto d : x.getBatches())
          v.batches.push_back(from_data(d));
        out = std::move(v);
        return absl::OkStatus();
      }
      case NodeMessage::REPORT: {
        auto x = r.getReport();
        node_report v{x.getNextNs(), x.getEvents(), {}};
        for (auto b : x.getBatches())
          v.batches.push_back({b.getNode(), b.getFirstNs(), b.getCount(), from_data(b.getData())});
        out = std::move(v);
        return absl::OkStatus();
      }
      case NodeMessage::RESULTS: {
        auto x = r.getResults();
        out = node_results{from_data(x.getEntities()), from_data(x.getWorkload()), x.getEvents(),
                           x.getWindows(),  x.getCrossEnvelopes(), x.getCrossBytes(),
                           x.getBarrierWaitNs(), x.getComputeRequests(),
                           x.getComputeBatches()};
        return absl::OkStatus();
      }
      case NodeMessage::ABORT:
        out = node_abort{from_text(r.getAbort().getReason())};
        return absl::OkStatus();
    }
    return absl::UnimplementedError(absl::StrCat(
      "unknown node message kind ", static_cast<unsigned>(r.which()),
      " (sent by a newer version?)"));
  });
  if (!st.ok())
    return st;
  return out;
}

std::string to_string(const node_frame& x) {
  return absl::StrCat("node_frame(", x.bytes.size(), " B)");
}

} // namespace satemu::protocol
