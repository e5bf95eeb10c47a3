/// @file payload.hpp
/// Immutable, reference-counted byte buffer holding one Cap'n Proto message in
/// flat form (segment table followed by the segments, 8-byte aligned words).
///
/// This header is included by the whole kernel: it must stay free of Cap'n
/// Proto and CAF headers.

#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <string>
#include <utility>

#include "absl/status/statusor.h"

namespace satemu::protocol {

class payload_ptr;

/// One immutable message body. The reference count and the bytes live in one
/// allocation; the bytes start 16 bytes after the object and are therefore
/// aligned to at least 8 bytes (a Cap'n Proto word). Construct only through the
/// factories below; share through `payload_ptr`.
class payload {
public:
  payload(const payload&) = delete;
  payload& operator=(const payload&) = delete;

  /// Size of the flat message in bytes; always a multiple of 8.
  std::size_t size_bytes() const noexcept {
    return size_words_ * 8;
  }

  /// Size of the flat message in 8-byte words.
  std::size_t size_words() const noexcept {
    return size_words_;
  }

  /// First byte of the flat message (8-byte aligned).
  const std::byte* data() const noexcept {
    return reinterpret_cast<const std::byte*>(this + 1);
  }

  /// The flat message as words (8-byte aligned).
  const std::uint64_t* words() const noexcept {
    return reinterpret_cast<const std::uint64_t*>(this + 1);
  }

  /// View of all bytes; valid while a `payload_ptr` to this payload lives.
  std::span<const std::byte> bytes() const noexcept {
    return {data(), size_bytes()};
  }

  /// Current number of `payload_ptr` handles sharing this payload.
  std::uint32_t use_count() const noexcept {
    return refs_.load(std::memory_order_relaxed);
  }

  /// Copies `bytes` into a new payload. Fails with InvalidArgument if the size
  /// is not a multiple of 8 and with ResourceExhausted if memory runs out. The
  /// content is not checked: decoding validates it (see codec.hpp), so
  /// malformed messages can be carried and rejected where they are read.
  /// An empty span gives a null `payload_ptr`.
  static absl::StatusOr<payload_ptr> from_bytes(std::span<const std::byte> bytes);

  /// Allocates a payload of `size_words` words and lets `fill` write it once,
  /// through a `std::span<std::uint64_t>`, before anyone else can see it.
  /// The memory handed to `fill` is uninitialised. `size_words == 0` gives a
  /// null handle without calling `fill`. Throws `std::bad_alloc` only if the
  /// process is out of memory.
  template <class F>
  static payload_ptr build_words(std::size_t size_words, F&& fill);

  /// Like `build_words` but returns a null handle instead of throwing when
  /// memory cannot be had (used for sizes that come from untrusted input).
  template <class F>
  static payload_ptr try_build_words(std::size_t size_words, F&& fill);

  /// Like `build_words`, but `fill` returns how many of the `size_words`
  /// words, from the first, the payload holds (at most `size_words`; the
  /// rest of the allocation goes unused). 0 gives a null handle.
  template <class F>
  static payload_ptr build_words_up_to(std::size_t size_words, F&& fill);

private:
  friend class payload_ptr;

  explicit payload(std::size_t size_words) noexcept : size_words_(size_words) {
    // nop
  }

  ~payload() = default;

  std::uint64_t* mutable_words() noexcept {
    return reinterpret_cast<std::uint64_t*>(this + 1);
  }

  /// Returns nullptr when out of memory.
  static payload* allocate(std::size_t size_words) noexcept;

  static void release(const payload* p) noexcept;

  mutable std::atomic<std::uint32_t> refs_{1};
  [[maybe_unused]] std::uint32_t reserved_ = 0;
  std::size_t size_words_;
};

static_assert(sizeof(payload) == 16, "payload data must start 16 bytes in");

/// Shared handle to an immutable `payload`. Copying bumps an atomic reference
/// count; it never copies the bytes. A null handle is an empty payload.
class payload_ptr {
public:
  payload_ptr() noexcept = default;

  payload_ptr(std::nullptr_t) noexcept {
    // nop
  }

  payload_ptr(const payload_ptr& other) noexcept : ptr_(other.ptr_) {
    if (ptr_ != nullptr)
      ptr_->refs_.fetch_add(1, std::memory_order_relaxed);
  }

  payload_ptr(payload_ptr&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)) {
    // nop
  }

  payload_ptr& operator=(payload_ptr other) noexcept {
    std::swap(ptr_, other.ptr_);
    return *this;
  }

  ~payload_ptr() {
    if (ptr_ != nullptr)
      payload::release(ptr_);
  }

  const payload* get() const noexcept {
    return ptr_;
  }

  const payload& operator*() const noexcept {
    return *ptr_;
  }

  const payload* operator->() const noexcept {
    return ptr_;
  }

  explicit operator bool() const noexcept {
    return ptr_ != nullptr;
  }

  /// Size in bytes; 0 for a null handle.
  std::size_t size_bytes() const noexcept {
    return ptr_ != nullptr ? ptr_->size_bytes() : 0;
  }

  /// Bytes of the payload; empty for a null handle.
  std::span<const std::byte> bytes() const noexcept {
    return ptr_ != nullptr ? ptr_->bytes() : std::span<const std::byte>{};
  }

  /// Number of handles sharing the payload; 0 for a null handle.
  std::uint32_t use_count() const noexcept {
    return ptr_ != nullptr ? ptr_->use_count() : 0;
  }

  void reset() noexcept {
    payload_ptr{}.swap(*this);
  }

  void swap(payload_ptr& other) noexcept {
    std::swap(ptr_, other.ptr_);
  }

  friend bool operator==(const payload_ptr& x, std::nullptr_t) noexcept {
    return x.ptr_ == nullptr;
  }

private:
  friend class payload;

  /// Adopts a freshly allocated payload (reference count already 1).
  explicit payload_ptr(const payload* adopted) noexcept : ptr_(adopted) {
    // nop
  }

  const payload* ptr_ = nullptr;
};

/// True if both payloads hold the same bytes (two null handles are equal, and
/// a null handle equals an empty payload).
bool same_bytes(const payload_ptr& x, const payload_ptr& y) noexcept;

/// Short human-readable description, e.g. "payload(48 B)"; lets CAF print
/// messages that carry a payload.
std::string to_string(const payload_ptr& x);

template <class F>
payload_ptr payload::build_words(std::size_t size_words, F&& fill) {
  auto result = try_build_words(size_words, std::forward<F>(fill));
  if (size_words != 0 && !result)
    throw std::bad_alloc{};
  return result;
}

template <class F>
payload_ptr payload::try_build_words(std::size_t size_words, F&& fill) {
  if (size_words == 0)
    return payload_ptr{};
  auto* p = allocate(size_words);
  if (p == nullptr)
    return payload_ptr{};
  payload_ptr result{p};
  fill(std::span<std::uint64_t>{p->mutable_words(), size_words});
  return result;
}

template <class F>
payload_ptr payload::build_words_up_to(std::size_t size_words, F&& fill) {
  if (size_words == 0)
    return payload_ptr{};
  auto* p = allocate(size_words);
  if (p == nullptr)
    throw std::bad_alloc{};
  payload_ptr result{p};
  const std::size_t used = fill(std::span<std::uint64_t>{p->mutable_words(), size_words});
  if (used == 0 || used > size_words)
    return payload_ptr{};
  p->size_words_ = used;
  return result;
}

} // namespace satemu::protocol
