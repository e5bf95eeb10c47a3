#include "runtime/output.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/strings/str_cat.h"

namespace satemu::runtime {

namespace fs = std::filesystem;

std::string output_dir::partial_name(const std::string& name) {
  auto dot = name.find('.');
  if (dot == std::string::npos)
    return name + ".partial";
  return name.substr(0, dot) + ".partial" + name.substr(dot);
}

namespace {

/// The files the last commit put in place, one name per line.
constexpr const char* manifest = ".satemu-outputs";

} // namespace

absl::StatusOr<output_dir> output_dir::open(std::string path) {
  auto d = prepare(std::move(path));
  if (!d.ok())
    return d;
  if (auto st = d->clear_earlier(); !st.ok())
    return st;
  return d;
}

absl::Status output_dir::clear_earlier() {
  // The summaries first: without them no leftover looks like a result.
  std::vector<std::string> stale = {"summary.json", "summary.partial.json"};
  {
    std::ifstream listed(fs::path(path_) / manifest);
    for (std::string name; std::getline(listed, name);)
      if (!name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos)
        stale.push_back(name); // names in this directory only
  }
  stale.emplace_back(manifest);
  for (const auto& name : stale) {
    std::error_code ec;
    fs::remove(fs::path(path_) / name, ec);
    if (ec)
      return absl::InvalidArgumentError(absl::StrCat("cannot remove stale '", name, "' in '",
                                                     path_, "': ", ec.message()));
  }
  return absl::OkStatus();
}

bool output_dir::has_earlier() const {
  std::error_code ec;
  for (const char* name : {manifest, "summary.json", "summary.partial.json"})
    if (fs::exists(fs::path(path_) / name, ec))
      return true;
  return false;
}

void output_dir::remove_if_unused() {
  if (created_.empty())
    return;
  std::error_code ec;
  const fs::path top = created_;
  for (fs::path p = fs::absolute(path_, ec); !ec && p.native().size() >= top.native().size();
       p = p.parent_path())
    if (!fs::is_empty(p, ec) || ec || !fs::remove(p, ec))
      break;
}

absl::StatusOr<output_dir> output_dir::prepare(std::string path) {
  std::error_code ec;
  if (fs::exists(path, ec) && !fs::is_directory(path, ec))
    return absl::InvalidArgumentError(
      absl::StrCat("output directory '", path, "' is a file, not a directory"));
  // The outermost directory this makes, to remove if the run never starts.
  fs::path created;
  for (fs::path p = fs::absolute(path, ec); !ec && !p.empty() && !fs::exists(p, ec);
       p = p.parent_path())
    created = p;
  fs::create_directories(path, ec);
  if (ec)
    return absl::InvalidArgumentError(
      absl::StrCat("cannot create output directory '", path, "': ", ec.message()));
  // A directory the run could not write in is found now, not after the run.
  const auto probe = fs::path(path) / ".satemu-probe";
  {
    std::ofstream p(probe, std::ios::trunc);
    if (!p)
      return absl::InvalidArgumentError(absl::StrCat("cannot write in output directory '", path,
                                                     "': ", std::strerror(errno)));
  }
  fs::remove(probe, ec);
  output_dir d;
  // One run at a time in a directory: a second one would mix its files with
  // the first's. The lock lasts as long as the process keeps `d`.
  d.lock_ = std::make_shared<lock_fd>();
  d.lock_->fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d.lock_->fd < 0)
    return absl::InvalidArgumentError(
      absl::StrCat("cannot open output directory '", path, "': ", std::strerror(errno)));
  if (::flock(d.lock_->fd, LOCK_EX | LOCK_NB) != 0)
    return absl::InvalidArgumentError(absl::StrCat(
      "output directory '", path, "' is in use by another satemu run: choose another --out "
      "(or output.dir), or wait for that run to end"));
  d.path_ = std::move(path);
  d.created_ = created.string();
  return d;
}

output_dir::lock_fd::~lock_fd() {
  if (fd >= 0)
    ::close(fd);
}

absl::Status output_dir::write(const std::string& name, std::string_view content) {
  return write_parts(name, [content](const sink& put) { put(content); });
}

absl::Status output_dir::write_parts(const std::string& name,
                                     const std::function<void(const sink&)>& make) {
  const auto tmp = fs::path(path_) / (name + ".tmp");
  {
    // Listed before it exists: a run killed before its commit leaves it
    // for the next run to remove. (The commit rewrites the list.)
    std::ofstream listed(fs::path(path_) / manifest, std::ios::app);
    listed << name << ".tmp\n";
    if (!listed.flush())
      return failed(name, absl::InternalError(absl::StrCat(
                            "cannot write '", (fs::path(path_) / manifest).string(),
                            "': ", std::strerror(errno))));
  }
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out)
    return failed(name, absl::InternalError(absl::StrCat("cannot write '", tmp.string(),
                                                         "': ", std::strerror(errno))));
  errno = 0;
  try {
    make([&out](std::string_view part) {
      if (out)
        out.write(part.data(), static_cast<std::streamsize>(part.size()));
    });
  } catch (...) {
    // Out of memory making a part: no half file either.
    out.close();
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  out.flush();
  const int err = errno;
  out.close();
  if (!out) {
    std::error_code ec;
    fs::remove(tmp, ec); // a full disk keeps no half file
    return failed(name, absl::InternalError(absl::StrCat("error writing '", tmp.string(), "': ",
                                                         std::strerror(err != 0 ? err : EIO))));
  }
  if (std::find(written_.begin(), written_.end(), name) == written_.end())
    written_.push_back(name);
  return absl::OkStatus();
}

absl::Status output_dir::failed(const std::string& name, absl::Status why) {
  if (first_failure_.ok())
    first_failure_ = why;
  unwritten_.push_back(name);
  return why;
}

absl::Status output_dir::commit(bool complete) {
  auto order = written_;
  // summary.json last: its presence means everything else is in place.
  std::stable_partition(order.begin(), order.end(),
                        [](const std::string& n) { return n != "summary.json"; });
  {
    std::ofstream listed(fs::path(path_) / manifest, std::ios::trunc);
    for (const auto& name : order)
      listed << (complete ? name : partial_name(name)) << '\n';
    listed.close();
    if (!listed)
      return absl::InternalError(
        absl::StrCat("cannot write '", (fs::path(path_) / manifest).string(), "'"));
  }
  for (const auto& name : order) {
    const auto final_name = complete ? name : partial_name(name);
    std::error_code ec;
    fs::rename(fs::path(path_) / (name + ".tmp"), fs::path(path_) / final_name, ec);
    if (ec)
      return absl::InternalError(
        absl::StrCat("cannot rename output '", name, "' in '", path_, "': ", ec.message()));
  }
  written_.clear();
  return absl::OkStatus();
}

std::uint64_t peak_rss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::uint64_t>(u.ru_maxrss) * 1024;
}

namespace {

/// This process's mapped and resident memory [bytes] (/proc/self/statm).
struct process_memory {
  std::uint64_t mapped = 0;
  std::uint64_t resident = 0;
};

process_memory statm() {
  std::ifstream in("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  in >> size >> resident;
  const auto page = static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
  return {size * page, resident * page};
}

} // namespace

std::uint64_t current_rss_bytes() { return statm().resident; }

namespace {

/// The /proc/meminfo line `key` ("MemAvailable:") in bytes; 0 when absent.
std::uint64_t meminfo_bytes(std::string_view key) {
  std::ifstream meminfo("/proc/meminfo");
  for (std::string k; meminfo >> k;) {
    std::uint64_t kib = 0;
    meminfo >> kib;
    if (k == key)
      return kib * 1024;
    meminfo.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return 0;
}

/// A cgroup v2 memory file's number; none for "max" (no limit) or no file.
std::optional<std::uint64_t> cgroup_bytes(const char* file) {
  std::ifstream in(std::string("/sys/fs/cgroup/") + file);
  std::uint64_t v = 0;
  if (in >> v)
    return v;
  return std::nullopt;
}

/// sysconf's count of pages `name`, in bytes.
std::uint64_t pages_bytes(int name) {
  return static_cast<std::uint64_t>(sysconf(name)) *
         static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE));
}

} // namespace

std::uint64_t available_memory_bytes() {
  std::uint64_t available = meminfo_bytes("MemAvailable:");
  if (available == 0)
    available = pages_bytes(_SC_AVPHYS_PAGES);
  const auto max = cgroup_bytes("memory.max"), current = cgroup_bytes("memory.current");
  if (max && current)
    available = std::min(available, *max > *current ? *max - *current : 0);
  // An address-space limit (ulimit -v) counts what the process has mapped.
  if (rlimit as{}; getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    const std::uint64_t mapped = statm().mapped;
    const auto limit = static_cast<std::uint64_t>(as.rlim_cur);
    available = std::min(available, limit > mapped ? limit - mapped : 0);
  }
  return available;
}

std::uint64_t total_memory_bytes() {
  std::uint64_t ram = meminfo_bytes("MemTotal:");
  if (ram == 0)
    ram = pages_bytes(_SC_PHYS_PAGES);
  if (const auto max = cgroup_bytes("memory.max"))
    ram = std::min(ram, *max);
  return ram + meminfo_bytes("SwapTotal:");
}

std::uint64_t largest_cache_bytes() {
  std::uint64_t largest = 0;
  for (int index = 0;; ++index) {
    std::ifstream f(absl::StrCat("/sys/devices/system/cpu/cpu0/cache/index", index, "/size"));
    std::uint64_t size = 0;
    if (!(f >> size))
      break;
    std::string unit;
    f >> unit; // "K" or "M" (read on: the size may end the file)
    const std::uint64_t scale = unit == "M" ? 1024 * 1024 : unit == "K" ? 1024 : 1;
    largest = std::max(largest, size * scale);
  }
#ifdef _SC_LEVEL1_DCACHE_SIZE // glibc
  if (largest > 0)
    return largest;
  for (const int name : {_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL2_CACHE_SIZE, _SC_LEVEL3_CACHE_SIZE,
                         _SC_LEVEL4_CACHE_SIZE})
    largest = std::max(largest, static_cast<std::uint64_t>(std::max(sysconf(name), 0L)));
#endif
  return largest;
}

int host_cores() { return std::max(1, static_cast<int>(std::thread::hardware_concurrency())); }

int threads_or_cores(std::int64_t requested) {
  return requested > 0 ? static_cast<int>(requested) : host_cores();
}

} // namespace satemu::runtime
