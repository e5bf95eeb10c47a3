// Validators shared by the subcommands' flags (CLI11).
#pragma once

#include <string>

#include "CLI/CLI.hpp"

namespace satemu::cli {

/// A whole number of at least 0, checked as text: an unsigned option would
/// read "-1" as 2^64 - 1.
inline CLI::Validator non_negative_integer() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      const bool digits =
        !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
      return digits ? std::string() : "expected a whole number of at least 0, got '" + text + "'";
    },
    "");
}

/// A thread count: a whole number from 0 (one per core) to 1024.
inline CLI::Validator thread_count() {
  return CLI::Validator(
    [](std::string& text) -> std::string {
      const bool digits =
        !text.empty() && text.size() <= 5 && text.find_first_not_of("0123456789") == std::string::npos;
      return digits && std::stoi(text) <= 1024
               ? std::string()
               : "expected a thread count from 0 (one per core) to 1024, got '" + text + "'";
    },
    "");
}

} // namespace satemu::cli
