/// satemu files named by users (scenario files, TLE files, weights): the
/// reason an open failed, in words a user can act on, and files written
/// whole or not at all.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace satemu::runtime {

/// Why `path` could not be opened, given the `errno` value `err`: the
/// system's text ("No such file or directory"), and for a relative path that
/// does not exist, the working directory it was looked up from ("No such file
/// or directory, looked up from /home/me/runs").
std::string open_failure(const std::string& path, int err);

/// Writes `path` through `path + ".partial"`, which `body` fills and which
/// is renamed to `path` once complete; on any failure the partial file is
/// removed and `path` left as it was. A symbolic link is followed (its
/// target is replaced, the link kept); a device, pipe or socket is written
/// directly, as there is no file to replace, and "/dev/stdout" and
/// "/dev/stderr" through std::cout and std::cerr (after what was printed,
/// whatever the stream is: a file the shell redirected to is not replaced).
/// Errors start with `path`:
/// PermissionDenied when the file cannot be created or renamed (saying
/// why), DataLoss when it cannot be finished, or `body`'s own error.
absl::Status write_file_atomically(const std::string& path,
                                   const std::function<absl::Status(std::ostream&)>& body);

/// A 64-bit digest of the bytes of the file at `path` (the same bytes give
/// the same digest on every machine): NotFound naming the path and why
/// when it cannot be read.
absl::StatusOr<std::uint64_t> file_digest(const std::string& path);

} // namespace satemu::runtime
