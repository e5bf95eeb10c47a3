// Tests of runtime/files.hpp: writing output files whole or not at all,
// through symbolic links, and into pipes and devices.
#include "runtime/files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace satemu::runtime {
namespace {

namespace fs = std::filesystem;

class files_test : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("satemu_files_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  static absl::Status write(const fs::path& p, const std::string& text) {
    return write_file_atomically(p.string(), [&](std::ostream& out) {
      out << text;
      return absl::OkStatus();
    });
  }
  /// Nothing but `names` in the test's directory (no .partial left).
  void expect_only(std::initializer_list<const char*> names) {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) {
      ++n;
      EXPECT_NE(std::find_if(names.begin(), names.end(),
                             [&](const char* x) { return e.path().filename() == x; }),
                names.end())
        << e.path();
    }
    EXPECT_EQ(n, names.size());
  }

  fs::path dir_;
};

TEST_F(files_test, a_file_is_replaced_whole_or_left_as_it_was) {
  const auto f = dir_ / "a.json";
  ASSERT_TRUE(write(f, "first").ok());
  EXPECT_EQ(read(f), "first");
  ASSERT_TRUE(write(f, "second").ok());
  EXPECT_EQ(read(f), "second");
  auto failed = write_file_atomically(f.string(), [](std::ostream& out) {
    out << "half";
    return absl::InternalError("the body failed");
  });
  EXPECT_EQ(failed.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(failed.message(), f.string() + ": the body failed");
  EXPECT_EQ(read(f), "second");
  expect_only({"a.json"});
  EXPECT_EQ(write(dir_, "x").message(), dir_.string() + ": is a directory");
}

TEST_F(files_test, a_symbolic_link_is_written_through) {
  const auto target = dir_ / "target.json";
  const auto link = dir_ / "link.json";
  ASSERT_TRUE(write(target, "{}").ok());
  fs::create_symlink("target.json", link);
  ASSERT_TRUE(write(link, "new").ok());
  EXPECT_TRUE(fs::is_symlink(link)) << "the link was replaced by a file";
  EXPECT_EQ(read(target), "new");
  expect_only({"target.json", "link.json"});
}

TEST_F(files_test, a_dangling_link_is_written_through_to_the_file_it_names) {
  fs::create_directories(dir_ / "sub");
  const auto link = dir_ / "link.json";
  const auto hop = dir_ / "sub" / "hop.json";
  // link.json -> sub/hop.json -> t.json (relative to sub/), not yet there.
  fs::create_symlink("sub/hop.json", link);
  fs::create_symlink("t.json", hop);
  ASSERT_TRUE(write(link, "new").ok());
  EXPECT_TRUE(fs::is_symlink(link)) << "the link was replaced by a file";
  EXPECT_TRUE(fs::is_symlink(hop)) << "the second link was replaced by a file";
  EXPECT_EQ(read(dir_ / "sub" / "t.json"), "new");
  expect_only({"sub", "link.json"});
}

TEST_F(files_test, a_pipe_is_written_directly) {
  const auto fifo = dir_ / "pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto reader = std::async(std::launch::async, [&] { return read(fifo); });
  ASSERT_TRUE(write(fifo, "streamed").ok());
  EXPECT_EQ(reader.get(), "streamed");
  EXPECT_TRUE(fs::is_fifo(fifo));
  expect_only({"pipe"});
}

} // namespace
} // namespace satemu::runtime
