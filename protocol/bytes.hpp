/// @file bytes.hpp
/// A small little-endian byte format for state that crosses processes in
/// bulk: envelopes handed between nodes and entities' results at the end of
/// a distributed run. Writing appends to a string; reading never trusts its
/// input: every read is bounds-checked, and the first failure sticks and is
/// reported by `status()` with the offset and what was being read.
///
/// Capnp-free and CAF-free: included by entity.hpp.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace satemu::protocol {

class byte_writer {
public:
  explicit byte_writer(std::string& out) : out_(out) {
  }

  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { put(v); }
  void u32(std::uint32_t v) { put(v); }
  void u64(std::uint64_t v) { put(v); }
  void i64(std::int64_t v) { put(static_cast<std::uint64_t>(v)); }
  /// The IEEE-754 bits of `v`, so the value round-trips exactly.
  void f64(double v) {
    std::uint64_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    put(bits);
  }
  /// A length (u32) then the bytes.
  void bytes(std::string_view b) {
    u32(static_cast<std::uint32_t>(b.size()));
    out_.append(b.data(), b.size());
  }

private:
  template <class T>
  void put(T v) {
    char buf[sizeof(T)];
    for (std::size_t i = 0; i < sizeof(T); ++i)
      buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_.append(buf, sizeof(T));
  }
  std::string& out_;
};

class byte_reader {
public:
  explicit byte_reader(std::string_view in) : in_(in) {
  }

  /// `what` names the field in the error if the read fails.
  std::uint8_t u8(const char* what) { return static_cast<std::uint8_t>(get(1, what)); }
  std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(get(2, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(get(4, what)); }
  std::uint64_t u64(const char* what) { return get(8, what); }
  std::int64_t i64(const char* what) { return static_cast<std::int64_t>(get(8, what)); }
  double f64(const char* what) {
    const auto bits = get(8, what);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  /// A length-prefixed byte string; empty after a failure. The view points
  /// into the input.
  std::string_view bytes(const char* what);

  /// A count of items that each take at least `min_item_bytes`: fails
  /// (instead of letting a caller reserve a huge vector) when the input
  /// cannot hold that many.
  std::uint64_t count(const char* what, std::size_t min_item_bytes);

  bool ok() const { return status_.ok(); }
  bool at_end() const { return pos_ == in_.size(); }
  std::size_t remaining() const { return in_.size() - pos_; }
  /// OK, or InvalidArgument naming the first failed read and its offset.
  const absl::Status& status() const { return status_; }
  /// Fails the reader with `message` at the current offset (for checks of
  /// values read), unless it has failed already.
  void fail(std::string_view message);
  /// Fails unless every byte was read ("trailing bytes").
  void expect_end(const char* what);

private:
  std::uint64_t get(std::size_t n, const char* what);
  std::string_view in_;
  std::size_t pos_ = 0;
  absl::Status status_;
};

} // namespace satemu::protocol
