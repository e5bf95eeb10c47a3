// Validators shared by the subcommands' flags (CLI11).
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"

namespace satemu::cli {

/// `text` as a whole number of at least 0 and at most `max`, or nullopt:
/// checked as text, since an unsigned option would read "-1" as 2^64 - 1.
inline std::optional<std::uint64_t> whole_number(const std::string& text, std::uint64_t max) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const std::uint64_t v = std::stoull(text);
  return v <= max ? std::optional(v) : std::nullopt;
}

/// A whole number of at least 0.
inline CLI::Validator non_negative_integer() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      return whole_number(text, std::numeric_limits<std::uint64_t>::max())
               ? std::string()
               : "expected a whole number of at least 0, got '" + text + "'";
    },
    "");
}

/// A thread count: a whole number from 0 (one per core) to 1024.
inline CLI::Validator thread_count() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      return whole_number(text, 1024)
               ? std::string()
               : "expected a thread count from 0 (one per core) to 1024, got '" + text + "'";
    },
    "");
}

} // namespace satemu::cli
