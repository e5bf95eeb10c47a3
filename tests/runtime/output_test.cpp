// Run outputs: a directory that cannot be written is refused before a run,
// and a write that fails (a full disk, here a file size limit) says why and
// leaves no temporary file that would fill the disk for the next run.
#include "runtime/output.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <new>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

namespace satemu::runtime {
namespace {

namespace fs = std::filesystem;

/// An empty scratch directory of this process, `what` in its name.
fs::path scratch_dir(const std::string& what) {
  const auto dir =
    fs::temp_directory_path() / ("satemu_output_" + what + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

TEST(OutputDir, ADirectoryNothingCanBeWrittenInIsRefusedAtOnce) {
  // Not even root can create a file in /proc/self.
  auto d = output_dir::open("/proc/self");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(d.status().message()).rfind("cannot write in output directory '/proc/self': ", 0),
            0u)
    << d.status();
}

TEST(OutputDir, AFailedWriteSaysWhyAndLeavesNoTemporaryFile) {
  const auto dir = scratch_dir("test");
  auto d = output_dir::open(dir.string());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_FALSE(fs::exists(dir / ".satemu-probe"));
  ASSERT_TRUE(d->write("small.txt", "fits\n").ok());
  // Files past 4 KiB fail as on a full disk (EFBIG instead of ENOSPC).
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* const previous = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const auto st = d->write("big.csv", std::string(64 * 1024, 'x'));
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(std::string(st.message()).find("big.csv.tmp': File too large"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(dir / "big.csv.tmp"));
  // What was written before still commits.
  ASSERT_TRUE(d->commit(false).ok());
  EXPECT_TRUE(fs::exists(dir / "small.partial.txt"));
  fs::remove_all(dir);
}

// One run at a time in a directory: a second open (another run) is refused
// while the first holds it, and works once it is done.
TEST(OutputDir, ASecondRunIntoADirectoryInUseIsRefused) {
  const auto dir = scratch_dir("lock");
  {
    auto first = output_dir::open(dir.string());
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = output_dir::prepare(dir.string());
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().message(),
              "output directory '" + dir.string() +
                "' is in use by another satemu run: choose another --out (or output.dir), or "
                "wait for that run to end");
    const auto copy = *first; // copies share the lock
  }
  EXPECT_TRUE(output_dir::open(dir.string()).ok());
  fs::remove_all(dir);
}

// A run killed before its commit (here: its object dropped, no commit)
// leaves its temporary files listed, and the next run into the directory
// removes them with the earlier outputs; has_earlier says there were some.
TEST(OutputDir, TemporaryFilesOfARunKilledBeforeItsCommitAreRemovedByTheNext) {
  const auto dir = scratch_dir("killed");
  {
    auto d = output_dir::open(dir.string());
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_FALSE(d->has_earlier());
    ASSERT_TRUE(d->write("trace.csv", "t\n").ok());
    ASSERT_TRUE(d->write("rtt.csv", "r\n").ok());
  }
  EXPECT_TRUE(fs::exists(dir / "trace.csv.tmp"));
  std::ofstream(dir / "mine.txt") << "the user's\n";
  auto next = output_dir::prepare(dir.string());
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(next->has_earlier());
  ASSERT_TRUE(next->clear_earlier().ok());
  EXPECT_FALSE(next->has_earlier());
  EXPECT_FALSE(fs::exists(dir / "trace.csv.tmp"));
  EXPECT_FALSE(fs::exists(dir / "rtt.csv.tmp"));
  EXPECT_TRUE(fs::exists(dir / "mine.txt"));
  // A commit lists the final names only.
  ASSERT_TRUE(next->write("summary.json", "{}").ok());
  ASSERT_TRUE(next->commit(true).ok());
  std::ifstream listed(dir / ".satemu-outputs");
  const std::string got((std::istreambuf_iterator<char>(listed)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "summary.json\n");
  fs::remove_all(dir);
}

// A file made part by part is the parts in order; one whose making runs out
// of memory leaves no temporary file, and the exception goes on to the caller.
TEST(OutputDir, AFileWrittenInPartsIsThePartsAndAFailedOneLeavesNothing) {
  const auto dir = scratch_dir("parts");
  auto d = output_dir::open(dir.string());
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_TRUE(d->write_parts("parts.csv", [](const output_dir::sink& put) {
                 put("a,b\n");
                 put("");
                 for (int i = 0; i < 3; ++i)
                   put(std::to_string(i) + "," + std::to_string(i * i) + "\n");
               }).ok());
  EXPECT_THROW((void)d->write_parts("lost.csv",
                                    [](const output_dir::sink& put) {
                                      put("a,b\n");
                                      throw std::bad_alloc();
                                    }),
               std::bad_alloc);
  EXPECT_FALSE(fs::exists(dir / "lost.csv.tmp"));
  ASSERT_TRUE(d->commit(true).ok());
  std::ifstream in(dir / "parts.csv");
  const std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "a,b\n0,0\n1,1\n2,4\n");
  EXPECT_FALSE(fs::exists(dir / "lost.csv"));
  fs::remove_all(dir);
}

} // namespace
} // namespace satemu::runtime
