// Reference-counted flat message buffers.

#include "protocol/payload.hpp"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"

namespace satemu::protocol {

payload* payload::allocate(std::size_t size_words) noexcept {
  constexpr auto max_words
    = (std::numeric_limits<std::size_t>::max() - sizeof(payload)) / 8;
  if (size_words > max_words)
    return nullptr;
  // Default operator new aligns to __STDCPP_DEFAULT_NEW_ALIGNMENT__ (16 on our
  // targets), so the words after the 16-byte header are word-aligned.
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ >= alignof(std::uint64_t));
  void* mem = ::operator new(sizeof(payload) + size_words * 8, std::nothrow);
  if (mem == nullptr)
    return nullptr;
  return new (mem) payload(size_words);
}

void payload::release(const payload* p) noexcept {
  // acq_rel: the last owner must see all writes made through other handles
  // before it frees the memory.
  if (p->refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    auto* mut = const_cast<payload*>(p);
    mut->~payload();
    ::operator delete(static_cast<void*>(mut));
  }
}

absl::StatusOr<payload_ptr>
payload::from_bytes(std::span<const std::byte> bytes) {
  if (bytes.size() % 8 != 0)
    return absl::InvalidArgumentError(
      absl::StrCat("payload size ", bytes.size(),
                   " bytes is not a multiple of 8 (flat Cap'n Proto words)"));
  if (bytes.empty())
    return payload_ptr{};
  auto result = try_build_words(bytes.size() / 8, [&](std::span<std::uint64_t> out) {
    std::memcpy(out.data(), bytes.data(), bytes.size());
  });
  if (!result)
    return absl::ResourceExhaustedError(
      absl::StrCat("cannot allocate a payload of ", bytes.size(), " bytes"));
  return result;
}

bool same_bytes(const payload_ptr& x, const payload_ptr& y) noexcept {
  auto xs = x.bytes();
  auto ys = y.bytes();
  if (xs.size() != ys.size())
    return false;
  return xs.data() == ys.data() || xs.empty()
         || std::memcmp(xs.data(), ys.data(), xs.size()) == 0;
}

std::string to_string(const payload_ptr& x) {
  return absl::StrCat("payload(", x.size_bytes(), " B)");
}

} // namespace satemu::protocol
