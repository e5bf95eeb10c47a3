#include "protocol/envelope_batch.hpp"

#include "absl/strings/str_cat.h"
#include "protocol/bytes.hpp"

namespace satemu::protocol {

namespace {
/// Fixed part of one encoded envelope: hop, from, src, dst (4 x u32),
/// send, deliver, seq (3 x 8), hops (u32), kind (u16), payload length (u32).
constexpr std::size_t fixed_bytes = 4 * 4 + 3 * 8 + 4 + 2 + 4;
} // namespace

void encode_envelopes(std::span<const routed_envelope> batch, std::string& out) {
  std::size_t size = 8;
  for (const auto& r : batch)
    size += fixed_bytes + r.env.body.size_bytes();
  out.reserve(out.size() + size);
  byte_writer w(out);
  w.u64(batch.size());
  for (const auto& r : batch) {
    w.u32(r.hop);
    w.u32(r.from);
    w.u32(r.env.src);
    w.u32(r.env.dst);
    w.i64(r.env.send_ns);
    w.i64(r.env.deliver_ns);
    w.u64(r.env.seq);
    w.u32(r.env.hops);
    w.u16(static_cast<std::uint16_t>(r.env.k));
    const auto b = r.env.body.bytes();
    w.bytes(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  }
}

std::vector<std::span<const routed_envelope>> split_envelopes(
  std::span<const routed_envelope> batch, std::size_t max_bytes) {
  std::vector<std::span<const routed_envelope>> out;
  std::size_t first = 0;
  std::size_t size = 8;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto bytes = fixed_bytes + batch[i].env.body.size_bytes();
    if (i > first && size + bytes > max_bytes) {
      out.push_back(batch.subspan(first, i - first));
      first = i;
      size = 8;
    }
    size += bytes;
  }
  if (first < batch.size())
    out.push_back(batch.subspan(first));
  return out;
}

absl::Status decode_envelopes(std::string_view bytes, std::uint32_t entity_count,
                              std::vector<routed_envelope>& out) {
  byte_reader r(bytes);
  const auto n = r.count("envelope count", fixed_bytes);
  out.reserve(out.size() + n);
  for (std::uint64_t i = 0; i < n && r.ok(); ++i) {
    routed_envelope x;
    x.hop = r.u32("hop");
    x.from = r.u32("from");
    x.env.src = r.u32("src");
    x.env.dst = r.u32("dst");
    x.env.send_ns = r.i64("send time");
    x.env.deliver_ns = r.i64("delivery time");
    x.env.seq = r.u64("sequence");
    x.env.hops = r.u32("hops");
    const auto k = r.u16("kind");
    x.env.k = static_cast<kind>(k);
    const auto body = r.bytes("payload");
    if (!r.ok())
      break;
    if (!crosses_nodes(x.env.k)) {
      r.fail(absl::StrCat("envelope ", i, " has kind ", k, " (", std::string(to_string(x.env.k)),
                          "), which never travels between nodes"));
      break;
    }
    for (const auto id : {x.hop, x.from, x.env.src, x.env.dst})
      if (id >= entity_count) {
        r.fail(absl::StrCat("envelope ", i, " names entity ", id, " of a run with ", entity_count,
                            " entities"));
        break;
      }
    if (!r.ok())
      break;
    if (x.env.deliver_ns < x.env.send_ns) {
      r.fail(absl::StrCat("envelope ", i, " is delivered before it was sent"));
      break;
    }
    if (!body.empty()) {
      auto p = payload::from_bytes(
        std::span<const std::byte>(reinterpret_cast<const std::byte*>(body.data()), body.size()));
      if (!p.ok()) {
        r.fail(absl::StrCat("envelope ", i, ": ", p.status().message()));
        break;
      }
      x.env.body = std::move(*p);
    }
    out.push_back(std::move(x));
  }
  r.expect_end("the envelopes");
  if (!r.ok())
    return absl::InvalidArgumentError(absl::StrCat("envelope batch: ", r.status().message()));
  return absl::OkStatus();
}

} // namespace satemu::protocol
