// The `--json FILE` output of the measuring subcommands (calibrate, quality).
#pragma once

#include <string>

#include "absl/status/status.h"

namespace satemu::cli {

/// Writes `text` to `path` atomically, or, when `text` is null, checks that
/// it can be written (a partial file created and abandoned: an earlier file
/// stays as it was), so that a bad path fails before a long measurement.
/// InvalidArgument (bad input) starting with "--json" and saying why not.
absl::Status write_json_file(const std::string& path, const std::string* text);

} // namespace satemu::cli
