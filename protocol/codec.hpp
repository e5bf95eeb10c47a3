/// @file codec.hpp
/// Generic Cap'n Proto <-> payload helpers: build a message in a payload (or
/// flatten a builder into one with one copy), and open a payload for reading
/// without trusting it.
///
/// Includes Cap'n Proto: include it only from .cpp files that encode or decode.

#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "capnp/message.h"
#include "capnp/serialize.h"
#include "kj/exception.h"
#include "protocol/payload.hpp"

namespace satemu::protocol {

/// Limits applied when reading an untrusted payload.
struct decode_options {
  /// Traversal budget per word of message [words read / word]. Validation
  /// reads every word once, so a budget of k lets the caller read the message
  /// k - 1 more times; it also bounds pointer-aliasing amplification.
  std::uint64_t traversal_words_per_word = 8;
  /// Budget added to the scaled one, so tiny messages can still be read [words].
  std::uint64_t traversal_slack_words = 1024;
  /// Most nested pointers followed from the root.
  int nesting_limit = 16;
  /// Most segments accepted in the segment table.
  std::uint32_t max_segments = 512;
};

/// Checks the flat segment table of `bytes` without reading the segments:
/// size is a non-zero multiple of 8, the segment count is within
/// `max_segments`, segment 0 is not empty, and the table plus the declared
/// segments cover exactly `bytes` (no truncation, no trailing bytes).
absl::Status check_segment_table(std::span<const std::byte> bytes,
                                 std::uint32_t max_segments = 512);

/// Number of words `encode_flat` produces for `builder` (segment table plus
/// segments).
std::size_t flat_size_words(capnp::MessageBuilder& builder);

/// Copies `builder`'s segments into a new payload in flat form (the layout of
/// `capnp::messageToFlatArray`), with the payload as the only copy.
payload_ptr encode_flat(capnp::MessageBuilder& builder);

/// Builds a message straight into a new payload in flat form: `build` fills
/// a builder whose first segment is `words` zeroed words of the payload
/// itself, after a one-word segment table, and the payload keeps the words
/// the message used. So a message that fits costs no copy: give `words` as
/// the message's size or a little over. One that needs more takes further
/// segments and is flattened by `encode_flat` (one copy). Exceptions from
/// `build` (Cap'n Proto's limits) pass through.
payload_ptr build_flat(std::size_t words,
                       absl::FunctionRef<void(capnp::MessageBuilder&)> build);

/// Words of one `Struct` (its data words and pointers) as the generated
/// schema lays it out: for sizing a message beforehand.
template <class Struct>
constexpr std::size_t struct_words() {
  return std::size_t{Struct::_capnpPrivate::dataWordSize} + Struct::_capnpPrivate::pointerCount;
}

/// Words of a message whose root, a `Root`, holds one Data field of
/// `blob_bytes` bytes: the root pointer, the struct and the blob's words.
template <class Root>
constexpr std::size_t root_and_blob_words(std::size_t blob_bytes) {
  return 1 + struct_words<Root>() + (blob_bytes + 7) / 8;
}

/// A validated reader over one payload. Keeps the payload alive; not movable
/// (the Cap'n Proto reader points into the payload and into itself), so
/// declare it where it is used (`decode_flat` below does both steps for one
/// read of a payload):
///
///     flat_message msg;
///     if (auto st = msg.open(p); !st.ok()) return st;
///     auto st = msg.read<schema::MeshMessage>([&](auto root) { ... });
class flat_message {
public:
  flat_message() = default;
  flat_message(const flat_message&) = delete;
  flat_message& operator=(const flat_message&) = delete;

  /// Checks the segment table, builds the reader with limits from `opts`
  /// scaled to the message size, and traverses the whole message once so
  /// that later reads cannot go out of bounds. Returns InvalidArgument with a
  /// description of the defect for a malformed message; a null payload is
  /// malformed (there is no root).
  absl::Status open(payload_ptr body, const decode_options& opts = {});

  /// Like `open(payload_ptr)` but does not own the bytes: `body` must outlive
  /// this object.
  absl::Status open(const payload& body, const decode_options& opts = {});

  /// Like `open(const payload&)` for any buffer; it must be 8-byte aligned
  /// and outlive this object.
  absl::Status open(std::span<const std::byte> bytes,
                    const decode_options& opts = {});

  /// True after a successful `open`.
  bool is_open() const noexcept {
    return reader_.has_value();
  }

  /// The underlying reader. @pre is_open()
  capnp::MessageReader& reader() noexcept {
    return *reader_;
  }

  /// Calls `f(root)` with the root as `Root::Reader`, converting any
  /// `kj::Exception` thrown while reading (e.g. a field of the wrong pointer
  /// type, or the traversal budget spent) into InvalidArgument. `f` returns
  /// void or absl::Status.
  template <class Root, class F>
  absl::Status read(F&& f) noexcept;

private:
  payload_ptr body_;
  std::optional<capnp::FlatArrayMessageReader> reader_;
};

/// Status for an exception thrown by Cap'n Proto while reading.
absl::Status decode_error(const kj::Exception& e);

template <class Root, class F>
absl::Status flat_message::read(F&& f) noexcept {
  if (!reader_)
    return absl::FailedPreconditionError("flat_message::read before open");
  try {
    auto root = reader_->getRoot<Root>();
    if constexpr (std::is_void_v<decltype(f(root))>) {
      f(root);
      return absl::OkStatus();
    } else {
      return f(root);
    }
  } catch (const kj::Exception& e) {
    return decode_error(e);
  } catch (const std::exception& e) {
    return absl::InternalError(e.what());
  } catch (...) {
    return absl::InternalError("unknown exception while decoding");
  }
}

/// Opens `body`, validates it and calls `f(root)` (see `flat_message`).
template <class Root, class F>
absl::Status decode_flat(const payload& body, F&& f,
                         const decode_options& opts = {}) noexcept {
  flat_message msg;
  if (auto st = msg.open(body, opts); !st.ok())
    return st;
  return msg.read<Root>(std::forward<F>(f));
}

} // namespace satemu::protocol
