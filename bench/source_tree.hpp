/// Where the benchmarks that read the source tree's scenario files find
/// it, and distributed_bench the satemu program: $SATEMU_SOURCE_DIR and
/// $SATEMU_BINARY when set (a packed copy run on another machine), else the
/// tree and the program they were built from.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace satemu::bench {

inline std::string from_env(const char* name, const char* built) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : std::string(built);
}

inline std::string source_dir() { return from_env("SATEMU_SOURCE_DIR", SATEMU_SOURCE_DIR); }

/// Empty when the source tree is there; else why not, for SkipWithError.
inline std::string missing_source_tree() {
  std::error_code ec;
  if (std::filesystem::is_directory(source_dir() + "/scenarios", ec))
    return {};
  return "no satemu source tree at '" + source_dir() +
         "' (its scenarios/ are read): set SATEMU_SOURCE_DIR to one";
}

} // namespace satemu::bench
