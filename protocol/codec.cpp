// Flattening and defensive opening of Cap'n Proto messages.

#include "protocol/codec.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "capnp/any.h"

namespace satemu::protocol {

namespace {

// Cap'n Proto's wire format is little-endian; so is every machine we run on,
// which lets the segment table be read and written with plain loads.
static_assert(std::endian::native == std::endian::little,
              "the flat-message code assumes a little-endian host");

std::uint32_t load_u32(const std::byte* p) noexcept {
  std::uint32_t x;
  std::memcpy(&x, p, sizeof(x));
  return x;
}

std::uint64_t table_words(std::uint64_t segments) noexcept {
  // One u32 for the count, one per segment, padded to a whole word.
  return segments / 2 + 1;
}

// A builder whose first segment is memory it is given (zeroed) and whose
// further segments come from the heap. Unlike MallocMessageBuilder with
// scratch space, it leaves the first segment as built when it goes.
class in_place_builder final : public capnp::MessageBuilder {
public:
  explicit in_place_builder(kj::ArrayPtr<capnp::word> first)
    : first_(first), total_(first.size()) {}

  kj::ArrayPtr<capnp::word> allocateSegment(unsigned minimum) override {
    if (!first_given_) {
      first_given_ = true;
      if (minimum <= first_.size())
        return first_;
    }
    // Each further segment at least as large as the message so far, as
    // MallocMessageBuilder grows by default.
    const std::size_t words = std::max<std::size_t>(minimum, total_);
    total_ += words;
    more_.push_back(std::make_unique<std::uint64_t[]>(words)); // zeroed
    return {reinterpret_cast<capnp::word*>(more_.back().get()), words};
  }

private:
  kj::ArrayPtr<capnp::word> first_;
  bool first_given_ = false;
  std::size_t total_;
  std::vector<std::unique_ptr<std::uint64_t[]>> more_;
};

} // namespace

absl::Status check_segment_table(std::span<const std::byte> bytes,
                                 std::uint32_t max_segments) {
  if (bytes.empty())
    return absl::InvalidArgumentError("empty payload: no Cap'n Proto message");
  if (bytes.size() % 8 != 0)
    return absl::InvalidArgumentError(absl::StrCat(
      "payload size ", bytes.size(), " bytes is not a multiple of 8"));
  const std::uint64_t words = bytes.size() / 8;
  const std::uint64_t segments = std::uint64_t{load_u32(bytes.data())} + 1;
  if (segments > max_segments)
    return absl::InvalidArgumentError(absl::StrCat(
      "segment table declares ", segments, " segments (limit ", max_segments,
      ")"));
  const auto table = table_words(segments);
  if (table > words)
    return absl::InvalidArgumentError(absl::StrCat(
      "segment table needs ", table, " words but the payload has ", words));
  // Sum in 64 bits: at most 512 segments of < 2^32 words cannot overflow.
  std::uint64_t total = table;
  for (std::uint64_t i = 0; i < segments; ++i) {
    const auto seg = load_u32(bytes.data() + 4 * (i + 1));
    if (i == 0 && seg == 0)
      return absl::InvalidArgumentError("segment 0 is empty: no root pointer");
    total += seg;
  }
  if (total != words)
    return absl::InvalidArgumentError(absl::StrCat(
      "segment table declares ", total, " words but the payload has ", words,
      total > words ? " (truncated message)" : " (trailing bytes)"));
  return absl::OkStatus();
}

std::size_t flat_size_words(capnp::MessageBuilder& builder) {
  auto segments = builder.getSegmentsForOutput();
  std::size_t total = table_words(segments.size());
  for (auto seg : segments)
    total += seg.size();
  return total;
}

payload_ptr encode_flat(capnp::MessageBuilder& builder) {
  auto segments = builder.getSegmentsForOutput();
  const std::size_t table = table_words(segments.size());
  std::size_t total = table;
  for (auto seg : segments)
    total += seg.size();
  return payload::build_words(total, [&](std::span<std::uint64_t> out) {
    auto* table_u32 = reinterpret_cast<std::byte*>(out.data());
    // Zero the table's last word first so that the padding slot is defined.
    out[table - 1] = 0;
    const auto count = static_cast<std::uint32_t>(segments.size() - 1);
    std::memcpy(table_u32, &count, 4);
    for (std::size_t i = 0; i < segments.size(); ++i) {
      const auto size = static_cast<std::uint32_t>(segments[i].size());
      std::memcpy(table_u32 + 4 * (i + 1), &size, 4);
    }
    auto* dst = out.data() + table;
    for (auto seg : segments) {
      std::memcpy(dst, seg.begin(), seg.size() * sizeof(capnp::word));
      dst += seg.size();
    }
  });
}

payload_ptr build_flat(std::size_t words,
                       absl::FunctionRef<void(capnp::MessageBuilder&)> build) {
  payload_ptr spilled;
  auto built = payload::build_words_up_to(1 + words, [&](std::span<std::uint64_t> out) {
    std::memset(out.data(), 0, out.size_bytes());
    auto* first = reinterpret_cast<capnp::word*>(out.data() + 1);
    in_place_builder builder({first, words});
    build(builder);
    const auto segments = builder.getSegmentsForOutput();
    if (segments.size() != 1 || segments[0].begin() != first) {
      spilled = encode_flat(builder);
      return std::size_t{0};
    }
    // The table of one segment: count - 1 = 0, then the segment's size.
    const auto size = static_cast<std::uint32_t>(segments[0].size());
    std::memcpy(reinterpret_cast<std::byte*>(out.data()) + 4, &size, 4);
    return 1 + segments[0].size();
  });
  return built ? built : spilled;
}

absl::Status decode_error(const kj::Exception& e) {
  return absl::InvalidArgumentError(absl::StrCat(
    "malformed Cap'n Proto message: ", e.getDescription().cStr()));
}

absl::Status flat_message::open(payload_ptr body, const decode_options& opts) {
  reader_.reset();
  body_ = std::move(body);
  if (!body_)
    return check_segment_table({}, opts.max_segments);
  auto st = open(body_->bytes(), opts);
  if (!st.ok())
    body_.reset();
  return st;
}

absl::Status flat_message::open(const payload& body,
                                const decode_options& opts) {
  return open(body.bytes(), opts);
}

absl::Status flat_message::open(std::span<const std::byte> bytes,
                                const decode_options& opts) {
  reader_.reset();
  if (auto st = check_segment_table(bytes, opts.max_segments); !st.ok())
    return st;
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word)
      != 0)
    return absl::InvalidArgumentError("payload is not 8-byte aligned");
  const std::uint64_t words = bytes.size() / 8;
  capnp::ReaderOptions options;
  const auto limit = std::min<std::uint64_t>(
    words * opts.traversal_words_per_word + opts.traversal_slack_words,
    std::numeric_limits<std::uint64_t>::max() / 2);
  options.traversalLimitInWords = limit;
  options.nestingLimit = opts.nesting_limit;
  try {
    reader_.emplace(
      kj::ArrayPtr<const capnp::word>(
        reinterpret_cast<const capnp::word*>(bytes.data()), words),
      options);
    // One full traversal checks every pointer's bounds, the nesting limit
    // and the traversal budget; afterwards field reads stay inside the buffer.
    reader_->getRoot<capnp::AnyPointer>().targetSize();
  } catch (const kj::Exception& e) {
    reader_.reset();
    return decode_error(e);
  } catch (const std::exception& e) {
    reader_.reset();
    return absl::InternalError(e.what());
  }
  return absl::OkStatus();
}

} // namespace satemu::protocol
