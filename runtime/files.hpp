/// satemu files named by users (scenario files, TLE files, weights): the
/// reason an open failed, in words a user can act on.
#pragma once

#include <string>

namespace satemu::runtime {

/// Why `path` could not be opened, given the `errno` value `err`: the
/// system's text ("No such file or directory"), and for a relative path that
/// does not exist, the working directory it was looked up from ("No such file
/// or directory, looked up from /home/me/runs").
std::string open_failure(const std::string& path, int err);

} // namespace satemu::runtime
