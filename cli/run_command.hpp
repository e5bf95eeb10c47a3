/// satemu subcommands `run` and `validate`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace satemu::cli {

/// Exit codes of the satemu executable.
enum exit_code : int { exit_ok = 0, exit_internal = 1, exit_bad_input = 2, exit_interrupted = 130 };

struct run_args {
  std::string file;
  std::optional<std::size_t> threads;
  std::optional<std::uint64_t> seed;
  std::optional<std::string> out;
  std::vector<std::string> sets;
  bool quiet = false;
};

/// Prints `satemu: error: ...` and returns the exit code for the status:
/// bad input (InvalidArgument, NotFound, OutOfRange) 2, anything else 1.
int report_error(const absl::Status& st);

int run_command(const run_args& a);
int validate_command(const std::string& file, const std::vector<std::string>& sets);
int explain_command(const std::optional<std::string>& kind);

} // namespace satemu::cli
