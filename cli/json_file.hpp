// The files output flags name: `--json FILE` of the measuring subcommands
// (calibrate, quality), `--csv FILE` of report.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "nlohmann/json_fwd.hpp"

namespace satemu::cli {

/// `j` as an output file holds it: indented by 2, a newline at the end, and
/// bytes that are not UTF-8 (a name from a TLE file, say) replaced by
/// U+FFFD instead of failing the dump.
std::string json_text(const nlohmann::json& j);

/// Writes `text` to `path`, the file that the flag `flag` ("--json") names,
/// atomically, or, when `text` is null, checks that it can be written (a
/// partial file created and abandoned: an earlier file stays as it was), so
/// that a bad path fails before a long measurement. InvalidArgument (bad
/// input) starting with `flag` and saying why not.
absl::Status write_flag_file(const char* flag, const std::string& path, const std::string* text);

} // namespace satemu::cli
