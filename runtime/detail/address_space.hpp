/// Room under an address-space limit (ulimit -v), held or checked before a
/// step that cannot fail cleanly when none is left: a thread whose first
/// allocation finds no room ends the process in the allocator (jemalloc) or
/// in glibc, with no word. Private to runtime/.
#pragma once

#include <cstddef>

#include <sys/mman.h>

namespace satemu::runtime::detail {

/// Address space to find free per thread about to start: its stack (8 MiB)
/// and the allocator's state for it.
inline constexpr std::size_t thread_room_bytes = std::size_t{16} << 20;

/// The threads a CAF actor system starts beside its scheduler's: a timer, a
/// printer, a clock and a spare (its middleman, when loaded, one more).
inline constexpr std::size_t caf_extra_threads = 4;

/// Address space held back: a mapping without access, which takes no
/// memory, only room under the limit.
class address_space_reserve {
public:
  address_space_reserve() = default;
  address_space_reserve(const address_space_reserve&) = delete;
  address_space_reserve& operator=(const address_space_reserve&) = delete;
  ~address_space_reserve() { release(); }

  /// Whether `bytes` could be held (what was held before is given back).
  bool hold(std::size_t bytes) {
    release();
    void* p = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
      return false;
    p_ = p;
    bytes_ = bytes;
    return true;
  }
  void release() {
    if (p_ != nullptr)
      ::munmap(p_, bytes_);
    p_ = nullptr;
  }

private:
  void* p_ = nullptr;
  std::size_t bytes_ = 0;
};

/// Whether `bytes` of address space are free now.
inline bool address_space_room(std::size_t bytes) {
  address_space_reserve r;
  return r.hold(bytes);
}

} // namespace satemu::runtime::detail
