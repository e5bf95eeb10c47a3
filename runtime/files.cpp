#include "runtime/files.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace satemu::runtime {

std::string open_failure(const std::string& path, int err) {
  std::string why = std::strerror(err);
  if (err == ENOENT && !path.empty() && path.front() != '/') {
    std::error_code ec;
    const std::filesystem::path cwd = std::filesystem::current_path(ec);
    if (!ec) why += ", looked up from " + cwd.string();
  }
  return why;
}

absl::Status write_file_atomically(const std::string& path,
                                   const std::function<absl::Status(std::ostream&)>& body) {
  const std::string partial = path + ".partial";
  std::error_code ec;
  absl::Status status;
  {
    if (std::filesystem::is_directory(path, ec))
      return absl::PermissionDeniedError(absl::StrCat(path, ": is a directory"));
    errno = 0;
    std::ofstream out(partial, std::ios::binary | std::ios::trunc);
    if (!out)
      return absl::PermissionDeniedError(absl::StrCat(
          path, ": cannot create ", partial, " (", open_failure(partial, errno ? errno : EIO), ")"));
    status = body(out);
    out.close();
    if (status.ok() && !out)
      status = absl::DataLossError(absl::StrCat("cannot finish writing ", partial));
  }
  if (status.ok()) {
    std::filesystem::rename(partial, path, ec);
    if (ec)
      status = absl::PermissionDeniedError(absl::StrCat("cannot rename ", partial, " to ", path,
                                                        ": ", ec.message()));
  }
  if (!status.ok()) {
    std::filesystem::remove(partial, ec);
    return absl::Status(status.code(), absl::StrCat(path, ": ", status.message()));
  }
  return status;
}

} // namespace satemu::runtime
