// The version the binary reports.
#pragma once

#include <string>

namespace satemu::cli {

/// "satemu 0.1.0", followed by the commit it was built from when built in a
/// git checkout ("satemu 0.1.0 3f2c9a1b7d0e", "-dirty" with uncommitted
/// changes): what `--version` prints and what the nodes of a distributed
/// run compare (every node needs the same build).
std::string software_version();

} // namespace satemu::cli
