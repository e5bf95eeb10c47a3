/// satemu run outputs: files that are complete or visibly partial.
///
/// Every file is written under a temporary name and renamed when the run
/// commits. A complete run leaves `summary.json`; an interrupted or failed
/// one leaves `summary.partial.json` (and `<name>.partial.<ext>` for the
/// others) and never a `summary.json`, so a result that looks complete is
/// complete. Each commit lists the files it put in place in `.satemu-outputs`
/// (and each write its temporary file, until the commit: a run killed
/// meanwhile leaves them listed); `clear_earlier` (`open` at once, a run
/// once it has run) removes those of the run before (complete or partial)
/// and a stale `summary.json` first, so no file of an earlier run sits
/// beside a later run's. The directory is locked (flock) from `open` or
/// `prepare` on, while the process keeps the object: a second run into it
/// is refused, since its files would mix with the first's.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace satemu::runtime {

class output_dir {
public:
  /// Creates `path` if needed, checks that a file can be written there
  /// (InvalidArgument naming the directory and the reason, before a run
  /// spends hours), and removes the outputs of an earlier run there (the
  /// files `.satemu-outputs` lists, and the summaries).
  static absl::StatusOr<output_dir> open(std::string path);
  /// As `open`, but leaves the earlier run's outputs in place until
  /// `clear_earlier`: for a run that may be refused before it starts (by
  /// its workers), which must not cost the results already there.
  static absl::StatusOr<output_dir> prepare(std::string path);
  /// Removes the outputs of the earlier run (what `open` does after
  /// `prepare`); InvalidArgument naming a file that cannot be removed.
  absl::Status clear_earlier();
  /// Whether an earlier run left outputs here (its list or a summary).
  bool has_earlier() const;
  /// Removes the directory if `prepare` created it and it is still empty:
  /// a run that never started leaves no trace.
  void remove_if_unused();

  /// Writes `content` to `<name>.tmp` (listed in `.satemu-outputs` first);
  /// renamed by `commit`. A failed write
  /// (a full disk) names the reason, leaves no `<name>.tmp` behind, and is
  /// remembered (`unwritten`, `first_failure`), so that a caller can try
  /// every file and report once.
  absl::Status write(const std::string& name, std::string_view content);
  /// As `write`, with the content made by `make`, which hands it to the
  /// `put` it is given part by part: for files too big to hold whole in
  /// memory beside the run's results. An exception out of `make` (out of
  /// memory) leaves no `<name>.tmp` and goes on.
  using sink = std::function<void(std::string_view part)>;
  absl::Status write_parts(const std::string& name, const std::function<void(const sink&)>& make);
  /// Renames every written file to its final name when `complete`, else to
  /// its partial name, after listing those names in `.satemu-outputs`.
  /// summary.json goes last, so it marks completion.
  absl::Status commit(bool complete);

  const std::string& path() const { return path_; }
  /// Files whose write failed, in order, and the first failure (OK: none).
  const std::vector<std::string>& unwritten() const { return unwritten_; }
  const absl::Status& first_failure() const { return first_failure_; }
  /// "summary.json" -> "summary.partial.json".
  static std::string partial_name(const std::string& name);

private:
  /// Records a failed write of `name`; returns `why`.
  absl::Status failed(const std::string& name, absl::Status why);

  struct lock_fd {
    int fd = -1;
    ~lock_fd();
  };
  std::string path_;
  std::string created_; // the outermost directory `prepare` created, or empty
  std::vector<std::string> written_;
  std::vector<std::string> unwritten_;
  absl::Status first_failure_;
  /// The directory, locked (flock) while any copy of this object lives.
  std::shared_ptr<lock_fd> lock_;
};

/// Peak resident set size of this process [bytes].
std::uint64_t peak_rss_bytes();
/// Current resident set size of this process [bytes].
std::uint64_t current_rss_bytes();
/// Memory this process can still take without swapping [bytes]: the
/// system's MemAvailable (/proc/meminfo; free physical pages where it cannot
/// be read), capped by the room left under a cgroup v2 memory limit and
/// under an address-space limit (RLIMIT_AS, `ulimit -v`).
std::uint64_t available_memory_bytes();
/// The most memory this process could ever hold [bytes]: physical memory
/// (MemTotal, capped by a cgroup v2 memory limit) plus swap.
std::uint64_t total_memory_bytes();
/// The largest cache of the CPU this process starts on [bytes], as Linux
/// reports it (/sys/devices/system/cpu/cpu0/cache; sysconf's cache levels
/// where that cannot be read); 0 when neither says.
std::uint64_t largest_cache_bytes();
/// The threads the host runs at once (std::thread::hardware_concurrency),
/// at least 1: what a thread count of 0 ("one per core") stands for.
int host_cores();

/// `requested`, or host_cores() for 0: the "0 = one per core" of every
/// thread count (scenario, run, worker, compute, calibrate).
int threads_or_cores(std::int64_t requested);
/// The most threads any of those counts may ask for.
inline constexpr int most_threads = 1024;

} // namespace satemu::runtime
