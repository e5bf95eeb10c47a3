#include "runtime/files.hpp"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/rng.hpp"

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
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec))
    return absl::PermissionDeniedError(absl::StrCat(path, ": is a directory"));
  // Errors start with the path asked for.
  auto named = [&](const absl::Status& st) {
    return st.ok() ? st : absl::Status(st.code(), absl::StrCat(path, ": ", st.message()));
  };
  // The process's own standard output and error, whatever they are (a
  // terminal, a pipe, a file the shell redirected to, which must not be
  // replaced): written through the streams, after what was printed.
  if (std::ostream* stream = path == "/dev/stdout"   ? &std::cout
                             : path == "/dev/stderr" ? &std::cerr
                                                     : nullptr) {
    auto status = body(*stream);
    stream->flush();
    if (status.ok() && !*stream)
      status = absl::DataLossError("cannot finish writing");
    return named(status);
  }
  // A device, pipe or socket (a FIFO, /proc/self/fd/N of a pipe) is written
  // as it is, by the name given: there is no file to replace.
  const auto type = fs::status(path, ec).type();
  const bool direct = type != fs::file_type::not_found && type != fs::file_type::regular &&
                      type != fs::file_type::unknown;
  // Anything else goes through a partial file. A symbolic link is written
  // through: its target gets the new file, also one that does not exist yet
  // (a dangling link), and through links to links (at most 40, as the
  // kernel follows).
  fs::path target = path;
  for (int hops = 0; !direct && hops < 40 && fs::is_symlink(target, ec); ++hops) {
    auto next = fs::read_symlink(target, ec);
    if (ec)
      break;
    target = next.is_absolute() ? std::move(next) : target.parent_path() / next;
  }
  const std::string written = direct ? target.string() : target.string() + ".partial";
  absl::Status status;
  {
    errno = 0;
    std::ofstream out(written, direct ? std::ios::binary : std::ios::binary | std::ios::trunc);
    if (!out)
      return absl::PermissionDeniedError(
        direct ? absl::StrCat(path, ": cannot open (", open_failure(written, errno ? errno : EIO),
                              ")")
               : absl::StrCat(path, ": cannot create (", open_failure(written, errno ? errno : EIO),
                              "; writing ", written, " first)"));
    status = body(out);
    out.close();
    if (status.ok() && !out)
      status = absl::DataLossError(absl::StrCat("cannot finish writing ", written));
  }
  if (status.ok() && !direct) {
    fs::rename(written, target, ec);
    if (ec)
      status = absl::PermissionDeniedError(absl::StrCat("cannot rename ", written, " to ",
                                                        target.string(), ": ", ec.message()));
  }
  if (!status.ok() && !direct)
    fs::remove(written, ec);
  return named(status);
}

absl::StatusOr<std::uint64_t> file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat(path, ": cannot open (", open_failure(path, errno), ")"));
  // Little-endian 8-byte words (the last one zero-padded) mixed in order,
  // then the length: fast enough for gigabytes of weights.
  std::uint64_t h = hash_combine(0, 0x5a7e3d16f11e5ULL);
  std::uint64_t length = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < got; i += 8) {
      std::uint64_t word = 0;
      std::memcpy(&word, buf.data() + i, std::min<std::size_t>(8, got - i));
      if constexpr (std::endian::native == std::endian::big)
        word = __builtin_bswap64(word);
      h = hash_combine(h, word);
    }
    length += got;
  }
  if (in.bad())
    return absl::NotFoundError(absl::StrCat(path, ": cannot read (", std::strerror(errno), ")"));
  return hash_combine(h, length);
}

} // namespace satemu::runtime
