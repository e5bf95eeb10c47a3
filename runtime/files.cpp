#include "runtime/files.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

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

} // namespace satemu::runtime
