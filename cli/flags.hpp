// Validators shared by the subcommands' flags (CLI11).
#pragma once

#include <charconv>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "runtime/output.hpp"

namespace satemu::cli {

/// `text` as a whole number of at least 0 and at most `max`, or nullopt:
/// checked as text, since an unsigned option would read "-1" as 2^64 - 1.
inline std::optional<std::uint64_t> whole_number(const std::string& text, std::uint64_t max) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  std::uint64_t v = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (err != std::errc() || end != text.data() + text.size())
    return std::nullopt; // past 2^64 - 1
  return v <= max ? std::optional(v) : std::nullopt;
}

/// A seed: a whole number from 0 to 2^63 - 1 (a scenario's `seed`).
inline CLI::Validator seed_number() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      return whole_number(text, max) ? std::string()
                                     : "expected a whole number from 0 to " + std::to_string(max) +
                                         ", got '" + text + "'";
    },
    "");
}

/// A thread count: a whole number from 0 (one per core) to runtime::most_threads.
inline CLI::Validator thread_count() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      return whole_number(text, runtime::most_threads)
               ? std::string()
               : "expected a thread count from 0 (one per core) to " +
                   std::to_string(runtime::most_threads) + ", got '" + text + "'";
    },
    "");
}

/// A value that must not be empty (where an empty one would mean "none" or
/// "the default"): `what` is "a file name", "a list of layers".
inline CLI::Validator not_empty(std::string what) {
  return CLI::Validator(
    [what](std::string& text) -> std::string {
      return text.empty() ? "expected " + what + ", got an empty one" : std::string();
    },
    "");
}

} // namespace satemu::cli
