// Shared by the tests that run code under an address-space limit (ulimit -v),
// in a death test's child: the limit stays with the process.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>

namespace satemu::testing {

/// Limits this process's address space to what it maps now plus `more`
/// bytes (RLIMIT_AS, soft limit).
inline void limit_address_space(std::uint64_t more) {
  std::ifstream statm("/proc/self/statm");
  std::uint64_t pages = 0;
  statm >> pages;
  rlimit as{};
  getrlimit(RLIMIT_AS, &as);
  as.rlim_cur = pages * static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)) + more;
  setrlimit(RLIMIT_AS, &as);
}

} // namespace satemu::testing
