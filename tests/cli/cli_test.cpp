// Tests of the satemu executable: exit codes, error messages naming file,
// line and key, the outputs of a run, determinism through the command line,
// interruption, traces and real-time mode. Every test runs the real binary
// (SATEMU_BINARY) in a fresh temporary directory.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "process.hpp"
#include "tests/actors/skymemory_reference.hpp"

#include "gpu/device.hpp"
#include "gpu/model.hpp"
#include "gpu/safetensors.hpp"
#include "gpu/weights.hpp"
#include "nlohmann/json.hpp"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using satemu::testing::decode_status;

struct proc_result {
  int code = -1;      ///< exit status, or 128 + signal when killed by one
  std::string output; ///< stdout and stderr together
};

using satemu::testing::read_file;

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << p;
}

json read_json(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

/// A started satemu process whose stdout+stderr go to `log`.
struct child {
  pid_t pid = -1;
  fs::path log;
};

child spawn_satemu(const std::vector<std::string>& args, const fs::path& cwd, const fs::path& log) {
  return {satemu::testing::spawn_satemu(args, cwd, log), log};
}

/// Waits up to a minute for `text` in the child's log.
void wait_for_log(const child& c, const std::string& text) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_file(c.log).find(text) == std::string::npos &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

/// The child's wait status once it exits, or none (it is then killed) when
/// it is still running a minute on.
std::optional<int> wait_for_exit(const child& c) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  int status = 0;
  while (waitpid(c.pid, &status, WNOHANG) != c.pid) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(c.pid, SIGKILL);
      waitpid(c.pid, &status, 0);
      return std::nullopt;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return status;
}

class cli_test : public ::testing::Test {
protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("satemu_cli_") + info->name() + "_" + std::to_string(getpid()) + "_" +
            std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    if (HasFailure() && std::getenv("SATEMU_KEEP_TEST_DIRS") != nullptr) {
      std::printf("kept %s for inspection\n", dir_.c_str());
      return;
    }
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  /// Runs satemu to completion in the temporary directory.
  proc_result satemu(const std::vector<std::string>& args) {
    const auto log = dir_ / ("log_" + std::to_string(runs_++) + ".txt");
    auto c = spawn_satemu(args, dir_, log);
    EXPECT_GT(c.pid, 0);
    int status = 0;
    waitpid(c.pid, &status, 0);
    return {decode_status(status), read_file(log)};
  }

  /// Runs satemu with `args` (shell words) under an address-space limit of
  /// `kib` KiB, for at most 60 s, its environment changed by `env` (the
  /// arguments of env(1) before the program: "-u NAME", "NAME=VALUE"); the
  /// code is -1 when it did not exit (a signal ended it).
  proc_result satemu_limited(long kib, const std::string& args, const std::string& env = "") {
    const auto log = dir_ / ("limited_" + std::to_string(runs_++) + ".txt");
    const std::string cmd = "ulimit -v " + std::to_string(kib) + "; exec timeout 60 " +
                            (env.empty() ? "" : "env " + env + " ") + SATEMU_BINARY + " " +
                            args + " > " + log.string() + " 2>&1";
    const int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(log)};
  }

  /// Writes `text` as `name` in the temporary directory; returns its absolute path.
  std::string scenario(const std::string& name, const std::string& text) {
    const auto p = dir_ / name;
    write_file(p, text);
    return p.string();
  }

  fs::path dir_;
  int runs_ = 0;
};

/// A small, fast, valid scenario (8x8 torus, 1 s emulated).
const char* const small_yaml = R"(name: small
seed: 1
duration: 1s
workload:
  kind: mesh
  entities: 64
  topology: torus
  latency_min: 1ms
  latency_max: 10ms
  rate: 20
)";

/// The 1-based number of the first line of `text` containing `needle`.
int line_of(const std::string& text, const std::string& needle) {
  const auto pos = text.find(needle);
  EXPECT_NE(pos, std::string::npos) << needle;
  return 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
}

std::string replace(std::string text, const std::string& from, const std::string& to) {
  const auto pos = text.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos)
    text.replace(pos, from.size(), to);
  return text;
}

#define EXPECT_CONTAINS(haystack, needle)                                                      \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos)                            \
    << "'" << (needle) << "' not in output:\n"                                                 \
    << (haystack)

// ---------------------------------------------------------------------------
// Bad input: exit code 2, message naming file, line and key.

// Expects bad input: exit code 2 and a message holding `part`.
void expect_refused(const proc_result& r, const std::string& part) {
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, part);
}

// Expects exit code 2 and a message with `file:LINE:` and every one of `parts`.
void expect_bad_file(const proc_result& r, const std::string& file, int line,
                     std::initializer_list<std::string> parts) {
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, file + ":" + std::to_string(line) + ":");
  for (const auto& p : parts)
    EXPECT_CONTAINS(r.output, p);
}

TEST_F(cli_test, unknown_top_level_key_names_file_line_and_key) {
  const auto text = replace(small_yaml, "workload:", "worklod:");
  const auto f = scenario("typo.yaml", text);
  const int line = line_of(text, "worklod:");
  expect_bad_file(satemu({"validate", f}), f, line, {"worklod"});
  expect_bad_file(satemu({"run", f, "--out", (dir_ / "o").string()}), f, line, {"worklod"});
  EXPECT_FALSE(fs::exists(dir_ / "o" / "summary.json"));
}

TEST_F(cli_test, unknown_key_inside_workload_names_key_path) {
  const auto text = replace(small_yaml, "  rate: 20", "  rat: 20");
  const auto f = scenario("typo2.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "rat: 20"), {"workload.rat"});
}

TEST_F(cli_test, bad_unit_names_file_line_and_key) {
  const auto text = replace(small_yaml, "duration: 1s", "duration: 5parsecs");
  const auto f = scenario("unit.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "duration:"),
                  {"duration", "parsecs"});
}

TEST_F(cli_test, negative_duration_names_file_line_and_key) {
  const auto text = replace(small_yaml, "duration: 1s", "duration: -5s");
  const auto f = scenario("neg.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "duration:"),
                  {"duration:", "-5s"});
}

TEST_F(cli_test, missing_required_key_names_key_and_file) {
  const auto text = replace(small_yaml, "duration: 1s\n", "");
  const auto f = scenario("missing.yaml", text);
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, f + ":");
  EXPECT_CONTAINS(r.output, "duration");
  auto r2 = satemu({"run", f, "--out", (dir_ / "o").string()});
  EXPECT_EQ(r2.code, 2) << r2.output;
  EXPECT_CONTAINS(r2.output, "duration");
}

TEST_F(cli_test, malformed_yaml_names_file_and_line) {
  const std::string text = "name: m\nseed: [1, 2\nduration: 1s\nworkload:\n  kind: mesh\n"
                           "  entities: 64\n";
  const auto f = scenario("malformed.yaml", text);
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  // yaml-cpp reports where it noticed the error: the bracket's line or the next.
  std::smatch m;
  const std::regex re(std::regex_replace(f, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\$&)") +
                      R"(:(\d+):(\d+):)");
  ASSERT_TRUE(std::regex_search(r.output, m, re)) << r.output;
  const int line = std::stoi(m[1]);
  const int bracket = line_of(text, "[1, 2");
  EXPECT_GE(line, bracket) << r.output;
  EXPECT_LE(line, bracket + 1) << r.output;
}

TEST_F(cli_test, missing_file_names_path) {
  const auto f = (dir_ / "does_not_exist.yaml").string();
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, f);
  auto r2 = satemu({"run", f, "--out", (dir_ / "o").string()});
  EXPECT_EQ(r2.code, 2) << r2.output;
  EXPECT_CONTAINS(r2.output, f);
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

TEST_F(cli_test, out_of_range_value_names_file_line_and_key) {
  const auto text = replace(small_yaml, "entities: 64", "entities: 1");
  const auto f = scenario("range.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "entities: 1"),
                  {"workload.entities"});
}

TEST_F(cli_test, cross_key_error_names_both_keys) {
  auto text = replace(small_yaml, "latency_min: 1ms", "latency_min: 5ms");
  text = replace(text, "latency_max: 10ms", "latency_max: 2ms");
  const auto f = scenario("cross.yaml", text);
  for (const auto& r : {satemu({"validate", f}), satemu({"run", f, "--out", (dir_ / "o").string()})}) {
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "workload.latency_max");
    EXPECT_CONTAINS(r.output, "workload.latency_min");
    EXPECT_CONTAINS(r.output, f);
  }
  EXPECT_FALSE(fs::exists(dir_ / "o" / "summary.json"));
}

TEST_F(cli_test, torus_shape_error_is_bad_input) {
  // 7 is prime: no torus of at least 3x3.
  const auto f = scenario("torus.yaml", replace(small_yaml, "entities: 64", "entities: 7"));
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "workload.width");
}

TEST_F(cli_test, unknown_flag_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"run", f, "--bogus-flag"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--bogus-flag");
  auto r2 = satemu({"--no-such-option"});
  EXPECT_EQ(r2.code, 2) << r2.output;
  auto r3 = satemu({"run", f, "--threads", "abc"});
  EXPECT_EQ(r3.code, 2) << r3.output;
  // A negative count is named as given, not wrapped around to 2^64 - 1.
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"run", f, "--threads", "-1"}, {"run", f, "--seed", "-1"}, {"worker", "--threads", "-1"}}) {
    auto neg = satemu(args);
    EXPECT_EQ(neg.code, 2) << neg.output;
    EXPECT_CONTAINS(neg.output, args[args.size() - 2] == "--seed"
                                  ? "expected a whole number from 0 to 9223372036854775807, got '-1'"
                                  : "expected a thread count from 0 (one per core) to 1024, got '-1'");
  }
  // A seed is at most 2^63 - 1, as the scenario's `seed`: the flag says so
  // itself, for 20 digits too, rather than a --set the user never typed.
  for (const char* seed : {"9223372036854775808", "18446744073709551615", "1" "00000000000000000000"}) {
    auto big = satemu({"run", f, "--seed", seed});
    EXPECT_EQ(big.code, 2) << big.output;
    EXPECT_CONTAINS(big.output, std::string("--seed: expected a whole number from 0 to "
                                            "9223372036854775807, got '") + seed + "'");
  }
  // Nor may a thread count exceed 1024 (30,000 threads had run out of memory).
  expect_refused(satemu({"run", f, "--threads", "30000"}), "to 1024, got '30000'");
}

// A flag and a --set of the key it stands for, together: one of them would
// be ignored (--set won), so the run is refused.
TEST_F(cli_test, a_flag_and_a_set_of_its_key_are_refused_together) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = (dir_ / "both").string();
  expect_refused(satemu({"run", f, "--out", out, "--set", "output.dir=" + out + "2"}),
                 "satemu: error: --out and --set output.dir=" + out +
                   "2 both set output.dir: give one of them");
  expect_refused(satemu({"run", f, "--seed", "5", "--set", "seed=6"}),
                 "satemu: error: --seed and --set seed=6 both set seed: give one of them");
  // Spaces around the key are still that key.
  expect_refused(satemu({"run", f, "--seed", "5", "--set", " seed =7"}),
                 "satemu: error: --seed and --set  seed =7 both set seed: give one of them");
  expect_refused(satemu({"run", f, "--threads", "1", "--set", "threads=2"}),
                 "satemu: error: --threads and --set threads=2 both set threads: give one of "
                 "them");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + "2"));
  // Either alone is fine.
  EXPECT_EQ(satemu({"run", f, "-q", "--out", out, "--set", "seed=6"}).code, 0);
}

// Flag errors read like the others and name the help of their command.
TEST_F(cli_test, a_flag_error_says_error_and_which_help_to_read) {
  expect_refused(satemu({"run"}),
                 "satemu: error: run needs a scenario FILE (YAML)\n(see satemu run --help)");
  expect_refused(satemu({"sweep"}),
                 "satemu: error: sweep needs a scenario FILE (YAML)\n(see satemu sweep --help)");
  expect_refused(satemu({"sweep", "a.yaml", "--nosuch"}),
                 "satemu: error: unknown flag '--nosuch'\n(see satemu sweep --help)");
  expect_refused(satemu({"--nosuch"}), "satemu: error: unknown flag '--nosuch'\n(see satemu --help)");
}

// A word no command or flag takes is named with what it was most likely
// meant as; a flag given twice says so.
TEST_F(cli_test, a_misspelt_command_or_flag_gets_a_suggestion) {
  expect_refused(satemu({"valdiate", "x"}),
                 "satemu: error: unknown command 'valdiate' (did you mean 'validate'?); the "
                 "commands are run, sweep, validate, calibrate, quality, report, worker\n"
                 "(see satemu --help)");
  expect_refused(satemu({"bogus"}), "unknown command 'bogus'; the commands are run, sweep");
  expect_refused(satemu({"help"}), "unknown command 'help' (for help: satemu --help, or satemu "
                                   "COMMAND --help)");
  // By edit distance, and by the start of a name (so `-v` finds --version).
  expect_refused(satemu({"run", "a.yaml", "--thread", "2"}),
                 "satemu: error: unknown flag '--thread' (did you mean '--threads'?)\n"
                 "(see satemu run --help)");
  expect_refused(satemu({"-v"}), "unknown flag '-v' (did you mean '--version'?)");
  expect_refused(satemu({"worker", "--listn", "x"}), "unknown flag '--listn' (did you mean "
                                                     "'--listen'?)\n(see satemu worker --help)");
  // Before the required flag it was probably meant as.
  expect_refused(satemu({"quality", "--modle", "tiny"}),
                 "unknown flag '--modle' (did you mean '--model'?)");
  // Two letters that start several names get no guess.
  auto t = satemu({"run", "a.yaml", "-t"});
  expect_refused(t, "satemu: error: unknown flag '-t'\n");
  expect_refused(satemu({"run", "a.yaml", "b.yaml", "c"}),
                 "unexpected arguments 'b.yaml', 'c' (run takes one FILE)");
  expect_refused(satemu({"calibrate", "x"}), "unexpected argument 'x' (calibrate takes only flags)");
  expect_refused(satemu({"run", "a.yaml", "--seed", "1", "--seed", "2"}),
                 "satemu: error: --seed given 2 times: give it once\n(see satemu run --help)");
  // calibrate's --threads reads as run's.
  expect_refused(satemu({"calibrate", "--threads", "abc"}),
                 "--threads: expected a thread count from 0 (one per core) to 1024, got 'abc'");
}

// OpenBLAS starts a thread per core as it loads, unless OPENBLAS_NUM_THREADS
// says otherwise. satemu started without the variable sets it to 1 and
// starts itself again, so OpenBLAS loads with one thread: and under an
// address-space limit too small for the others (which then never started,
// and hung the process as it exited) even --version ends.
TEST_F(cli_test, openblas_loads_with_one_thread_unless_told_otherwise) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers reserve more address space than the limit this test sets";
#else
  auto r = satemu_limited(3000000, "--version", "-u OPENBLAS_NUM_THREADS");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, " kernels, loaded with 1 thread\n");
  // A setting of the user's stands (OpenBLAS takes at most one per core).
  if (std::thread::hardware_concurrency() >= 2) {
    r = satemu_limited(3000000, "--version", "OPENBLAS_NUM_THREADS=2");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_CONTAINS(r.output, " kernels, loaded with 2 threads\n");
  }
  r = satemu_limited(150000, "--version", "-u OPENBLAS_NUM_THREADS");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, " kernels, loaded with 1 thread\n");
  // Started by the dynamic loader run by hand, satemu is not what
  // /proc/self/exe names: it goes on as it is rather than start ld.so again.
  const std::string loader = "/lib64/ld-linux-x86-64.so.2";
  if (fs::exists(loader)) {
    const auto log = dir_ / "loader.txt";
    const int status = std::system(("env -u OPENBLAS_NUM_THREADS timeout 60 " + loader + " " +
                                    SATEMU_BINARY + " --version > " + log.string() + " 2>&1")
                                     .c_str());
    EXPECT_EQ(decode_status(status), 0) << read_file(log);
    EXPECT_TRUE(read_file(log).starts_with("satemu ")) << read_file(log);
    EXPECT_CONTAINS(read_file(log), " kernels, loaded with ");
  }
#endif
}

// A scenario bigger than the memory the process may take is bad input
// (exit 2, saying so), not an internal error: here 2 x 10^8 mesh entities
// under a 3 GB address-space limit.
TEST_F(cli_test, a_scenario_too_big_for_memory_is_bad_input) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers reserve more address space than the limit this test sets";
#else
  auto r = satemu_limited(3000000, std::string("validate ") + SATEMU_SOURCE_DIR +
                                     "/scenarios/quickstart.yaml --set workload.entities=200000000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: out of memory: this scenario needs more memory");

  // Running out in the middle of the run (64 MiB messages, 1,000 a second
  // per entity) stops it with exit 2 too, its outputs so far kept as partial
  // (it had ended the process with SIGABRT and no outputs).
  const auto f = scenario("big.yaml", replace(small_yaml, "entities: 64", "entities: 16"));
  const auto out = dir_ / "oom-run";
  r = satemu_limited(3000000, "run " + f + " -q --out " + out.string() +
                                " --set workload.payload=64MiB --set workload.rate=1000 --set "
                                "duration=100ms");
  EXPECT_EQ(r.code, 2) << r.output;
  // std::bad_alloc, or Cap'n Proto's allocation failing, whichever comes first.
  EXPECT_CONTAINS(r.output, "satemu: error: out of memory (");
  EXPECT_CONTAINS(r.output, ") in entity ");
  EXPECT_CONTAINS(r.output, "outputs in " + out.string() + " are PARTIAL");
  ASSERT_TRUE(fs::exists(out / "summary.partial.json")) << r.output;
  const auto j = read_json(out / "summary.partial.json");
  EXPECT_FALSE(j["complete"].get<bool>());
  EXPECT_NE(j["error"].get<std::string>().find("out of memory"), std::string::npos) << j.dump();
  EXPECT_LT(j["emulated_seconds"].get<double>(), 0.1);

  // Running out before the run starts (as mesh-100k's 100,000 actors are
  // made, under 400 MB) is exit 2 too, and leaves the earlier run's outputs
  // as they were (they were removed first), or no directory where there was
  // none. (It had been an abort where an actor or a scheduler thread of the
  // actor system was the one that ran out.)
  const auto kept = dir_ / "oom-kept";
  auto first = satemu({"run", f, "-q", "--out", kept.string()});
  ASSERT_EQ(first.code, 0) << first.output;
  const auto before = read_file(kept / "summary.json");
  r = satemu_limited(400000, std::string("run ") + SATEMU_SOURCE_DIR +
                               "/scenarios/mesh-100k.yaml -q --set duration=1s --out " +
                               kept.string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: out of memory");
  EXPECT_CONTAINS(r.output, "this scenario needs more memory than the process may take");
  EXPECT_EQ(read_file(kept / "summary.json"), before);
  EXPECT_TRUE(fs::exists(kept / "fingerprint.txt"));
  const auto fresh = dir_ / "oom-fresh";
  r = satemu_limited(400000, std::string("run ") + SATEMU_SOURCE_DIR +
                               "/scenarios/mesh-100k.yaml -q --set duration=1s --out " +
                               fresh.string());
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_FALSE(fs::exists(fresh)) << r.output;

  // A model's weights are checked against the limit before they are made
  // (they ran out part way through), for quality and for a run; running out
  // in quality says what quality needs.
  r = satemu_limited(3000000, "quality --model llama-3.2-1b");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--model: llama-3.2-1b's weights take 4943 MB in fp32, more than");
  r = satemu_limited(3000000, std::string("validate ") + SATEMU_SOURCE_DIR +
                                "/scenarios/skymemory-19x5.yaml --set compute.mode=real");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "compute.model: llama-3.2-1b's weights take 4.94 GB in fp32");
  r = satemu_limited(1000000, "quality --model tiny --tokens 4096 --sequences 100000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: out of memory: the model's weights (fp32) and the "
                            "activations of --tokens x --sequences");
#endif
}

// Scheduler threads whose stacks the memory limit cannot hold are refused
// before the run, and before a worker listens (the actor system had hung on
// the threads it could not start, and ignored SIGTERM).
TEST_F(cli_test, threads_that_cannot_start_are_bad_input) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers reserve more address space than the limit this test sets";
#else
  auto r = satemu_limited(2000000, std::string("run ") + SATEMU_SOURCE_DIR +
                                     "/scenarios/quickstart.yaml -q --out " +
                                     (dir_ / "thr").string() +
                                     " --set duration=100ms --threads 1000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: cannot start the run's 1000 scheduler threads (");
  EXPECT_FALSE(fs::exists(dir_ / "thr" / "summary.json"));
  // A worker's runs the same, before it listens.
  const auto secret = dir_ / "secret";
  write_file(secret, "a secret of enough bytes for the test\n");
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  r = satemu_limited(2000000, "worker --secret-file " + secret.string() + " --threads 1000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: cannot start the run's 1000 scheduler threads (");
  EXPECT_EQ(r.output.find("listening"), std::string::npos) << r.output;
  // So does the cpu backend's, for a run and for calibrate (which aborted,
  // or exited 1).
  r = satemu_limited(2000000, std::string("run ") + SATEMU_SOURCE_DIR +
                                "/scenarios/skymemory-19x5.yaml -q --out " +
                                (dir_ / "cthr").string() +
                                " --set duration=1s --set compute.mode=real --set "
                                "compute.model=tiny --set compute.threads=1000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "compute.threads: cannot start the cpu backend's 1000 threads (");
  r = satemu_limited(2000000, "calibrate --quick --threads 1000");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: error: cannot start the cpu backend's 1000 threads (");
#endif
}

// An output file that cannot be written (a full disk; here a 16 KiB file
// size limit, whose SIGXFSZ satemu ignores) costs only itself: the files
// after it are still written, and all are kept as partial.
TEST_F(cli_test, an_output_that_cannot_be_written_costs_only_itself) {
  const auto out = dir_ / "limited";
  const auto log = dir_ / "limited.txt";
  // bash: its `ulimit -f` counts KiB (sh's may count 512-byte blocks).
  const std::string cmd = std::string("bash -c \"ulimit -f 16; exec ") +
                          SATEMU_BINARY + " run " + SATEMU_SOURCE_DIR +
                          "/scenarios/grid-19x5-ping.yaml -q --out " + out.string() +
                          " --set duration=5s --set constellation.record.interval=1s\" > " +
                          log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << status << "\n" << read_file(log);
  EXPECT_EQ(WEXITSTATUS(status), 1) << read_file(log);
  EXPECT_CONTAINS(read_file(log), "links.csv.tmp': File too large");
  const auto j = read_json(out / "summary.partial.json");
  EXPECT_EQ(j["complete"], false);
  EXPECT_CONTAINS(j["error"].get<std::string>(), "links.csv.tmp': File too large");
  // links.csv (about 18 kB) and positions.csv (21 kB) do not fit; rtt.csv
  // (14 kB), written after them, does.
  EXPECT_EQ(j["unwritten_files"], nlohmann::json({"links.csv", "positions.csv"})) << read_file(log);
  for (const auto* kept : {"rtt.partial.csv", "handovers.partial.csv", "fingerprint.partial.txt",
                           "scenario.partial.resolved.yaml"})
    EXPECT_TRUE(fs::exists(out / kept)) << kept;
  EXPECT_FALSE(fs::exists(out / "links.partial.csv"));
  EXPECT_FALSE(fs::exists(out / "summary.json"));
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();

  // When the summary itself does not fit (starlink-ping's is over 20 KiB),
  // it goes to stderr, and the files written are still kept as partial
  // (they were left as .tmp files no later run removed).
  const auto big = dir_ / "limited-summary";
  const std::string cmd2 = std::string("bash -c \"ulimit -f 20; exec ") +
                           SATEMU_BINARY + " run " + SATEMU_SOURCE_DIR +
                           "/scenarios/starlink-ping.yaml -q --out " + big.string() +
                           " --set duration=2s\" > " + log.string() + " 2>&1";
  const int status2 = std::system(cmd2.c_str());
  ASSERT_TRUE(WIFEXITED(status2)) << status2 << "\n" << read_file(log);
  EXPECT_EQ(WEXITSTATUS(status2), 1) << read_file(log);
  // (The summary printed on stderr, into the same limited log, holds the error.)
  EXPECT_CONTAINS(read_file(log), "summary.json.tmp': File too large");
  for (const auto* kept : {"rtt.partial.csv", "fingerprint.partial.txt", ".satemu-outputs"})
    EXPECT_TRUE(fs::exists(big / kept)) << kept;
  for (const auto& e : fs::directory_iterator(big))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST_F(cli_test, set_without_equals_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = (dir_ / "o").string();
  auto r = satemu({"run", f, "--out", out, "--set", "workload.rate"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--set");
  EXPECT_FALSE(fs::exists(fs::path(out) / "summary.json"));
}

TEST_F(cli_test, set_of_unknown_key_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  for (const auto& cmd : {std::string("run"), std::string("validate")}) {
    auto r = satemu({cmd, f, "--set", "workload.no_such_key=1"});
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "--set");
    EXPECT_CONTAINS(r.output, "workload.no_such_key");
  }
}

TEST_F(cli_test, set_with_bad_value_names_set) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"validate", f, "--set", "workload.rate=-1"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--set");
  EXPECT_CONTAINS(r.output, "workload.rate");
  // A rate no window could hold (the run had hung, growing its memory).
  expect_refused(satemu({"validate", f, "--set", "workload.rate=1e300"}),
                 "workload.rate: expected a real number in [0, 1000000]");
  // Keys of another graph are refused, not ignored.
  expect_refused(
    satemu({"validate", f, "--set", "workload.topology=ring", "--set", "workload.width=7"}),
    "workload.width: only used with topology torus");
  expect_refused(satemu({"validate", f, "--set", "workload.degree=3"}),
                 "workload.degree: only used with topology random_regular");
  // Limits are named.
  expect_refused(satemu({"validate", f, "--set", "workload.entities=99999999999999"}),
                 "workload.entities: expected an integer in [2, 2147483647], got "
                 "'99999999999999'");
  expect_refused(satemu({"validate", f, "--set", "seed=99999999999999999999"}),
                 "seed: expected a non-negative integer; integers end at 9223372036854775807 "
                 "(got '99999999999999999999')");
}

// ---------------------------------------------------------------------------
// Help, version, validate, explain.

TEST_F(cli_test, help_lists_subcommands) {
  auto r = satemu({"--help"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "run");
  EXPECT_CONTAINS(r.output, "validate");
  EXPECT_CONTAINS(r.output, "\n  report ");
  EXPECT_CONTAINS(r.output, "130");
  auto r2 = satemu({"run", "--help"});
  EXPECT_EQ(r2.code, 0) << r2.output;
  EXPECT_CONTAINS(r2.output, "--seed");
  EXPECT_CONTAINS(r2.output, "--set");
}

TEST_F(cli_test, no_subcommand_is_bad_input) {
  auto r = satemu({});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "run");
}

TEST_F(cli_test, version_prints_a_version_line) {
  auto r = satemu({"--version"});
  EXPECT_EQ(r.code, 0) << r.output;
  // With the commit when built in a git checkout (distributed runs compare
  // the whole line).
  EXPECT_TRUE(std::regex_search(
    r.output, std::regex(R"(^satemu \d+\.\d+\.\d+( [0-9a-f]{7,40}(-dirty)?)?\n)")))
    << r.output;
  // Built from this checkout (the launcher builds before it tests): its
  // commit.
  const std::string src = SATEMU_SOURCE_DIR;
  const auto head = dir_ / "head.txt";
  if (fs::exists(src + "/.git") &&
      std::system(("git -C '" + src + "' rev-parse --short=12 HEAD > '" + head.string() +
                   "' 2>/dev/null")
                    .c_str()) == 0) {
    auto commit = read_file(head);
    commit.erase(commit.find_last_not_of('\n') + 1);
    EXPECT_CONTAINS(r.output, " " + commit) << "run cmake --build after committing";
  }
}

TEST_F(cli_test, explain_lists_every_key) {
  auto r = satemu({"validate", "--explain"});
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* key : {"duration", "seed", "clock.mode", "clock.dilation", "threads",
                          "output.dir", "output.trace", "workload.kind", "workload.rate",
                          "workload.entities"})
    EXPECT_CONTAINS(r.output, key);
}

TEST_F(cli_test, explain_mesh_lists_mesh_keys) {
  auto r = satemu({"validate", "--explain", "mesh"});
  EXPECT_EQ(r.code, 0) << r.output;
  for (const char* key : {"workload.entities", "workload.topology", "workload.width",
                          "workload.degree", "workload.latency_min", "workload.latency_max",
                          "workload.rate", "workload.payload"})
    EXPECT_CONTAINS(r.output, key);
  // Only the kind's keys: not the base schema's.
  EXPECT_EQ(r.output.find("clock.dilation"), std::string::npos) << r.output;
}

TEST_F(cli_test, explain_unknown_kind_is_bad_input) {
  auto r = satemu({"validate", "--explain", "nosuchkind"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "nosuchkind");
  expect_refused(satemu({"validate", "--explain", "mseh"}),
                 "unknown workload kind 'mseh' (did you mean 'mesh'?); registered kinds: ");
}

TEST_F(cli_test, a_name_that_cannot_name_the_output_directory_is_bad_input) {
  for (const std::string name : {"''", "../escape", "a/b", ".."}) {
    const auto text = replace(small_yaml, "name: small", "name: " + name);
    const auto f = scenario("n.yaml", text);
    auto r = satemu({"validate", f});
    EXPECT_EQ(r.code, 2) << name << ": " << r.output;
    EXPECT_CONTAINS(r.output, f + ":1:7: name: ");
  }
  EXPECT_FALSE(fs::exists(dir_ / "escape"));
}

// --out is a path as it is, not YAML: a '#' began a comment, and "~" was
// null.
TEST_F(cli_test, out_is_taken_as_a_path_as_it_is) {
  const auto f = scenario("s.yaml", small_yaml);
  for (const std::string dir : {"o # x", "~", "\"a\" 'b'"}) {
    auto r = satemu({"run", f, "-q", "--out", (dir_ / dir).string()});
    ASSERT_EQ(r.code, 0) << dir << ": " << r.output;
    EXPECT_TRUE(fs::exists(dir_ / dir / "summary.json")) << dir;
  }
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

// Found before the run, not after it (not even root can write there).
TEST_F(cli_test, an_output_directory_that_cannot_be_written_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"run", f, "--out", "/proc/self"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "cannot write in output directory '/proc/self'");
  EXPECT_EQ(r.output.find("done"), std::string::npos) << r.output;
}

TEST_F(cli_test, explain_with_a_file_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"validate", f, "--explain", "mesh"}, {"validate", "--explain", "--set", "seed=2"}}) {
    auto r = satemu(args);
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "a FILE (with --set) or --explain, not both");
  }
}

TEST_F(cli_test, validate_good_file_exits_zero) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "ok");
  // The shipped example is valid too.
  auto q = satemu({"validate", std::string(SATEMU_SOURCE_DIR) + "/scenarios/quickstart.yaml"});
  EXPECT_EQ(q.code, 0) << q.output;
}

// Every workload that runs needs a duration; only `satemu sweep`'s analytic
// model goes without one (the sweep tests below give none).
TEST_F(cli_test, a_scenario_without_a_duration_is_refused_naming_the_key) {
  const auto f = scenario("s.yaml", replace(small_yaml, "duration: 1s\n", ""));
  for (const auto& args : std::vector<std::vector<std::string>>{
         {"validate", f}, {"run", f, "--out", (dir_ / "o").string()}}) {
    auto r = satemu(args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.output;
    EXPECT_CONTAINS(r.output, f + ": duration: missing required key 'duration'");
  }
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

TEST_F(cli_test, validate_writes_nothing) {
  const auto f = scenario("s.yaml", replace(small_yaml, "seed: 1", "seed: 1\noutput: {dir: o}"));
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "o"));
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

// ---------------------------------------------------------------------------
// A complete run and its outputs.

// Golden fingerprints: short runs of shipped scenarios give the same events
// as when these were recorded, on 1 and 2 threads. A change that alters what
// a scenario does (routing, timing, a workload's draws) fails here; when the
// change is meant, run the command in the failure message and update the
// line, saying why in the commit. They do not depend on which variants of
// the math functions glibc picks for the CPU: a third run has those using
// FMA and AVX2 turned off (they give other last bits; emulated times are
// whole nanoseconds).
TEST_F(cli_test, shipped_scenarios_keep_their_fingerprints) {
  const std::string src = SATEMU_SOURCE_DIR;
  const struct {
    const char* name;
    const char* duration;
    const char* fingerprint;
    std::uint64_t events, envelopes;
  } golden[] = {
    {"quickstart", "2s", "3e97b4c534795ea7", 681'776, 640'765},
    {"grid-19x5-ping", "20s", "b0b13917ef77b703", 5'400, 4'800},
    {"starlink-ping", "5s", "8eef2518eff80074", 10'556, 10'056},
    {"starlink-tle", "2s", "206da524c4fba8c8", 2'848, 2'648},
    {"skymemory-19x5", "30s", "3e21fa8d222fa040", 2'314, 1'631},
  };
  const struct {
    const char* threads;
    const char* tunables; // GLIBC_TUNABLES, empty for none
  } variants[] = {{"1", ""}, {"2", ""}, {"1", "glibc.cpu.hwcaps=-AVX2,-FMA"}};
  for (const auto& g : golden) {
    for (const auto& v : variants) {
      const auto out = dir_ / (std::string("golden_") + g.name + "_" + v.threads +
                               (*v.tunables ? "_nofma" : ""));
      std::vector<std::string> args = {"run", src + "/scenarios/" + g.name + ".yaml", "-q",
                                       "--out", out.string(), "--threads", v.threads,
                                       "--set", std::string("duration=") + g.duration};
      if (std::string(g.name) == "starlink-tle")
        args.insert(args.end(), {"--set", "constellation.tle.file=" + src +
                                            "/scenarios/tle/starlink-2026-02-24.tle"});
      if (*v.tunables)
        setenv("GLIBC_TUNABLES", v.tunables, 1);
      auto r = satemu(args);
      unsetenv("GLIBC_TUNABLES");
      ASSERT_EQ(r.code, 0) << r.output;
      const auto j = read_json(out / "summary.json");
      const std::string how = (*v.tunables ? std::string("GLIBC_TUNABLES=") + v.tunables + " "
                                           : std::string()) +
                              "satemu run scenarios/" + g.name + ".yaml --set duration=" +
                              g.duration + " --threads " + v.threads;
      EXPECT_EQ(j["fingerprint"].get<std::string>(), g.fingerprint) << how;
      EXPECT_EQ(j["events"].get<std::uint64_t>(), g.events) << how;
      EXPECT_EQ(j["envelopes"].get<std::uint64_t>(), g.envelopes) << how;
    }
  }
}

TEST_F(cli_test, run_writes_summary_resolved_scenario_and_fingerprint) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = dir_ / "run_out";
  auto r = satemu({"run", f, "--out", out.string(), "--seed", "7", "--threads", "2", "--set",
                   "workload.rate=30"});
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::exists(out / "summary.json")) << r.output;
  ASSERT_TRUE(fs::exists(out / "scenario.resolved.yaml"));
  ASSERT_TRUE(fs::exists(out / "fingerprint.txt"));
  EXPECT_FALSE(fs::exists(out / "summary.partial.json"));
  // No temporary files left behind.
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();

  const auto j = read_json(out / "summary.json");
  for (const char* key : {"fingerprint", "events", "envelopes", "emulated_seconds",
                          "wall_seconds", "events_per_wall_second", "envelopes_per_wall_second",
                          "peak_rss_bytes", "threads", "seed", "metrics"})
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << j.dump(2);
  EXPECT_EQ(j.value("complete", false), true);
  EXPECT_GT(j["events"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["envelopes"].get<std::uint64_t>(), 0u);
  EXPECT_LE(j["envelopes"].get<std::uint64_t>(), j["events"].get<std::uint64_t>());
  EXPECT_DOUBLE_EQ(j["emulated_seconds"].get<double>(), 1.0);
  EXPECT_GE(j["wall_seconds"].get<double>(), 0.0);
  EXPECT_GT(j["peak_rss_bytes"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["seed"].get<std::uint64_t>(), 7u);
  EXPECT_EQ(j["threads"].get<std::uint64_t>(), 2u);
  EXPECT_EQ(j["metrics"]["entities"].get<std::uint64_t>(), 64u);
  EXPECT_EQ(j["metrics"]["hop_deliveries"].get<std::uint64_t>(),
            j["envelopes"].get<std::uint64_t>());
  // events = envelopes + one timer per message created.
  EXPECT_EQ(j["events"].get<std::uint64_t>(),
            j["envelopes"].get<std::uint64_t>() +
              j["metrics"]["messages_sent"].get<std::uint64_t>());

  const auto fp = read_file(out / "fingerprint.txt");
  EXPECT_EQ(fp, j["fingerprint"].get<std::string>() + "\n");
  EXPECT_TRUE(std::regex_match(j["fingerprint"].get<std::string>(), std::regex("[0-9a-f]{16}")));

  const auto resolved = read_file(out / "scenario.resolved.yaml");
  EXPECT_CONTAINS(resolved, "seed: 7");
  EXPECT_CONTAINS(resolved, "threads: 2");
  EXPECT_CONTAINS(resolved, "rate: 30");
  EXPECT_CONTAINS(resolved, "dir: " + out.string());
  EXPECT_CONTAINS(resolved, "entities: 64");

  // The last line of stdout names the summary.
  EXPECT_CONTAINS(r.output, (out / "summary.json").string());
}

TEST_F(cli_test, set_rate_changes_the_message_count) {
  const auto f = scenario("s.yaml", small_yaml);
  auto a = satemu({"run", f, "-q", "--out", (dir_ / "a").string(), "--set", "workload.rate=10"});
  auto b = satemu({"run", f, "-q", "--out", (dir_ / "b").string(), "--set", "workload.rate=40"});
  ASSERT_EQ(a.code, 0) << a.output;
  ASSERT_EQ(b.code, 0) << b.output;
  const auto ja = read_json(dir_ / "a" / "summary.json");
  const auto jb = read_json(dir_ / "b" / "summary.json");
  const double sa = ja["metrics"]["messages_sent"].get<double>();
  const double sb = jb["metrics"]["messages_sent"].get<double>();
  // Poisson: 64 entities x 1 s x rate messages, give or take a few sigma.
  EXPECT_NEAR(sa, 640, 5 * std::sqrt(640.0));
  EXPECT_NEAR(sb, 2560, 5 * std::sqrt(2560.0));
}

TEST_F(cli_test, quiet_run_prints_no_progress) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"run", f, "-q", "--out", (dir_ / "o").string()});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("[satemu]"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "o" / "summary.json"));
}

TEST_F(cli_test, output_dir_from_scenario_relative_to_cwd) {
  const auto f =
    scenario("s.yaml", replace(small_yaml, "seed: 1", "seed: 1\noutput: {dir: from_file}"));
  auto r = satemu({"run", f, "-q"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "from_file" / "summary.json"));
}

// ---------------------------------------------------------------------------
// Determinism through the command line.

TEST_F(cli_test, fingerprint_independent_of_threads_and_reproducible_from_resolved) {
  const auto f = scenario("s.yaml", small_yaml);
  auto fingerprint = [&](const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> args{"run", f, "-q", "--out", (dir_ / out).string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = satemu(args);
    EXPECT_EQ(r.code, 0) << r.output;
    return read_json(dir_ / out / "summary.json");
  };
  const auto t1 = fingerprint("t1", {"--threads", "1"});
  const auto t2 = fingerprint("t2", {"--threads", "2"});
  const auto t4 = fingerprint("t4", {"--threads", "4"});
  const auto s2 = fingerprint("s2", {"--threads", "2", "--seed", "2"});
  EXPECT_EQ(t1["fingerprint"], t2["fingerprint"]);
  EXPECT_EQ(t1["fingerprint"], t4["fingerprint"]);
  EXPECT_EQ(t1["events"], t2["events"]);
  EXPECT_EQ(t1["envelopes"], t2["envelopes"]);
  EXPECT_EQ(t1["metrics"]["messages_delivered"], t2["metrics"]["messages_delivered"]);
  EXPECT_EQ(t1["threads"].get<int>(), 1);
  EXPECT_EQ(t2["threads"].get<int>(), 2);
  EXPECT_NE(t1["fingerprint"], s2["fingerprint"]);

  // The resolved scenario runs again to the same fingerprint.
  auto r = satemu({"run", (dir_ / "t2" / "scenario.resolved.yaml").string(), "-q", "--out",
                   (dir_ / "again").string()});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto again = read_json(dir_ / "again" / "summary.json");
  EXPECT_EQ(again["fingerprint"], t2["fingerprint"]);
  EXPECT_EQ(again["events"], t2["events"]);
  // And resolving it again is a fixed point (apart from the output dir).
  auto strip_dir = [](std::string s) {
    return std::regex_replace(s, std::regex("\n  dir: [^\n]*\n"), "\n  dir: X\n");
  };
  EXPECT_EQ(strip_dir(read_file(dir_ / "again" / "scenario.resolved.yaml")),
            strip_dir(read_file(dir_ / "t2" / "scenario.resolved.yaml")));

  // Without --out the resolved scenario names the t2 dir, whose results it
  // would clear first (an interrupted rerun lost them): refused, and they
  // stay.
  auto r2 = satemu({"run", (dir_ / "t2" / "scenario.resolved.yaml").string(), "-q"});
  EXPECT_EQ(r2.code, 2) << r2.output;
  EXPECT_CONTAINS(r2.output, "scenario.resolved.yaml is an output of a run in '");
  EXPECT_CONTAINS(r2.output, "give it another --out");
  ASSERT_TRUE(fs::exists(dir_ / "t2" / "summary.json"));
  EXPECT_EQ(read_json(dir_ / "t2" / "summary.json")["fingerprint"], t2["fingerprint"]);
  // So is a scenario of the user's named as that output, in the directory
  // the run writes to: the run would replace it.
  fs::create_directories(dir_ / "own");
  write_file(dir_ / "own" / "scenario.resolved.yaml", small_yaml);
  auto r3 = satemu({"run", (dir_ / "own" / "scenario.resolved.yaml").string(), "-q", "--out",
                    (dir_ / "own").string()});
  EXPECT_EQ(r3.code, 2) << r3.output;
  EXPECT_EQ(read_file(dir_ / "own" / "scenario.resolved.yaml"), small_yaml);
}

// ---------------------------------------------------------------------------
// Comparing runs: report.

namespace {

// Two runs' summaries: b's run did not complete.
const char* const summary_a = R"({"scenario": "demo", "complete": true, "seed": 1,
  "wall_seconds": 3.912662771, "label": "a, b", "nodes": [],
  "metrics": {"latency_ms": {"p50": 88.080383, "p99": null}, "topology": "torus",
              "hops": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]}})";
const char* const summary_b = R"({"scenario": "demo", "complete": false,
  "error": "interrupted (Ctrl-C) at 2s", "seed": 2, "wall_seconds": 1.5,
  "metrics": {"latency_ms": {"p50": 90.5, "p99": 120}, "topology": "torus", "hops": [0, 1]}})";

} // namespace

// One row per flattened key (array elements in index order), one column per
// run; a key a run lacks reads '-', numbers are rounded to 6 digits; a run
// that did not complete is read from its partial summary, with a note.
TEST_F(cli_test, report_shows_runs_side_by_side) {
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "b");
  write_file(dir_ / "a" / "summary.json", summary_a);
  write_file(dir_ / "b" / "summary.partial.json", summary_b);
  // The rows of the elements of a's hops that b does not have.
  std::string hops_only_in_a;
  for (int i = 2; i <= 10; ++i) {
    std::string row = "metrics.hops[" + std::to_string(i) + "]";
    row.resize(24, ' ');
    row += std::to_string(i);
    row.resize(33, ' ');
    hops_only_in_a += row + "-\n";
  }
  auto r = satemu({"report", "a", "b/"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "satemu: note: b: the run did not complete: interrupted (Ctrl-C) at 2s\n"
                      "key                     a        b\n"
                      "complete                true     false\n"
                      "error                   -        interrupted (Ctrl-C) at 2s\n"
                      "label                   a, b     -\n"
                      "metrics.hops[0]         0        0\n"
                      "metrics.hops[1]         1        1\n" +
                        hops_only_in_a +
                      "metrics.latency_ms.p50  88.0804  90.5\n"
                      "metrics.latency_ms.p99  null     120\n"
                      "metrics.topology        torus    torus\n"
                      "nodes                   []       -\n"
                      "scenario                demo     demo\n"
                      "seed                    1        2\n"
                      "wall_seconds            3.91266  1.5\n");

  // --diff leaves out the keys every run has the same value for, and says
  // how many; --keys takes keys by pattern, and the keys under a match.
  r = satemu({"report", "a", "b", "--diff", "--keys", "metrics", "--keys", "seed"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "satemu: note: b: the run did not complete: interrupted (Ctrl-C) at 2s\n"
                      "key                     a        b\n" +
                        hops_only_in_a +
                      "metrics.latency_ms.p50  88.0804  90.5\n"
                      "metrics.latency_ms.p99  null     120\n"
                      "seed                    1        2\n"
                      "satemu: 3 keys with the same value in every run not shown\n");
  r = satemu({"report", "a/summary.json", "--keys", "*.p?9", "--keys", "metrics.hops[1?]"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "key                     a/summary.json\n"
                      "metrics.hops[10]        10\n"
                      "metrics.latency_ms.p99  null\n");

  // The CSV holds the values as the summaries do, quoted where they must be.
  r = satemu({"report", "a", "b", "--keys", "label", "--keys", "wall_seconds", "--keys", "error",
              "--csv", "t.csv"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(read_file(dir_ / "t.csv"), "key,a,b\n"
                                       "error,,interrupted (Ctrl-C) at 2s\n"
                                       "label,\"a, b\",\n"
                                       "wall_seconds,3.912662771,1.5\n");
  r = satemu({"report", "a", "--keys", "seed", "--csv", "-"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output, "key,a\nseed,1\n");
}

// Runs of one scenario on 1 and 2 threads differ only in what the host
// measured; another seed gives another fingerprint.
TEST_F(cli_test, report_compares_real_runs) {
  const auto f = scenario("s.yaml", small_yaml);
  for (const auto& [out, threads, seed] : {std::tuple{"t1", "1", "1"}, std::tuple{"t2", "2", "1"},
                                           std::tuple{"s2", "2", "2"}}) {
    auto r = satemu({"run", f, "-q", "--out", out, "--threads", threads, "--seed", seed});
    ASSERT_EQ(r.code, 0) << r.output;
  }
  auto r = satemu({"report", "t1", "t2", "--diff"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "\nthreads ");
  EXPECT_CONTAINS(r.output, "\nwall_seconds ");
  for (const char* same : {"fingerprint", "events ", "metrics.messages_delivered", "seed"})
    EXPECT_EQ(r.output.find(same), std::string::npos) << same << " in\n" << r.output;
  r = satemu({"report", "t1", "s2", "--keys", "fingerprint", "--csv", "f.csv"});
  EXPECT_EQ(r.code, 0) << r.output;
  const auto t1 = read_json(dir_ / "t1" / "summary.json")["fingerprint"].get<std::string>();
  const auto s2 = read_json(dir_ / "s2" / "summary.json")["fingerprint"].get<std::string>();
  EXPECT_NE(t1, s2);
  EXPECT_EQ(read_file(dir_ / "f.csv"), "key,t1,s2\nfingerprint," + t1 + "," + s2 + "\n");
}

// What report cannot read, or a pattern that matches nothing, is bad input
// (exit 2) that says what and where; nothing is printed as a table then.
TEST_F(cli_test, report_refuses_what_it_cannot_read) {
  fs::create_directories(dir_ / "a");
  fs::create_directories(dir_ / "empty");
  write_file(dir_ / "a" / "summary.json", summary_a);
  write_file(dir_ / "bad.json", "{\"seed\":\n");
  write_file(dir_ / "list.json", "[1, 2]\n");
  // Deep enough to overflow the stack of a recursive flattening (it did).
  write_file(dir_ / "deep.json",
             "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}\n");
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases{
    {{"report"}, "report needs a RUN: a run's output directory or a summary file"},
    {{"report", "a", "nothere"}, "nothere: cannot open: No such file or directory"},
    {{"report", "empty"}, "empty: holds neither summary.json nor summary.partial.json"},
    {{"report", "bad.json"}, "bad.json: not a JSON summary: parse error at line 2, column 1"},
    {{"report", "list.json"}, "list.json: not a satemu summary (expected a JSON object)"},
    {{"report", "deep.json"}, "deep.json: not a satemu summary (nested deeper than 64 levels)"},
    {{"report", "a", "--diff"}, "--diff compares runs: give two or more"},
    {{"report", "a", "--keys", "seed", "--keys", "metrics.latency_ms.p5"},
     "--keys metrics.latency_ms.p5: matches no key of this run"},
    {{"report", "a", "--csv", "no/such/t.csv"}, "--csv no/such/t.csv: cannot create"},
  };
  for (const auto& [args, message] : cases) {
    auto r = satemu(args);
    EXPECT_EQ(r.code, 2) << args.back() << ": " << r.output;
    EXPECT_CONTAINS(r.output, "satemu: error: " + message);
    EXPECT_EQ(r.output.find("key  "), std::string::npos) << r.output; // the table's head
  }
}

// ---------------------------------------------------------------------------
// Interruption.

TEST_F(cli_test, sigint_leaves_partial_outputs_and_exits_130) {
  // Long enough never to finish on its own: 1024 entities, 1000 s emulated;
  // 100,000 messages per entity and second make each 1 ms window tens of
  // milliseconds long.
  const std::string big = R"(name: big
seed: 1
duration: 1000s
workload:
  kind: mesh
  entities: 1024
  topology: torus
  rate: 100000
)";
  const auto f = scenario("big.yaml", big);
  const auto out = dir_ / "big_out";
  // An earlier complete run leaves a summary.json behind.
  auto first = satemu({"run", f, "-q", "--out", out.string(), "--set", "duration=10ms"});
  ASSERT_EQ(first.code, 0) << first.output;
  ASSERT_TRUE(fs::exists(out / "summary.json"));

  // The banner line is printed once the scenario is loaded and the output
  // directory opened, right before the run starts and installs its SIGINT
  // handler; a one-second start delay after it covers the rest.
  auto c = spawn_satemu({"run", f, "--out", out.string()}, dir_, dir_ / "big.log");
  ASSERT_GT(c.pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool started = false;
  int status = 0;
  bool exited = false;
  while (std::chrono::steady_clock::now() < deadline) {
    if (read_file(c.log).find("[satemu] big: 1024 entities") != std::string::npos) {
      started = true;
      break;
    }
    if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
      exited = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited && !started) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    FAIL() << "run never started:\n" << read_file(c.log);
  }
  ASSERT_FALSE(exited) << "run ended before it was interrupted:\n" << read_file(c.log);
  std::this_thread::sleep_for(std::chrono::seconds(1)); // start delay only
  ASSERT_NE(waitpid(c.pid, &status, WNOHANG), c.pid)
    << "run ended before it was interrupted:\n" << read_file(c.log);
  // The earlier summary stays while the run runs (a run that fails or is
  // stopped before it starts leaves it).
  EXPECT_TRUE(fs::exists(out / "summary.json"));
  // A second run into the directory is refused while this one holds it
  // (the two had mixed their files).
  auto second = satemu({"run", f, "-q", "--out", out.string(), "--set", "duration=10ms"});
  EXPECT_EQ(second.code, 2) << second.output;
  EXPECT_CONTAINS(second.output, "output directory '" + out.string() +
                                   "' is in use by another satemu run");

  // Twice, 10 ms apart, as `timeout -s INT` signals the process and its
  // group: one stop, which still writes the partial outputs (the second had
  // killed the process, leaving none).
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  kill(c.pid, SIGINT);
  // Wait for the exit, with a generous deadline in case SIGINT is ignored.
  const auto stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!exited && std::chrono::steady_clock::now() < stop_deadline) {
    if (waitpid(c.pid, &status, WNOHANG) == c.pid)
      exited = true;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!exited) {
    kill(c.pid, SIGKILL);
    waitpid(c.pid, &status, 0);
    FAIL() << "run did not stop after SIGINT:\n" << read_file(c.log);
  }
  const auto log = read_file(c.log);
  EXPECT_EQ(decode_status(status), 130) << log;
  // Not on a terminal: the stop's line has no empty line before it.
  EXPECT_CONTAINS(log, "[satemu] stopping at the end of the current window");
  EXPECT_EQ(log.find("\n\n[satemu] stopping"), std::string::npos) << log;
  // No advice for a run that did not reach its end ("a longer duration").
  EXPECT_EQ(log.find("still in flight"), std::string::npos) << log;
  EXPECT_TRUE(log.find("partial") != std::string::npos || log.find("PARTIAL") != std::string::npos)
    << log;
  EXPECT_FALSE(fs::exists(out / "summary.json"));
  ASSERT_TRUE(fs::exists(out / "summary.partial.json")) << log;
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  const auto j = read_json(out / "summary.partial.json");
  EXPECT_EQ(j["complete"], false);
  EXPECT_EQ(j["error"].get<std::string>().rfind("interrupted (SIGINT, SIGTERM or SIGHUP) at "
                                                "emulated ",
                                                0),
            0u)
    << j["error"];
  const double reached = j["emulated_seconds"].get<double>();
  EXPECT_GT(reached, 0.0);
  EXPECT_LT(reached, 1000.0);
  EXPECT_GT(j["events"].get<std::uint64_t>(), 0u);
  EXPECT_TRUE(j.contains("fingerprint"));
  EXPECT_TRUE(fs::exists(out / "fingerprint.partial.txt"));
  EXPECT_EQ(read_file(out / "fingerprint.partial.txt"), j["fingerprint"].get<std::string>() + "\n");
  // Nothing of the complete run before stays beside the partial one, and a
  // complete run after it leaves none of the partial files; a file of the
  // user's own is left alone.
  EXPECT_FALSE(fs::exists(out / "fingerprint.txt"));
  EXPECT_FALSE(fs::exists(out / "scenario.resolved.yaml"));
  write_file(out / "notes.txt", "mine");
  auto again = satemu({"run", f, "-q", "--out", out.string(), "--set", "duration=10ms"});
  ASSERT_EQ(again.code, 0) << again.output;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{".satemu-outputs", "fingerprint.txt", "notes.txt",
                                             "scenario.resolved.yaml", "summary.json"}));
}

// SIGTERM (timeout, batch systems) and SIGHUP (a closed terminal) stop a
// run as Ctrl-C does: partial outputs and exit 130 (they had killed the run
// with no outputs).
TEST_F(cli_test, sigterm_leaves_partial_outputs_and_exits_130) {
  for (const int sig : {SIGTERM, SIGHUP}) {
    SCOPED_TRACE(sig);
    const auto out = dir_ / ("term" + std::to_string(sig));
    const auto log = dir_ / ("term" + std::to_string(sig) + ".log");
    auto c = spawn_satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/quickstart.yaml",
                           "--out", out.string(), "--set", "duration=100000s"},
                          dir_, log);
    ASSERT_GT(c.pid, 0);
    wait_for_log(c, "[satemu] quickstart: ");
    std::this_thread::sleep_for(std::chrono::seconds(1)); // past the start
    ASSERT_EQ(kill(c.pid, sig), 0);
    const auto status = wait_for_exit(c);
    ASSERT_TRUE(status) << "run did not stop after the signal:\n" << read_file(log);
    EXPECT_EQ(decode_status(*status), 130) << read_file(log);
    EXPECT_TRUE(fs::exists(out / "summary.partial.json")) << read_file(log);
  }
}

// A stop before the run starts (here while the model's weights are made,
// 12 s for llama-3.2-1b) ends the process at once, saying so, and leaves
// the directory's earlier outputs alone (it died silently, or, with SIGINT
// ignored as in a script's background job, was lost and the run went on).
TEST_F(cli_test, a_stop_while_the_weights_are_made_ends_at_once) {
  const auto out = dir_ / "early";
  fs::create_directories(out);
  write_file(out / "summary.json", "{}\n");
  const auto log = dir_ / "early.log";
  auto c = spawn_satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                         "--out", out.string(), "--set", "compute.mode=real", "--set",
                         "duration=20s"},
                        dir_, log);
  ASSERT_GT(c.pid, 0);
  wait_for_log(c, "making llama-3.2-1b's weights");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  const auto status = wait_for_exit(c);
  ASSERT_TRUE(status) << "run did not stop:\n" << read_file(log);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(decode_status(*status), 130) << read_file(log);
  EXPECT_CONTAINS(read_file(log), "[satemu] interrupted before the run started: no outputs written");
  EXPECT_EQ(read_file(out / "summary.json"), "{}\n");
}

// What refuses a real-compute run is found before its weights are made
// (seconds to minutes): an output directory that cannot be made, and a
// model larger than compute.memory_limit (it had said "making" first).
TEST_F(cli_test, a_refused_real_compute_run_makes_no_weights) {
  const std::string file = std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml";
  write_file(dir_ / "a-file", "x\n");
  auto r = satemu({"run", file, "--set", "compute.mode=real", "--out",
                   (dir_ / "a-file" / "out").string()});
  expect_refused(r, "cannot create output directory");
  EXPECT_EQ(r.output.find("making"), std::string::npos) << r.output;
  r = satemu({"run", file, "--set", "compute.mode=real", "--set", "compute.memory_limit=1GiB",
              "--out", (dir_ / "limited").string()});
  expect_refused(r, "more than the 1GiB of compute.memory_limit");
  EXPECT_EQ(r.output.find("making"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "limited"));
}

// So does a sweep's before its files are written (it had died silently),
// leaving no directory behind; 10^6 servers take seconds a point.
TEST_F(cli_test, a_stop_while_a_sweep_computes_ends_at_once) {
  const auto out = dir_ / "sweep-stopped";
  const auto log = dir_ / "sweep-stopped.log";
  auto c = spawn_satemu({"sweep", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-sweeps.yaml",
                         "--out", out.string(), "--set", "workload.planes=1000", "--set",
                         "workload.sats_per_plane=1000", "--set", "workload.servers=1000000"},
                        dir_, log);
  ASSERT_GT(c.pid, 0);
  wait_for_log(c, "analytic skymemory");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(kill(c.pid, SIGINT), 0);
  const auto status = wait_for_exit(c);
  ASSERT_TRUE(status) << "sweep did not stop:\n" << read_file(log);
  EXPECT_EQ(decode_status(*status), 130) << read_file(log);
  EXPECT_CONTAINS(read_file(log),
                  "[satemu] interrupted before the outputs were written: nothing written");
  EXPECT_FALSE(fs::exists(out));
}

// ---------------------------------------------------------------------------
// Trace and real time.

TEST_F(cli_test, trace_has_one_row_per_event_sorted_by_time) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = dir_ / "tr";
  auto r = satemu({"run", f, "-q", "--out", out.string(), "--set", "output.trace=true",
                   "--threads", "2"});
  ASSERT_EQ(r.code, 0) << r.output;
  ASSERT_TRUE(fs::exists(out / "trace.csv"));
  const auto j = read_json(out / "summary.json");
  std::ifstream in(out / "trace.csv");
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  EXPECT_EQ(line, "time_ns,entity,source,sequence,kind");
  std::uint64_t rows = 0, timers = 0, mesh = 0;
  std::int64_t last = -1;
  bool sorted = true;
  while (std::getline(in, line)) {
    ++rows;
    std::int64_t t = 0;
    unsigned entity = 0;
    char kind[32] = {};
    ASSERT_EQ(std::sscanf(line.c_str(), "%ld,%u,%*u,%*u,%31s", &t, &entity, kind), 3) << line;
    EXPECT_LT(entity, 64u) << line;
    EXPECT_GE(t, 0) << line;
    EXPECT_LT(t, 1'000'000'000) << line;
    if (t < last)
      sorted = false;
    last = t;
    timers += std::string(kind) == "timer";
    mesh += std::string(kind) == "mesh";
  }
  EXPECT_TRUE(sorted);
  EXPECT_EQ(rows, j["events"].get<std::uint64_t>());
  EXPECT_EQ(timers, j["metrics"]["messages_sent"].get<std::uint64_t>());
  EXPECT_EQ(mesh, j["envelopes"].get<std::uint64_t>());
  // Tracing does not change what ran.
  auto r2 = satemu({"run", f, "-q", "--out", (dir_ / "nt").string()});
  ASSERT_EQ(r2.code, 0) << r2.output;
  EXPECT_FALSE(fs::exists(dir_ / "nt" / "trace.csv"));
  EXPECT_EQ(read_json(dir_ / "nt" / "summary.json")["fingerprint"], j["fingerprint"]);
}

// No event, no lateness measured: null, not a perfect 0.
TEST_F(cli_test, a_realtime_run_without_events_has_null_lateness) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = dir_ / "rt0";
  auto r = satemu({"run", f, "-q", "--out", out.string(), "--set", "clock.mode=realtime", "--set",
                   "duration=0.1s", "--set", "workload.rate=0"});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto l = read_json(out / "summary.json")["lateness_ns"];
  EXPECT_EQ(l["count"].get<std::uint64_t>(), 0u) << l.dump();
  EXPECT_TRUE(l["p50"].is_null()) << l.dump();
  EXPECT_TRUE(l["mean"].is_null()) << l.dump();
}

TEST_F(cli_test, realtime_run_reports_lateness) {
  const auto f = scenario("s.yaml", small_yaml);
  const auto out = dir_ / "rt";
  auto r = satemu({"run", f, "-q", "--out", out.string(), "--set", "clock.mode=realtime", "--set",
                   "duration=0.3s", "--set", "workload.entities=16", "--set", "workload.rate=20"});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = read_json(out / "summary.json");
  EXPECT_EQ(j["clock"], "realtime");
  EXPECT_EQ(j["complete"], true);
  EXPECT_DOUBLE_EQ(j["emulated_seconds"].get<double>(), 0.3);
  ASSERT_TRUE(j.contains("lateness_ns")) << j.dump(2);
  const auto& l = j["lateness_ns"];
  ASSERT_TRUE(l.contains("p50") && l.contains("p99")) << l.dump();
  EXPECT_GE(l["p50"].get<std::int64_t>(), 0);
  EXPECT_GE(l["p99"].get<std::int64_t>(), l["p50"].get<std::int64_t>());
  EXPECT_GT(l["count"].get<std::uint64_t>(), 0u);
  EXPECT_GT(j["events"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(j["metrics"]["malformed"].get<std::uint64_t>(), 0u);
  // It says that the host fell behind when the p90 lateness is above 10 ms
  // (the least of 10 ms and a tenth of the run's wall time), and only then.
  // Whether the host did is its own: a busy VM wakes an idle thread 10 ms
  // or more late.
  EXPECT_EQ(r.output.find("fell behind") != std::string::npos,
            l["p90"].get<std::int64_t>() > 10'000'000)
    << r.output << l.dump();
  // A run the host cannot pace (0.3 s emulated in 0.3 ns of wall time) says
  // so, and still ends: that no event ran, or, when some did, that they ran
  // late (which one depends on the host's timing).
  auto late = satemu({"run", f, "-q", "--out", (dir_ / "late").string(), "--set",
                      "clock.mode=realtime", "--set", "duration=0.3s", "--set",
                      "clock.dilation=1e-9", "--set", "workload.entities=16"});
  EXPECT_EQ(late.code, 0) << late.output;
  EXPECT_CONTAINS(late.output, "satemu: warning: real time: ");
  // Nor can it wait longer than nanoseconds hold.
  expect_refused(
    satemu({"validate", f, "--set", "clock.mode=realtime", "--set", "clock.dilation=1e12"}),
    "clock.dilation: duration x dilation is 3.17e+04 years of wall time; a real-time run may last "
    "at most 100 years");
  // Named by the key that made it long.
  expect_refused(
    satemu({"validate", f, "--set", "clock.mode=realtime", "--set", "duration=1000000h"}),
    "duration: duration x dilation is 114 years of wall time");
}

} // namespace

// --- Space segment: bad input exits 2 and names the file, line or key. ---

const char* const space_yaml = R"(name: sp
seed: 1
duration: 1s
constellation:
  shells:
    - {planes: 6, sats_per_plane: 8, altitude: 550km, inclination: 53deg, phasing: 1}
ground:
  stations:
    - {name: a, lat: 10, lon: 20}
    - {name: b, lat: 30, lon: 60}
workload: {kind: ping, pattern: ring}
)";

const char* const good_tle =
  "STARLINK-1008\n"
  "1 44714U 19074B   26055.14611000  .00001017  00000+0  87049-4 0  9992\n"
  "2 44714  53.0541 211.3215 0001455  86.1385 273.9764 15.06396611346910\n";

/// `good_tle` with one character of line `line` (1-based) at `col` replaced.
std::string damaged_tle(int line, std::size_t col, char c) {
  std::vector<std::string> lines;
  std::stringstream ss(good_tle);
  for (std::string l; std::getline(ss, l);)
    lines.push_back(l);
  lines[static_cast<std::size_t>(line - 1)][col - 1] = c;
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

TEST_F(cli_test, space_scenario_with_good_tle_validates) {
  // The base of the TLE cases below: valid as it is (its checksums are right).
  write_file(dir_ / "ok.tle", good_tle);
  const auto f = scenario("tle_ok.yaml", replace(space_yaml, "  shells:\n    - {planes: 6, sats_per_plane: 8, altitude: 550km, inclination: 53deg, phasing: 1}\n",
                                                 "  tle: {file: " + (dir_ / "ok.tle").string() + "}\n"));
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  // A start a year from the epoch is warned about, by validate and run (also
  // with -q), and the run goes on.
  for (const auto& w : {satemu({"validate", f, "--set", "constellation.tle.start=2027-02-24T00:00:00Z"}),
                        satemu({"run", f, "-q", "--out", (dir_ / "far").string(), "--set",
                                "constellation.tle.start=2027-02-24T00:00:00Z"})}) {
    EXPECT_EQ(w.code, 0) << w.output;
    EXPECT_CONTAINS(w.output, "satemu: warning: constellation.tle.start: 2027-02-24T00:00:00.000Z is 365 days");
  }
  // The same object twice (files joined together) is warned about too.
  write_file(dir_ / "twice.tle", std::string(good_tle) + good_tle);
  auto twice = satemu({"validate", f, "--set",
                       "constellation.tle.file=" + (dir_ / "twice.tle").string()});
  EXPECT_EQ(twice.code, 0) << twice.output;
  EXPECT_CONTAINS(twice.output, "satemu: warning: constellation.tle.file: 1 catalog number has "
                                "more than one element set (first: 44714)");
}

TEST_F(cli_test, tle_with_wrong_checksum_names_tle_file_and_line) {
  // Line 2 of the set is line 3 of the file; its last column is the checksum.
  const auto tle = (dir_ / "bad.tle").string();
  write_file(tle, damaged_tle(3, 69, '5'));
  const auto text = replace(space_yaml, "  shells:\n    - {planes: 6, sats_per_plane: 8, altitude: 550km, inclination: 53deg, phasing: 1}\n",
                            "  tle: {file: " + tle + "}\n");
  const auto f = scenario("tle_sum.yaml", text);
  for (const auto& r : {satemu({"validate", f}), satemu({"run", f, "--out", (dir_ / "o").string()})}) {
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, tle + ":3:");
    EXPECT_CONTAINS(r.output, "checksum");
    EXPECT_CONTAINS(r.output, "constellation.tle.file");
    EXPECT_CONTAINS(r.output, f + ":" + std::to_string(line_of(text, "tle:")) + ":");
  }
  EXPECT_FALSE(fs::exists(dir_ / "o" / "summary.json"));
}

TEST_F(cli_test, tle_with_malformed_line_names_tle_file_and_line) {
  // A letter in the inclination field of line 2 (columns 9-16), checksum fixed up.
  const auto tle = (dir_ / "bad2.tle").string();
  std::string text = damaged_tle(3, 12, 'x');
  write_file(tle, text);
  const auto f = scenario("tle_bad.yaml",
                          replace(space_yaml, "  shells:\n    - {planes: 6, sats_per_plane: 8, altitude: 550km, inclination: 53deg, phasing: 1}\n",
                                  "  tle: {file: " + tle + "}\n"));
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, tle + ":3:");
  // Also through --set, as users point a scenario at their own file.
  write_file(dir_ / "short.tle", std::string(good_tle).substr(0, 100));
  auto r2 = satemu({"validate", f, "--set", "constellation.tle.file=" + (dir_ / "short.tle").string()});
  EXPECT_EQ(r2.code, 2) << r2.output;
  EXPECT_CONTAINS(r2.output, (dir_ / "short.tle").string() + ":3:");
  EXPECT_CONTAINS(r2.output, "--set constellation.tle.file=");
}

TEST_F(cli_test, missing_tle_file_is_bad_input_naming_it) {
  const auto f = scenario("tle_missing.yaml",
                          replace(space_yaml, "  shells:\n    - {planes: 6, sats_per_plane: 8, altitude: 550km, inclination: 53deg, phasing: 1}\n",
                                  "  tle: {file: nowhere.tle}\n"));
  auto r = satemu({"validate", f});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "nowhere.tle");
  EXPECT_CONTAINS(r.output, "constellation.tle.file");
}

TEST_F(cli_test, altitude_below_100km_names_file_line_and_key) {
  const auto text = replace(space_yaml, "altitude: 550km", "altitude: 90km");
  const auto f = scenario("alt.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "altitude: 90km"),
                  {"constellation.shells.0.altitude"});
}

TEST_F(cli_test, zero_planes_names_file_line_and_key) {
  const auto text = replace(space_yaml, "planes: 6", "planes: 0");
  const auto f = scenario("planes.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "planes: 0"),
                  {"constellation.shells.0.planes"});
}

TEST_F(cli_test, latitude_outside_range_names_file_line_and_key) {
  for (const char* lat : {"lat: 91", "lat: -90.5"}) {
    const auto text = replace(space_yaml, "lat: 30", lat);
    const auto f = scenario("lat.yaml", text);
    expect_bad_file(satemu({"validate", f}), f, line_of(text, lat), {"ground.stations.1.lat"});
  }
}

// A rule broken by a key's default is placed at the key given with it (by
// --set here), or at the map given, not at the file alone.
TEST_F(cli_test, an_error_about_a_default_points_at_the_key_that_was_given) {
  const auto f = scenario("s.yaml", small_yaml);
  expect_refused(satemu({"validate", f, "--set", "workload.topology=random_regular", "--set",
                         "workload.entities=2"}),
                 "satemu: error: --set workload.entities=2: workload.degree: 4 must be below "
                 "workload.entities 2");
  const auto sp = scenario("sp.yaml", space_yaml);
  expect_refused(satemu({"validate", sp, "--set", "constellation=null"}),
                 "satemu: error: --set constellation=null: constellation.shells: give at least one "
                 "shell");
}

TEST_F(cli_test, outage_of_unknown_satellite_names_the_outage) {
  const auto text = replace(space_yaml, "ground:\n",
                            "  outages: [{satellite: 48, from: 0s, to: 1s}]\nground:\n");
  const auto f = scenario("outage.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "outages:"),
                  {"constellation.outages.0.satellite", "satellite 48 does not exist"});
}

// A link queue smaller than one message drops every one: said before the
// run (one ping of 64 B filler is 168 B on the wire; a flow packet's size).
TEST_F(cli_test, a_queue_smaller_than_one_message_is_warned_about) {
  const auto f = scenario("q.yaml", space_yaml);
  auto r = satemu({"validate", f, "--set", "constellation.queue=167B"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: warning: constellation.queue: 167B is smaller than one ping "
                            "(168B on the wire): every ping is dropped at its first link");
  r = satemu({"validate", f, "--set", "constellation.queue=168B"});
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;
  r = satemu({"validate", f, "--set", "constellation.queue=1000B", "--set",
              "workload={kind: flows, flows: [{from: a, to: b, rate: 1Mbps, packet: 1500B}]}"});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "is smaller than one flow packet (1496B on the wire)");
}

// summary.json lists every ping pair up to 10,000 of them; beyond (pattern
// all over thousands of endpoints had made it hundreds of MB, and the run
// abort while building it) `pairs` is null, and the run says so.
TEST_F(cli_test, ping_pairs_are_listed_up_to_ten_thousand) {
  for (const int stations : {100, 101}) {
    std::string list;
    for (int i = 0; i < stations; ++i)
      list += "    - {name: s" + std::to_string(i) + ", lat: " + std::to_string(i % 60 - 30) +
              ", lon: " + std::to_string(i * 3 - 150) + "}\n";
    const auto text = replace(replace(space_yaml, "pattern: ring", "pattern: all, interval: 10s"),
                              "    - {name: a, lat: 10, lon: 20}\n    - {name: b, lat: 30, lon: 60}\n",
                              list);
    const auto f = scenario("all.yaml", text);
    const auto out = dir_ / ("all" + std::to_string(stations));
    auto r = satemu({"run", f, "-q", "--out", out.string(), "--set", "duration=100ms"});
    ASSERT_EQ(r.code, 0) << r.output;
    const auto j = read_json(out / "summary.json");
    const std::size_t pairs = static_cast<std::size_t>(stations) * (stations - 1);
    EXPECT_EQ(j["metrics"]["pings_sent"].get<std::size_t>(), pairs);
    if (pairs <= 10000) {
      EXPECT_EQ(j["metrics"]["pairs"].size(), pairs);
      EXPECT_EQ(r.output.find("metrics.pairs"), std::string::npos) << r.output;
    } else {
      EXPECT_TRUE(j["metrics"]["pairs"].is_null());
      EXPECT_CONTAINS(r.output, "satemu: warning: metrics.pairs is null: 10100 pairs are more "
                                "than the 10000 summary.json lists (rtt.csv has every ping)");
    }
  }
}

// --- Compute: bad models, devices and weight files exit 2 naming the key. ---

const char* const compute_yaml = R"(name: cp
seed: 1
duration: 1s
compute: {model: tiny, device: jetson-orin-nano}
constellation:
  shells:
    - {planes: 5, sats_per_plane: 19, altitude: 550km, inclination: 53deg, phasing: 1}
ground:
  users:
    - {name: nyc, lat: 40.71, lon: -74.01}
workload: {kind: skymemory, mode: emulated, servers: 5}
)";

TEST_F(cli_test, compute_section_with_good_names_and_weights_validates) {
  const auto w = (dir_ / "tiny.safetensors").string();
  ASSERT_TRUE(satemu::gpu::export_synthetic_model(w, *satemu::gpu::find_model("tiny"), 1,
                                                  satemu::gpu::safetensors_dtype::bf16)
                .ok());
  const auto f = scenario("c.yaml", compute_yaml);
  EXPECT_EQ(satemu({"validate", f}).code, 0);
  auto r = satemu({"validate", f, "--set", "compute.weights=" + w});
  EXPECT_EQ(r.code, 0) << r.output;
  // A workload that runs no model refuses the section rather than ignore it.
  const auto text = replace(compute_yaml, "workload: {kind: skymemory, mode: emulated, servers: 5}",
                            "workload: {kind: mesh, entities: 16}");
  const auto mesh = scenario("mesh.yaml", text);
  auto m = satemu({"validate", mesh});
  EXPECT_EQ(m.code, 2) << m.output;
  EXPECT_CONTAINS(m.output, "compute: workload kind 'mesh' runs no model and would ignore this "
                            "section (only skymemory reads it); remove it");
  EXPECT_CONTAINS(m.output, mesh + ":" + std::to_string(line_of(text, "compute:")));
  // So does a kind given through a merge key (it had stopped at yaml-cpp's
  // 'invalid node; first invalid key: "kind"').
  expect_refused(satemu({"validate", scenario("merged.yaml",
                                              replace(text, "{kind: mesh, entities: 16}",
                                                      "{<<: {kind: mesh, entities: 16}}"))}),
                 "compute: workload kind 'mesh' runs no model");
  // Said before the section's own keys are checked: without a model or a
  // device it had first asked for them.
  const auto bare = scenario(
    "bare.yaml", replace(text, "compute: {model: tiny, device: jetson-orin-nano}",
                         "compute: {backend: cpu}"));
  m = satemu({"validate", bare});
  EXPECT_EQ(m.code, 2) << m.output;
  EXPECT_CONTAINS(m.output, "compute: workload kind 'mesh' runs no model");
  EXPECT_EQ(m.output.find("missing required key"), std::string::npos) << m.output;
  // So does the mesh with the space segment's sections.
  for (const std::string section : {"constellation", "ground"})
    expect_refused(satemu({"validate", std::string(SATEMU_SOURCE_DIR) + "/scenarios/quickstart.yaml",
                           "--set", section + "={}"}),
                   section + ": workload kind 'mesh' runs on its own graph");
}

TEST_F(cli_test, unknown_model_device_or_backend_names_file_line_and_key) {
  const auto text = replace(compute_yaml, "model: tiny", "model: gpt-9");
  const auto f = scenario("m.yaml", text);
  expect_bad_file(satemu({"validate", f}), f, line_of(text, "model: gpt-9"),
                  {"compute.model", "gpt-9", "llama-3.2-1b"});
  const auto text2 = replace(compute_yaml, "device: jetson-orin-nano", "device: tpu-v9");
  const auto f2 = scenario("d.yaml", text2);
  expect_bad_file(satemu({"validate", f2}), f2, line_of(text2, "device: tpu-v9"),
                  {"compute.device", "tpu-v9", "jetson-nano"});
  // 'gpu' is one edit from 'cpu', but the backend it means is 'cuda'.
  const auto f3 = scenario("b.yaml", compute_yaml);
  auto b = satemu({"validate", f3, "--set", "compute.backend=gpu"});
  EXPECT_EQ(b.code, 2) << b.output;
  EXPECT_CONTAINS(b.output, "expected one of auto, cpu, cuda; got 'gpu' (did you mean 'cuda'?)");
  auto q = satemu({"quality", "--model", "tiny", "--backend", "gpu"});
  EXPECT_EQ(q.code, 2) << q.output;
  EXPECT_CONTAINS(q.output, "(the GPU backend is 'cuda')");
}

TEST_F(cli_test, truncated_or_malformed_weights_are_bad_input) {
  const auto good = (dir_ / "tiny.safetensors").string();
  const auto p = *satemu::gpu::find_model("tiny");
  ASSERT_TRUE(satemu::gpu::export_synthetic_model(good, p, 1, satemu::gpu::safetensors_dtype::f32).ok());
  const auto bytes = read_file(good);
  const auto cut = (dir_ / "cut.safetensors").string();
  write_file(cut, bytes.substr(0, bytes.size() - 100));
  const auto garbled = (dir_ / "garbled.safetensors").string();
  std::string g = bytes;
  g[8] = '#'; // the JSON header's opening brace
  write_file(garbled, g);
  const auto header_cut = (dir_ / "header-cut.safetensors").string();
  write_file(header_cut, bytes.substr(0, 20));
  const auto f = scenario("w.yaml", compute_yaml);
  // `run` refuses them as `validate` does, before running.
  for (const std::string command : {"validate", "run"})
  for (const auto& [file, what] : {std::pair{cut, std::string("truncated")},
                                   std::pair{garbled, std::string("JSON")},
                                   std::pair{header_cut, std::string("truncated")}}) {
    SCOPED_TRACE(command + " " + file);
    auto r = satemu({command, f, "--set", "compute.weights=" + file, "--set",
                     "output.dir=" + (dir_ / "w-out").string()});
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "compute.weights");
    EXPECT_CONTAINS(r.output, file);
    EXPECT_CONTAINS(r.output, what);
  }
  EXPECT_FALSE(fs::exists(dir_ / "w-out" / "summary.json"));
}

TEST_F(cli_test, weights_with_a_wrong_shape_are_bad_input_naming_the_tensor) {
  const auto p = *satemu::gpu::find_model("tiny");
  auto ts = *satemu::gpu::synthesize_layer(p, 0);
  auto globals = satemu::gpu::synthesize_globals(p);
  ts.insert(ts.end(), globals.begin(), globals.end());
  for (int l = 1; l < p.num_layers; ++l) {
    auto more = *satemu::gpu::synthesize_layer(p, l);
    ts.insert(ts.end(), more.begin(), more.end());
  }
  auto* q = const_cast<satemu::gpu::weight_tensor*>(
    satemu::gpu::find_tensor(ts, "model.layers.0.self_attn.k_proj.weight"));
  ASSERT_NE(q, nullptr);
  std::swap(q->shape[0], q->shape[1]);
  const auto bad = (dir_ / "transposed.safetensors").string();
  ASSERT_TRUE(satemu::gpu::write_safetensors_file(bad, ts, satemu::gpu::safetensors_dtype::f32).ok());
  const auto f = scenario("s.yaml", compute_yaml);
  auto r = satemu({"validate", f, "--set", "compute.weights=" + bad});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_CONTAINS(r.output, "expected [");
}

// `satemu quality`: per split and codec, the error of the restored
// activations and the bytes sent; per codec, the final logits against the
// uncompressed pass. Repeatable bit for bit; bad flags exit 2 naming them.
TEST_F(cli_test, quality_compares_codecs_at_split_points) {
  const auto out = (dir_ / "q.json").string();
  const std::vector<std::string> args = {"quality",    "--model",       "tiny-moe", "--split",
                                         "1,0",        "--compression", "int8,int4,none",
                                         "--tokens",   "20",            "--sequences", "2",
                                         "--backend",  "cpu",           "--threads", "1"};
  auto with_json = args;
  with_json.insert(with_json.end(), {"--json", out});
  auto r = satemu(with_json);
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "compression   split    rel_error");
  EXPECT_CONTAINS(r.output, "(final logits, 40 tokens)");
  const auto j = read_json(out);
  EXPECT_EQ(j["model"], "tiny-moe");
  EXPECT_EQ(j["weights"], "synthetic");
  ASSERT_EQ(j["codecs"].size(), 3u);
  const auto& i8 = j["codecs"][0];
  const auto& i4 = j["codecs"][1];
  const auto& none = j["codecs"][2];
  EXPECT_EQ(i8["compression"], "int8");
  ASSERT_EQ(i8["splits"].size(), 2u);
  for (std::size_t s = 0; s < 2; ++s) {
    const auto& x = i8["splits"][s];
    EXPECT_EQ(x["after_layer"], static_cast<int>(s)); // in layer order
    // 40 tokens of 64: a byte each and a 4-byte scale per token.
    EXPECT_EQ(x["wire_bytes"], 40 * (64 + 4));
    EXPECT_EQ(x["fp32_bytes"], 40 * 64 * 4);
    EXPECT_GT(x["relative_error"].get<double>(), 0.0);
    EXPECT_LT(x["relative_error"].get<double>(),
              i4["splits"][s]["relative_error"].get<double>());
  }
  EXPECT_EQ(i8["logits"]["rows"], 40);
  EXPECT_LT(i8["logits"]["mean_kl"].get<double>(), i4["logits"]["mean_kl"].get<double>());
  EXPECT_EQ(none["logits"]["mean_kl"].get<double>(), 0.0);
  EXPECT_EQ(none["logits"]["top1_agreement"].get<double>(), 1.0);
  EXPECT_EQ(none["splits"][0]["relative_error"].get<double>(), 0.0);
  // The same figures again, to the bit.
  auto again = satemu(args);
  ASSERT_EQ(again.code, 0) << again.output;
  const auto table = [](const std::string& text) {
    return text.substr(text.find("compression   split"));
  };
  EXPECT_EQ(table(again.output), table(r.output));
  EXPECT_EQ(r.output.find("warning"), std::string::npos) << r.output;

  // Top-k of half the hidden size or more saves nothing: said, then run.
  auto topk = satemu({"quality", "--model", "tiny", "--compression", "topk:31,topk:32,topk:100,topk:9223372036854775807",
                      "--tokens", "4", "--sequences", "1", "--backend", "cpu"});
  ASSERT_EQ(topk.code, 0) << topk.output;
  EXPECT_EQ(topk.output.find("topk:31 keeps"), std::string::npos) << topk.output;
  EXPECT_CONTAINS(topk.output, "satemu: warning: topk:32 keeps 32 of the 64 values of each of "
                               "tiny's tokens: at 8 bytes each (value and index) it sends as "
                               "many bytes as fp32");
  EXPECT_CONTAINS(topk.output, "topk:100 keeps 64 of the 64 values of each of tiny's tokens: at "
                               "8 bytes each (value and index) it sends more bytes than fp32");
  // A count near 2^63 too (twice it had overflowed).
  EXPECT_CONTAINS(topk.output, "topk:9223372036854775807 keeps 64 of the 64 values");

  for (const auto& [flag, value, message] :
       {std::tuple{"--model", "tiny-nope", "--model: unknown model 'tiny-nope'"},
        std::tuple{"--compression", "int3", "--compression: unknown compression 'int3'"},
        std::tuple{"--split", "2", "--split: '2' is not a layer of tiny (0 to 1)"},
        std::tuple{"--split", "", "--split: expected a list of layers, got an empty one"},
        std::tuple{"--split", "0,0", "--split: layer 0 is given twice"},
        std::tuple{"--compression", "fp16,topk:4,int8,topk:4",
                   "--compression: topk:4 is given twice"},
        std::tuple{"--json", "", "--json: expected a file name, got an empty one"},
        std::tuple{"--tokens", "5000", "--tokens: 5000 is more than tiny's context of 4096"},
        std::tuple{"--weights", "/nonexistent.safetensors", "--weights: safetensors"}}) {
    std::vector<std::string> bad = {"quality", "--model", "tiny", "--backend", "cpu"};
    if (std::string(flag) == "--model")
      bad[2] = value;
    else
      bad.insert(bad.end(), {flag, value});
    auto b = satemu(bad);
    EXPECT_EQ(b.code, 2) << flag << "\n" << b.output;
    EXPECT_CONTAINS(b.output, message);
  }
}

// Activations beyond fp16's range (+-65504) come back infinite: the figures
// are inf or nan, and quality says why (it printed them without a word).
TEST_F(cli_test, quality_says_when_a_codec_overflows) {
  const auto p = satemu::gpu::find_model("tiny");
  ASSERT_TRUE(p.ok());
  const auto synthetic = (dir_ / "tiny.safetensors").string();
  ASSERT_TRUE(
    satemu::gpu::export_synthetic_model(synthetic, *p, 0, satemu::gpu::safetensors_dtype::f32)
      .ok());
  auto file = satemu::gpu::safetensors_file::open(synthetic);
  ASSERT_TRUE(file.ok()) << file.status();
  auto w = satemu::gpu::load_model_weights(*file, *p);
  ASSERT_TRUE(w.ok()) << w.status();
  for (auto& t : *w)
    if (t.name == "model.embed_tokens.weight")
      for (auto& v : t.data)
        v *= 1e6f; // the residual stream far past 65504
  const auto big = (dir_ / "big.safetensors").string();
  ASSERT_TRUE(
    satemu::gpu::write_safetensors_file(big, *w, satemu::gpu::safetensors_dtype::f32).ok());
  auto r = satemu({"quality", "--model", "tiny", "--weights", big, "--compression", "fp16,int8",
                   "--tokens", "8", "--backend", "cpu"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "satemu: warning: fp16: some figures are not finite");
  EXPECT_EQ(r.output.find("warning: int8"), std::string::npos) << r.output;
}

TEST_F(cli_test, calibrate_times_kernels_and_fits_a_roofline) {
#if defined(__SANITIZE_THREAD__)
  // Instrumented loops run many times slower than the uninstrumented
  // OpenBLAS, so the timings have no roofline shape to fit.
  GTEST_SKIP() << "kernel timings under ThreadSanitizer do not fit a roofline";
#endif
  const auto out = (dir_ / "cal.json").string();
  auto r = satemu({"calibrate", "--quick", "--json", out});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "fitted roofline");
  EXPECT_CONTAINS(r.output, "device_override");
  const auto j = read_json(out);
  EXPECT_EQ(j["backend"], "cpu");
  EXPECT_GE(j["samples"].size(), 6u);
  EXPECT_GT(j["fit"]["peak_flops"].get<double>(), 1e8);
  EXPECT_GT(j["fit"]["memory_bytes_per_s"].get<double>(), 1e8);
  for (const auto& s : j["samples"])
    EXPECT_GT(s["seconds"].get<double>(), 0.0) << s;
  EXPECT_EQ(j["precision"], "fp32");
  EXPECT_CONTAINS(r.output, "on 1 thread");
  // The printed keys go into a scenario's compute section as they stand,
  // and the printed --set flags onto a command line; without such figures
  // the configurable device is refused.
  auto printed = [&](const std::string& prefix) {
    const auto begin = r.output.find("\n" + prefix);
    EXPECT_NE(begin, std::string::npos) << prefix << " not in\n" << r.output;
    if (begin == std::string::npos)
      return std::string();
    const auto from = begin + 1 + prefix.size();
    return r.output.substr(from, r.output.find('\n', from) - from);
  };
  const std::string values = printed("  device_override: ");
  const auto pasted = scenario(
    "cal.yaml", replace(compute_yaml, "compute: {model: tiny, device: jetson-orin-nano}",
                        "compute:\n  model: tiny\n  device: sat-payload\n  device_override: " +
                          values));
  EXPECT_CONTAINS(r.output, "\n  device: sat-payload\n  device_override: " + values + "\n");
  auto ok = satemu({"validate", pasted});
  EXPECT_EQ(ok.code, 0) << values << "\n" << ok.output;
  const std::string flags = printed("  --set compute.device=sat-payload --set ");
  ASSERT_EQ(flags, "'compute.device_override=" + values + "'");
  const auto plain = scenario("plain.yaml", compute_yaml);
  auto set = satemu({"validate", plain, "--set", "compute.device=sat-payload", "--set",
                     flags.substr(1, flags.size() - 2)});
  EXPECT_EQ(set.code, 0) << flags << "\n" << set.output;
  const auto bare = scenario("bare.yaml", replace(compute_yaml, "device: jetson-orin-nano",
                                                  "device: sat-payload"));
  EXPECT_EQ(satemu({"validate", bare}).code, 2);
  auto bad = satemu({"calibrate", "--backend", "tpu"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_CONTAINS(bad.output, "tpu");
  // The cuda backend on a host without a device is bad input, named.
  if (!satemu::gpu::probe_devices().cuda_built || satemu::gpu::probe_devices().cuda_devices == 0) {
    auto cuda = satemu({"calibrate", "--backend", "cuda", "--quick"});
    EXPECT_EQ(cuda.code, 2) << cuda.output;
    EXPECT_CONTAINS(cuda.output, "compute backend 'cuda'");
    auto sky = satemu({"validate", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                       "--set", "compute.mode=real", "--set", "compute.backend=cuda"});
    EXPECT_EQ(sky.code, 2) << sky.output;
    EXPECT_CONTAINS(sky.output, "compute.backend");
  }
  // A --json file that cannot be written is refused before any timing.
  for (const auto& [json, why] : {std::pair{dir_.string(), "is a directory"},
                                  std::pair{(dir_ / "none" / "c.json").string(), "cannot create"}}) {
    auto nowhere = satemu({"calibrate", "--quick", "--json", json});
    EXPECT_EQ(nowhere.code, 2) << nowhere.output;
    EXPECT_CONTAINS(nowhere.output, "--json " + json + ": " + why);
    EXPECT_EQ(nowhere.output.find("calibrating"), std::string::npos) << nowhere.output;
  }
  auto threads = satemu({"calibrate", "--threads", "-1"});
  EXPECT_EQ(threads.code, 2) << threads.output;
  EXPECT_CONTAINS(threads.output, "--threads");
  auto empty = satemu({"calibrate", "--quick", "--json", ""});
  EXPECT_EQ(empty.code, 2) << empty.output;
  EXPECT_CONTAINS(empty.output, "--json: expected a file name, got an empty one");
}

// --json /dev/stdout goes after the printed table, into a pipe or into the
// file the shell redirected stdout to (it failed on a pipe, and replaced
// the file, table and all).
TEST_F(cli_test, json_to_stdout_follows_the_table_in_a_pipe_or_a_file) {
  const auto out = dir_ / "q.txt";
  for (const std::string& tail : {" | cat > " + out.string(), " > " + out.string()}) {
    const std::string cmd = std::string("bash -c 'set -o pipefail; ") + SATEMU_BINARY +
                            " quality --model tiny --tokens 8 --compression int8 --json "
                            "/dev/stdout 2>/dev/null" +
                            tail + "'";
    const int status = std::system(cmd.c_str());
    ASSERT_TRUE(WIFEXITED(status)) << tail;
    EXPECT_EQ(WEXITSTATUS(status), 0) << tail;
    const auto text = read_file(out);
    const auto table = text.find("compression   split");
    const auto json = text.find("\n{\n");
    EXPECT_NE(table, std::string::npos) << tail << "\n" << text;
    EXPECT_NE(json, std::string::npos) << tail << "\n" << text;
    EXPECT_LT(table, json) << tail;
    EXPECT_CONTAINS(text, "\"relative_error\"");
  }
}

// ---------------------------------------------------------------------------
namespace {

// `satemu sweep`: the analytic SkyMemory model.

const std::string skymemory_file =
  std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-sweeps.yaml";

/// A small analytic scenario: 5x5 grid, one sweep over the servers.
const char* const sky_yaml = R"(name: sky
workload:
  kind: skymemory
  mode: analytic
  planes: 5
  sats_per_plane: 5
  center_plane: 3
  center_satellite: 3
  altitude: 550km
  kv_size: 11500B
  chunk_size: 1000B
  servers: 9
  chunk_time: 10ms
  sweeps:
    servers:
      values: [1, 4, 9]
)";

std::vector<std::vector<std::string>> csv_rows(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::istringstream ls(line);
    std::string cell;
    while (std::getline(ls, cell, ','))
      cells.push_back(cell);
    rows.push_back(std::move(cells));
  }
  return rows;
}

TEST_F(cli_test, sweep_writes_every_table_and_plot_and_matches_the_reference_model) {
  const auto out = dir_ / "sweeps";
  auto r = satemu({"sweep", skymemory_file, "--out", out.string()});
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* f : {"summary.json", "scenario.resolved.yaml", "servers.csv"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
    EXPECT_CONTAINS(r.output, (out / f).string());
  }
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  namespace ref = satemu::testing::skymemory_ref;
  const std::pair<const char*, std::size_t> sweeps[] = {
    {"kv_size", 21}, {"servers", 4}, {"chunk_time", 10}, {"altitude", 9}};
  std::size_t checked = 0;
  for (const auto& [name, points] : sweeps) {
    const auto csv = out / (std::string("sweep_") + name + ".csv");
    const auto svg = out / (std::string("sweep_") + name + ".svg");
    ASSERT_TRUE(fs::exists(csv)) << csv;
    ASSERT_TRUE(fs::exists(svg)) << svg;
    EXPECT_CONTAINS(r.output, csv.string());
    EXPECT_CONTAINS(r.output, svg.string());
    const auto rows = csv_rows(read_file(csv));
    // A header, then one row per point and strategy.
    ASSERT_EQ(rows.size(), 1 + 3 * points) << name;
    ASSERT_EQ(rows[0].size(), 15u);
    EXPECT_EQ(rows[0][7], "fetch_s");
    for (std::size_t i = 1; i < rows.size(); ++i) {
      const auto& c = rows[i];
      ASSERT_EQ(c.size(), 15u) << name << " row " << i;
      ref::point p; // 15x15, user under (8, 8)
      p.kv_bytes = std::stoull(c[1]);
      p.chunk_bytes = std::stoull(c[2]);
      p.servers = std::stoi(c[3]);
      p.chunk_s = std::stod(c[4]) * 1e-3;
      p.altitude_m = std::stod(c[5]) * 1e3;
      const auto want = ref::evaluate(p, c[0]);
      EXPECT_EQ(std::stoull(c[6]), want.chunks) << name << " row " << i;
      EXPECT_NEAR(std::stod(c[7]), want.fetch_s, 1e-9) << name << " row " << i;
      EXPECT_NEAR(std::stod(c[8]), want.min_s, 1e-9) << name << " row " << i;
      EXPECT_NEAR(std::stod(c[9]), want.mean_s, 1e-9) << name << " row " << i;
      EXPECT_NEAR(std::stod(c[10]), want.std_s, 1e-9) << name << " row " << i;
      EXPECT_EQ(std::stoull(c[13]), want.migration_chunks) << name << " row " << i;
      EXPECT_EQ(std::stoull(c[14]), want.migration_bytes) << name << " row " << i;
      ++checked;
    }
    // Strategies take turns within a point.
    EXPECT_EQ(rows[1][0], "rotation");
    EXPECT_EQ(rows[2][0], "hop");
    EXPECT_EQ(rows[3][0], "hop_rotation");
    const auto plot = read_file(svg);
    EXPECT_EQ(plot.rfind("<?xml", 0), 0u);
    EXPECT_CONTAINS(plot, "</svg>");
    EXPECT_CONTAINS(plot, ">hop_rotation<");
    EXPECT_CONTAINS(plot, "fetch time [s]");
    EXPECT_EQ(std::count(plot.begin(), plot.end(), '\n') > 20, true);
  }
  EXPECT_EQ(checked, 132u);
  const auto j = read_json(out / "summary.json");
  EXPECT_EQ(j["complete"], true);
  EXPECT_EQ(j["mode"], "analytic");
  EXPECT_EQ(j["sweeps"].size(), 4u);
  EXPECT_EQ(j["point"]["center_plane"], 8);
  for (const char* s : {"rotation", "hop", "hop_rotation"}) {
    const auto want = ref::evaluate(ref::point{}, s);
    EXPECT_NEAR(j["metrics"][s]["fetch_s"].get<double>(), want.fetch_s, 1e-9) << s;
    EXPECT_EQ(j["metrics"][s]["chunks"].get<std::uint64_t>(), 1792u) << s;
  }
  // servers.csv: 81 servers per strategy.
  EXPECT_EQ(csv_rows(read_file(out / "servers.csv")).size(), 1 + 3 * 81u);
  EXPECT_CONTAINS(read_file(out / "scenario.resolved.yaml"), "dir: " + out.string());
}

// A sweep file that cannot be written (an 8 KiB file size limit: servers.csv
// and one plot are larger) costs only itself: the others are kept as
// partial with a partial summary naming it (only the resolved file was).
TEST_F(cli_test, sweep_keeps_what_it_could_write_when_a_file_cannot_be) {
  const auto out = dir_ / "sweep-limited";
  const auto log = dir_ / "sweep-limited.txt";
  const std::string cmd = std::string("bash -c \"trap '' XFSZ; ulimit -f 8; exec ") +
                          SATEMU_BINARY + " sweep " + skymemory_file + " -q --out " +
                          out.string() + "\" > " + log.string() + " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 1) << read_file(log);
  EXPECT_CONTAINS(read_file(log), "are PARTIAL (summary.partial.json)");
  const auto j = read_json(out / "summary.partial.json");
  EXPECT_EQ(j["complete"], false);
  EXPECT_CONTAINS(j["error"].get<std::string>(), "servers.csv.tmp': File too large");
  EXPECT_EQ(j["unwritten_files"][0], "servers.csv");
  EXPECT_TRUE(fs::exists(out / "sweep_servers.partial.csv"));
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

TEST_F(cli_test, sweep_default_output_dir_and_overrides) {
  const auto f = scenario("sky.yaml", sky_yaml);
  auto r = satemu({"sweep", f, "-q", "--set", "workload.chunk_time=20ms"});
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(r.output.find("[satemu]"), std::string::npos) << r.output;
  const auto out = dir_ / "out" / "sky";
  ASSERT_TRUE(fs::exists(out / "sweep_servers.csv"));
  EXPECT_FALSE(fs::exists(out / "sweep_kv_size.csv")); // only the sweeps given
  const auto rows = csv_rows(read_file(out / "sweep_servers.csv"));
  ASSERT_EQ(rows.size(), 1 + 3 * 3u);
  EXPECT_EQ(rows[7][3], "9");
  EXPECT_EQ(rows[7][4], "20");
  // 12 chunks on 1 server: the centre (rotation), 550 km up, 12 x 20 ms.
  EXPECT_EQ(rows[1][3], "1");
  EXPECT_NEAR(std::stod(rows[1][7]), 550e3 / 2.998e8 + 0.240, 1e-9);
  EXPECT_CONTAINS(read_file(out / "scenario.resolved.yaml"), "chunk_time: 20ms");
}

// As for run (sweep wrote its tables into out/.., the current directory).
TEST_F(cli_test, sweep_refuses_a_name_that_cannot_name_the_output_directory) {
  const auto sky = scenario("sky.yaml", replace(sky_yaml, "name: sky", "name: .."));
  auto r = satemu({"sweep", sky, "-q"});
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_CONTAINS(r.output, sky + ":1:7: name: ");
  EXPECT_FALSE(fs::exists(dir_ / "summary.json"));
}

TEST_F(cli_test, validate_accepts_the_shipped_sweeps) {
  auto r = satemu({"validate", skymemory_file});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_CONTAINS(r.output, "ok");
  EXPECT_CONTAINS(r.output, "4 sweeps, 44 points");
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(cli_test, sweep_bad_key_names_file_line_and_key) {
  const auto text = replace(sky_yaml, "      values: [1, 4, 9]", "      valeus: [1, 4, 9]");
  const auto f = scenario("typo.yaml", text);
  const auto out = (dir_ / "o").string();
  const int line = line_of(text, "valeus");
  expect_bad_file(satemu({"sweep", f, "--out", out}), f, line,
                  {"workload.sweeps.servers.valeus", "values"});
  expect_bad_file(satemu({"validate", f}), f, line, {"workload.sweeps.servers.valeus"});
  EXPECT_FALSE(fs::exists(out));
  const auto unit = replace(sky_yaml, "altitude: 550km", "altitude: 550kg");
  const auto fu = scenario("unit.yaml", unit);
  expect_bad_file(satemu({"sweep", fu, "--out", out}), fu, line_of(unit, "altitude:"),
                  {"workload.altitude", "kg"});
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(cli_test, sweep_values_wrong_together_name_file_line_and_key) {
  const auto out = (dir_ / "o").string();
  const auto centre = replace(sky_yaml, "center_plane: 3", "center_plane: 6");
  const auto f = scenario("centre.yaml", centre);
  expect_bad_file(satemu({"sweep", f, "--out", out}), f, line_of(centre, "center_plane: 6"),
                  {"workload.center_plane", "1..5"});
  const auto many = replace(sky_yaml, "values: [1, 4, 9]", "values: [1, 4, 26]");
  const auto f2 = scenario("many.yaml", many);
  for (const auto& args : {std::vector<std::string>{"sweep", f2, "--out", out},
                           std::vector<std::string>{"validate", f2}})
    expect_bad_file(satemu(args), f2, line_of(many, "values: [1, 4, 26]"),
                    {"workload.sweeps.servers.values.2", "5x5", "25"});
  EXPECT_FALSE(fs::exists(out));
}

TEST_F(cli_test, sweep_of_emulated_skymemory_points_to_run) {
  const auto text = replace(sky_yaml, "mode: analytic", "mode: emulated");
  const auto f = scenario("emu.yaml", text);
  expect_bad_file(satemu({"sweep", f}), f, line_of(text, "mode: emulated"),
                  {"workload.mode", "satemu run"});
  // Without a constellation there is nothing to emulate on.
  for (const auto& cmd : {"validate", "run"}) {
    auto r = satemu({cmd, f});
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_CONTAINS(r.output, "constellation");
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(cli_test, run_on_an_analytic_scenario_points_to_sweep) {
  const auto f = scenario("sky.yaml", sky_yaml);
  auto r = satemu({"run", f, "--out", (dir_ / "o").string()});
  expect_bad_file(r, f, line_of(sky_yaml, "mode: analytic"), {"workload.mode", "satemu sweep"});
  EXPECT_FALSE(fs::exists(dir_ / "o"));
}

// Emulated SkyMemory with `compute.mode=real`: the GPU worker runs the
// users' prefill (tiny model, CPU backend); summary.json counts the compute
// requests and their batches.
TEST_F(cli_test, run_skymemory_with_real_compute_reports_compute_figures) {
  const auto out = dir_ / "sky-real";
  auto r = satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                   "--out", out.string(), "--set", "duration=20s", "--set", "compute.mode=real",
                   "--set", "compute.model=tiny", "--set", "compute.backend=cpu"});
  ASSERT_EQ(r.code, 0) << r.output;
  // Making the weights, the long step of a large model, is announced first,
  // after the backend that computes.
  EXPECT_CONTAINS(r.output, "[satemu] compute backend: cpu (compute.backend)\n[satemu] making");
  EXPECT_CONTAINS(r.output, "[satemu] making tiny's weights (synthetic, ");
  EXPECT_CONTAINS(r.output, "[satemu] weights made in ");
  EXPECT_LT(r.output.find("weights made in"), r.output.find("entities,")) << r.output;
  const auto j = read_json(out / "summary.json");
  const auto finished = j["metrics"]["requests_finished"].get<std::uint64_t>();
  ASSERT_GT(finished, 3u);
  // Two layers and the LM head (timed, not run) each.
  EXPECT_EQ(j["compute"]["requests"].get<std::uint64_t>(), 3 * finished);
  EXPECT_GE(j["compute"]["batches"].get<std::uint64_t>(), 1u);
  EXPECT_EQ(j["metrics"]["backend"], "cpu");
  EXPECT_EQ(j["metrics"]["compute_errors"], 0);
  // `auto` says what it chose and why (cpu here, cuda on a GPU machine).
  auto a = satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                   "--out", (dir_ / "sky-auto").string(), "--set", "duration=2s", "--set",
                   "compute.mode=real", "--set", "compute.model=tiny", "--set",
                   "compute.backend=auto"});
  ASSERT_EQ(a.code, 0) << a.output;
  const auto chosen = read_json(dir_ / "sky-auto" / "summary.json")["metrics"]["backend"];
  EXPECT_CONTAINS(a.output, "[satemu] compute backend: " + chosen.get<std::string>() + " (");
  // A key of the analytic model is refused in emulated mode, not ignored.
  auto k = satemu({"validate", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                   "--set", "workload.kv_size=1MiB"});
  EXPECT_EQ(k.code, 2) << k.output;
  EXPECT_CONTAINS(k.output, "workload.kv_size");
  EXPECT_CONTAINS(k.output, "analytic");
  // Qwen-MoE layers run too (q/k/v biases, a gated shared expert).
  const std::string sky = std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml";
  const auto qwen_out = dir_ / "sky-qwen";
  auto q = satemu({"run", sky, "-q", "--out", qwen_out.string(), "--set", "duration=10s",
                   "--set", "compute.mode=real", "--set", "compute.model=tiny-qwen-moe",
                   "--set", "compute.backend=cpu", "--set", "compute.threads=2"});
  ASSERT_EQ(q.code, 0) << q.output;
  const auto qj = read_json(qwen_out / "summary.json");
  EXPECT_GT(qj["compute"]["requests"].get<std::uint64_t>(), 0u);
  EXPECT_EQ(qj["metrics"]["compute_errors"], 0);
  auto threads = satemu({"validate", sky, "--set", "compute.threads=-1"});
  EXPECT_EQ(threads.code, 2) << threads.output;
  EXPECT_CONTAINS(threads.output, "compute.threads");
  // A model whose weights do not fit the memory limit is refused before any
  // is made.
  auto big = satemu({"validate", sky, "--set", "compute.mode=real", "--set",
                     "compute.memory_limit=1MB"});
  EXPECT_EQ(big.code, 2) << big.output;
  EXPECT_CONTAINS(big.output, "llama-3.2-1b's weights take 4.94 GB");
  EXPECT_CONTAINS(big.output, "the 1MB of compute.memory_limit");
  EXPECT_CONTAINS(big.output, "--set compute.memory_limit=1MB");
  EXPECT_CONTAINS(big.output, "compute.memory_limit");
  EXPECT_CONTAINS(big.output, "compute.mode: modeled");
  // A modeled run has no compute requests and no compute figures.
  auto m = satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml", "-q",
                   "--out", (dir_ / "sky-modeled").string(), "--set", "duration=5s"});
  ASSERT_EQ(m.code, 0) << m.output;
  const auto mj = read_json(dir_ / "sky-modeled" / "summary.json");
  EXPECT_FALSE(mj.contains("compute"));
  // Its resolved scenario, which writes out the analytic keys' defaults too,
  // runs again to the same events.
  auto again = satemu({"run", (dir_ / "sky-modeled" / "scenario.resolved.yaml").string(), "-q",
                       "--out", (dir_ / "sky-again").string()});
  ASSERT_EQ(again.code, 0) << again.output;
  EXPECT_EQ(read_json(dir_ / "sky-again" / "summary.json")["fingerprint"], mj["fingerprint"]);
}

// Real time: compute.max_batch and compute.batch_window reach the GPU
// worker. With a window longer than the run, every batch waits for its
// second request (the default window of 1 ms runs these requests, seconds
// apart, one by one).
TEST_F(cli_test, realtime_compute_batches_follow_max_batch_and_batch_window) {
  const auto out = dir_ / "sky-rt";
  // Two users whose prompts come at the same times (a device runs one
  // prompt at a time, so one user alone never has two requests waiting).
  auto r = satemu({"run", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                   "-q", "--out", out.string(), "--set", "clock.mode=realtime", "--set",
                   "clock.dilation=0.2", "--set", "duration=5s", "--set", "compute.mode=real",
                   "--set", "compute.model=tiny", "--set", "compute.backend=cpu", "--set",
                   "compute.max_batch=2", "--set", "compute.batch_window=60s", "--set",
                   "ground.users=[{name: nyc, lat: 40.71, lon: -74.01}, "
                   "{name: bos, lat: 42.36, lon: -71.06}]"});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = read_json(out / "summary.json");
  ASSERT_TRUE(j.contains("compute")) << j.dump(2);
  const auto batches = j["compute"]["batches"].get<std::uint64_t>();
  EXPECT_GT(batches, 0u);
  EXPECT_EQ(j["compute"]["requests"].get<std::uint64_t>(), 2 * batches);
  // A batch of nothing is refused.
  auto bad = satemu({"validate", std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml",
                     "--set", "compute.max_batch=0"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_CONTAINS(bad.output, "compute.max_batch");
}

TEST_F(cli_test, run_skymemory_with_the_model_on_a_satellite) {
  const auto scen = std::string(SATEMU_SOURCE_DIR) + "/scenarios/skymemory-19x5.yaml";
  const auto out = dir_ / "sky-sat";
  auto r = satemu({"run", scen, "-q", "--out", out.string(), "--set", "duration=30s", "--set",
                   "compute.at=satellite"});
  ASSERT_EQ(r.code, 0) << r.output;
  const auto j = read_json(out / "summary.json");
  EXPECT_EQ(j["metrics"]["model_at"], "satellite");
  EXPECT_GT(j["metrics"]["requests_finished"].get<std::uint64_t>(), 3u);
  EXPECT_GT(j["metrics"]["uplink_ms"]["p50"].get<double>(), 1.8);
  EXPECT_GT(j["metrics"]["token_hit_rate"].get<double>(), 0.0);
  EXPECT_CONTAINS(read_file(out / "requests.csv"), "uplink_ms,downlink_ms");
  // A bad placement, and a key that only a model on a satellite uses, are
  // named.
  auto bad = satemu({"validate", scen, "--set", "compute.at=orbit"});
  EXPECT_EQ(bad.code, 2) << bad.output;
  EXPECT_CONTAINS(bad.output, "compute.at");
  auto k = satemu({"validate", scen, "--set", "workload.answer_timeout=5s"});
  EXPECT_EQ(k.code, 2) << k.output;
  EXPECT_CONTAINS(k.output, "workload.answer_timeout");
}

TEST_F(cli_test, sweep_of_an_emulated_workload_is_bad_input) {
  const auto f = scenario("s.yaml", small_yaml);
  auto r = satemu({"sweep", f});
  expect_bad_file(r, f, line_of(small_yaml, "kind: mesh"), {"workload.kind", "satemu run"});
  auto h = satemu({"sweep", "--help"});
  EXPECT_EQ(h.code, 0) << h.output;
  EXPECT_CONTAINS(h.output, "--out");
  EXPECT_CONTAINS(h.output, "--set");
  EXPECT_CONTAINS(h.output, "kv_size");
  auto top = satemu({"--help"});
  EXPECT_CONTAINS(top.output, "sweep");
}

} // namespace
