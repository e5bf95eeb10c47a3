// `satemu run --workers` against `satemu worker` processes on 127.0.0.1:
// the mesh quickstart and two space scenarios give the single-process
// fingerprint, metrics and files; a worker killed in the middle of a run
// fails the coordinator within 10 s naming it, with partial outputs; a
// coordinator with the wrong secret is refused and the worker then serves
// the right one; a worker listed twice under two names is refused at once;
// Ctrl-C while a worker is stopped ends the run at once; flag errors exit 2. The same over mutual TLS: the mesh
// quickstart gives the single-process fingerprint, and a coordinator without
// TLS or with another CA's certificate fails naming the worker, which then
// serves a correct one. Ports are chosen by the OS and every wait has a
// deadline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "nlohmann/json.hpp"
#include "process.hpp"
#include "tests/tls_certs.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using satemu::testing::decode_status;

using satemu::testing::read_file;

using satemu::testing::wait_exit;

std::string scenario(const std::string& name) {
  return std::string(SATEMU_SOURCE_DIR) + "/scenarios/" + name;
}

/// summary.json without what may differ between runs of the same scenario:
/// wall-clock figures, the process's memory and threads, the per-node
/// figures, the output directory.
nlohmann::json comparable(nlohmann::json j) {
  for (const char* k : {"wall_seconds", "events_per_wall_second", "envelopes_per_wall_second",
                        "peak_rss_bytes", "memory_per_entity_bytes", "threads", "nodes",
                        "distributed"})
    j.erase(k);
  if (j.contains("metrics"))
    for (auto it = j["metrics"].begin(); it != j["metrics"].end();) {
      if (it.key().find("per_wall_second") != std::string::npos)
        it = j["metrics"].erase(it);
      else
        ++it;
    }
  // Each node's GPU worker batches its own entities' requests: the requests
  // are the same, the batches per node add up.
  if (j.contains("compute"))
    j["compute"].erase("batches");
  return j;
}

class distributed_test : public ::testing::Test {
protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / (std::string("satemu_dist_") + info->name() + "_" +
                                        std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    secret_file_ = write("secret", "the run's shared secret, 32 bytes+\n");
  }

  void TearDown() override {
    for (auto& w : workers_)
      if (w.pid > 0 && wait_exit(w.pid, 0ms) < 0) {
        kill(w.pid, SIGKILL);
        waitpid(w.pid, nullptr, 0);
      }
    if (HasFailure())
      for (auto& w : workers_)
        std::printf("worker log %s:\n%s\n", w.log.c_str(), read_file(w.log).c_str());
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write(const std::string& name, const std::string& content) {
    const auto p = dir_ / name;
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    chmod(p.c_str(), 0600);
    return p.string();
  }

  struct worker {
    pid_t pid = -1;
    fs::path log;
    std::string address;
  };

  /// Starts `n` workers and waits (at most 20 s each) for their ports.
  /// `extra` flags go to every worker (e.g. TLS).
  void start_workers(int n, const std::string& secret_file,
                     const std::vector<std::string>& extra = {}, const fs::path& cwd = {}) {
    for (int i = 0; i < n; ++i) {
      worker w;
      w.log = dir_ / ("worker" + std::to_string(workers_.size()) + ".log");
      std::vector<std::string> args{"worker",        "--listen", "127.0.0.1:0",
                                    "--secret-file", secret_file, "--threads", "1"};
      args.insert(args.end(), extra.begin(), extra.end());
      w.pid = satemu::testing::spawn_satemu(args, cwd, w.log);
      ASSERT_GT(w.pid, 0);
      workers_.push_back(w);
    }
    const std::regex listening(R"(satemu worker listening on (127\.0\.0\.1:\d+))");
    for (auto& w : workers_) {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (w.address.empty()) {
        std::smatch m;
        const auto text = read_file(w.log);
        if (std::regex_search(text, m, listening))
          w.address = m[1];
        else if (std::chrono::steady_clock::now() > deadline)
          FAIL() << "worker did not report its port:\n" << text;
        else
          std::this_thread::sleep_for(10ms);
      }
    }
  }

  /// Waits up to `limit` for `w` to exit and returns its exit code; -1
  /// while it still runs (TearDown then kills it).
  int reap(worker& w, std::chrono::milliseconds limit) {
    const int code = wait_exit(w.pid, limit);
    if (code != -1)
      w.pid = -1;
    return code;
  }

  /// Expects the first worker, after a refused run, to be still waiting,
  /// and to serve the next run and then exit 0.
  void expect_the_first_worker_still_serves() {
    EXPECT_EQ(wait_exit(workers_[0].pid, 0ms), -1) << "the worker was used up:\n"
                                                    << read_file(workers_[0].log);
    auto r = run({"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "good").string(),
                  "--set", "duration=200ms", "--workers", worker_list(), "--secret-file",
                  secret_file_},
                 "good");
    EXPECT_EQ(r.code, 0) << r.output;
    EXPECT_EQ(reap(workers_[0], 20s), 0);
  }

  /// Runs starlink-tle for 1 s over every worker, from `cwd` (the
  /// coordinator's directory), its TLE file named by the relative path
  /// sats.tle; the log is `name`.log.
  auto run_tle_from(const fs::path& cwd, const std::string& name) {
    return run({"run", scenario("starlink-tle.yaml"), "--quiet", "--out", (dir_ / "o").string(),
                "--set", "duration=1s", "--set", "constellation.tle.file=sats.tle", "--workers",
                worker_list(), "--secret-file", secret_file_},
               name, 300s, cwd);
  }

  /// Runs quickstart over `workers` with its output in out/ and its log in
  /// coordinator.log; once the log shows `ready` (within 20 s), and `settle`
  /// later, sends Ctrl-C and waits up to `limit` for the exit. Returns the
  /// exit code (-1: still running, then killed) and the log.
  std::pair<int, std::string> interrupt_coordinator(const std::string& workers,
                                                    const std::string& ready,
                                                    std::chrono::milliseconds settle,
                                                    std::chrono::milliseconds limit) {
    const auto log = dir_ / "coordinator.log";
    const pid_t pid = satemu::testing::spawn_satemu(
      {"run", scenario("quickstart.yaml"), "--out", (dir_ / "out").string(), "--workers", workers,
       "--secret-file", secret_file_},
      {}, log);
    if (pid <= 0) {
      ADD_FAILURE() << "cannot start the coordinator";
      return {-1, ""};
    }
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (read_file(log).find(ready) == std::string::npos &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(settle);
    if (const int early = wait_exit(pid, 0ms); early != -1) {
      ADD_FAILURE() << "the coordinator exited (" << early << ") before Ctrl-C";
      return {early, read_file(log)};
    }
    kill(pid, SIGINT);
    const int code = wait_exit(pid, limit);
    if (code < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    return {code, read_file(log)};
  }

  std::string worker_list() const {
    std::string s;
    for (const auto& w : workers_)
      s += (s.empty() ? "" : ",") + w.address;
    return s;
  }

  struct result {
    int code = -1;
    std::string output;
    double seconds = 0;
  };

  /// Runs `satemu args...` to completion (at most `limit`).
  result run(const std::vector<std::string>& args, const std::string& name,
             std::chrono::milliseconds limit = 300s, const fs::path& cwd = {}) {
    const auto log = dir_ / (name + ".log");
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = satemu::testing::spawn_satemu(args, cwd, log);
    result r;
    r.code = wait_exit(pid, limit);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r.code < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    r.output = read_file(log);
    return r;
  }

  /// Runs `file` in one process and over `n` workers and checks that the
  /// summaries and every other output file agree; returns the distributed
  /// summary.
  nlohmann::json same_as_single_process(const std::string& file, int n,
                                        const std::vector<std::string>& sets,
                                        const std::vector<std::string>& worker_tls = {},
                                        const std::vector<std::string>& coord_tls = {}) {
    std::vector<std::string> single{"run", file, "--quiet", "--out", (dir_ / "single").string()};
    std::vector<std::string> dist{"run",   file,         "--quiet", "--out", (dir_ / "dist").string(),
                                  "--secret-file", secret_file_};
    for (const auto& s : sets) {
      single.insert(single.end(), {"--set", s});
      dist.insert(dist.end(), {"--set", s});
    }
    auto r1 = run(single, "single");
    EXPECT_EQ(r1.code, 0) << r1.output;
    start_workers(n, secret_file_, worker_tls);
    dist.insert(dist.end(), {"--workers", worker_list()});
    dist.insert(dist.end(), coord_tls.begin(), coord_tls.end());
    auto r2 = run(dist, "dist");
    EXPECT_EQ(r2.code, 0) << r2.output;
    for (auto& w : workers_)
      EXPECT_EQ(reap(w, 20s), 0) << "worker " << w.address << " did not exit 0";
    const auto a = nlohmann::json::parse(read_file(dir_ / "single" / "summary.json"));
    const auto b = nlohmann::json::parse(read_file(dir_ / "dist" / "summary.json"));
    EXPECT_EQ(a["fingerprint"], b["fingerprint"]);
    EXPECT_EQ(comparable(a).dump(1), comparable(b).dump(1));
    for (const auto& f : fs::directory_iterator(dir_ / "single")) {
      const auto name = f.path().filename().string();
      if (name == "summary.json" || name == "scenario.resolved.yaml")
        continue;
      EXPECT_EQ(read_file(f.path()), read_file(dir_ / "dist" / name)) << name;
    }
    EXPECT_EQ(b["nodes"].size(), static_cast<std::size_t>(n));
    std::uint64_t hosted = 0, events = 0;
    for (const auto& node : b["nodes"]) {
      hosted += node["entities"].get<std::uint64_t>();
      events += node["events"].get<std::uint64_t>();
    }
    EXPECT_EQ(hosted, b["entities"].get<std::uint64_t>());
    EXPECT_EQ(events, b["events"].get<std::uint64_t>());
    // The workers' threads (one each here), not the coordinator's none; the
    // memory per entity is the workers' to measure.
    for (const auto& node : b["nodes"])
      EXPECT_EQ(node["threads"].get<std::uint64_t>(), 1u);
    EXPECT_EQ(b["threads"].get<std::uint64_t>(), static_cast<std::uint64_t>(n));
    EXPECT_TRUE(b["memory_per_entity_bytes"].is_null());
    return b;
  }


  /// Starts a long quickstart over two workers, lets it run, then sends
  /// `sig` to worker 1: the coordinator must exit 3 within 10 s naming it,
  /// with partial outputs, and the other worker must exit.
  /// With `hold_other` the other worker is stopped meanwhile, so that the
  /// coordinator is waiting on it when this one goes.
  void worker_fault_fails_the_run(int sig, bool hold_other = false) {
    ASSERT_NO_FATAL_FAILURE(start_workers(2, secret_file_));
    const auto out = dir_ / "out";
    const auto log = dir_ / "coordinator.log";
    const pid_t pid = satemu::testing::spawn_satemu(
      {"run", scenario("quickstart.yaml"), "--quiet", "--out", out.string(), "--set",
       "duration=3600s", "--workers", worker_list(), "--secret-file", secret_file_},
      {}, log);
    ASSERT_GT(pid, 0);
    // Wait until both workers run their share, then let the run go a while.
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    auto hosting = [&](const worker& w) { return read_file(w.log).find("hosting") != std::string::npos; };
    while (!(hosting(workers_[0]) && hosting(workers_[1])) && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(hosting(workers_[0]) && hosting(workers_[1])) << read_file(log);
    std::this_thread::sleep_for(500ms);
    ASSERT_EQ(wait_exit(pid, 0ms), -1) << "the run ended too early:\n" << read_file(log);
    if (hold_other) {
      kill(workers_[0].pid, SIGSTOP);
      std::this_thread::sleep_for(200ms);
    }
    kill(workers_[1].pid, sig);
    const auto killed = std::chrono::steady_clock::now();
    if (hold_other) {
      std::this_thread::sleep_for(500ms);
      kill(workers_[0].pid, SIGCONT);
    }
    const int code = wait_exit(pid, 10s);
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
    if (code < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    const auto text = read_file(log);
    ASSERT_EQ(code, 3) << "coordinator still running or wrong code after " << took << " s:\n" << text;
    EXPECT_LT(took, 10.0);
    EXPECT_NE(text.find(workers_[1].address), std::string::npos) << text;
    EXPECT_NE(text.find("PARTIAL"), std::string::npos) << text;
    // An interrupted worker's reason is told, even when its link is seen
    // down while the coordinator waits on another worker.
    if (sig == SIGTERM) {
      EXPECT_NE(text.find("gave up: the worker was interrupted"), std::string::npos) << text;
    }
    // A stopped worker says so (or is seen going down), never as a fault of
    // the protocol (a grant that found its run gone).
    EXPECT_EQ(text.find("rejected a frame"), std::string::npos) << text;
    EXPECT_FALSE(fs::exists(out / "summary.json"));
    ASSERT_TRUE(fs::exists(out / "summary.partial.json"));
    const auto j = nlohmann::json::parse(read_file(out / "summary.partial.json"));
    EXPECT_EQ(j["complete"], false);
    EXPECT_NE(j["error"].get<std::string>().find(workers_[1].address), std::string::npos);
    EXPECT_GT(j["emulated_seconds"].get<double>(), 0.0);
    // The figures that come with the results are there, as null.
    for (const char* key : {"fingerprint", "events", "envelopes", "metrics", "counters"}) {
      ASSERT_TRUE(j.contains(key)) << key;
      EXPECT_TRUE(j[key].is_null()) << key;
    }
    EXPECT_GT(j["entities"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(j["clock"], "virtual");
    // The nodes' figures come with their results, which a failed run lacks.
    ASSERT_EQ(j["nodes"].size(), 2u);
    for (const auto& node : j["nodes"]) {
      EXPECT_GT(node["entities"].get<std::uint64_t>(), 0u);
      EXPECT_TRUE(node["events"].is_null());
      EXPECT_TRUE(node["barrier_wait_seconds"].is_null());
    }
    // The surviving worker is told to stop and exits 3: its run was aborted.
    EXPECT_EQ(reap(workers_[0], 10s), 3) << read_file(workers_[0].log);
  }

  /// A throwaway PKI in the test's directory.
  const satemu::testing::test_certs& certs() {
    if (certs_.ca.empty()) {
      fs::create_directories(dir_ / "pki");
      EXPECT_TRUE(satemu::testing::make_test_certs(dir_ / "pki", certs_))
        << read_file(dir_ / "pki" / "openssl.log");
    }
    return certs_;
  }
  std::vector<std::string> worker_tls() {
    return {"--tls-cert", certs().worker_cert, "--tls-key", certs().worker_key, "--tls-ca",
            certs().ca};
  }
  std::vector<std::string> coord_tls() {
    return {"--tls-cert", certs().coord_cert, "--tls-key", certs().coord_key, "--tls-ca",
            certs().ca};
  }

  /// A short quickstart over the started workers with `extra` flags.
  result short_run(const std::string& name, const std::vector<std::string>& extra,
                   std::chrono::milliseconds limit = 60s) {
    std::vector<std::string> args{"run",   scenario("quickstart.yaml"), "--quiet", "--out",
                                  (dir_ / name).string(), "--set", "duration=200ms",
                                  "--workers", worker_list(), "--secret-file", secret_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    return run(args, name, limit);
  }

  fs::path dir_;
  std::string secret_file_;
  std::vector<worker> workers_;
  satemu::testing::test_certs certs_;
};

TEST_F(distributed_test, mesh_quickstart_over_two_workers_is_the_single_process_run) {
  const auto b = same_as_single_process(scenario("quickstart.yaml"), 2, {"duration=2s"});
  EXPECT_GT(b["distributed"]["cross_node_envelopes"].get<std::uint64_t>(), 1000u);
  for (const auto& node : b["nodes"])
    EXPECT_GT(node["cross_node_envelopes"].get<std::uint64_t>(), 0u);
}

TEST_F(distributed_test, grid_19x5_ping_over_two_workers_is_the_single_process_run) {
  const auto b = same_as_single_process(scenario("grid-19x5-ping.yaml"), 2, {});
  EXPECT_GT(b["metrics"]["pings_answered"].get<std::uint64_t>(), 0u);
}

TEST_F(distributed_test, skymemory_real_compute_on_satellites_over_two_workers_is_the_single_process_run) {
  // The model on the serving satellites, its layers run by each node's GPU
  // worker; the users and the satellites they ask live on different nodes.
  const auto b = same_as_single_process(
    scenario("skymemory-19x5.yaml"), 2,
    {"duration=20s", "compute.mode=real", "compute.model=tiny", "compute.backend=cpu",
     "compute.at=satellite"});
  const auto finished = b["metrics"]["requests_finished"].get<std::uint64_t>();
  ASSERT_GT(finished, 3u);
  EXPECT_EQ(b["metrics"]["model_at"], "satellite");
  // The same hidden states as one process (the metrics compare whole).
  EXPECT_EQ(b["metrics"]["outputs_digest"].get<std::string>().size(), 16u);
  EXPECT_EQ(b["metrics"]["weights"], "synthetic, seed 0");
  EXPECT_GE(b["compute"]["requests"].get<std::uint64_t>(), 2 * finished); // 2 layers each
  EXPECT_GE(b["compute"]["batches"].get<std::uint64_t>(), 1u);
}

// The coordinator computes nothing, so it opens no device: `cuda` is for
// the workers to open (here, without a GPU, they refuse it and say so).
TEST_F(distributed_test, the_coordinator_leaves_the_compute_backend_to_the_workers) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  auto r = run({"run", scenario("skymemory-19x5.yaml"), "--quiet", "--out", (dir_ / "c").string(),
                "--set", "duration=2s", "--set", "compute.mode=real", "--set", "compute.model=tiny",
                "--set", "compute.backend=cuda", "--workers", worker_list(), "--secret-file",
                secret_file_},
               "cuda");
  if (r.code == 0) {
    const auto j = nlohmann::json::parse(read_file(dir_ / "c" / "summary.json"));
    EXPECT_EQ(j["metrics"]["backend"], "cuda");
  } else {
    // What the worker's host lacks is bad input, as for a single process.
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("worker " + workers_[0].address + " cannot run the scenario"),
              std::string::npos)
      << r.output;
    EXPECT_NE(r.output.find("compute.backend: "), std::string::npos) << r.output;
  }
}

// The TLE file is named by a relative path; one worker's directory holds a
// copy that differs (one satellite renamed): refused before the run, where
// it had given results that were neither file's.
TEST_F(distributed_test, a_worker_reading_another_copy_of_a_file_is_refused) {
  const auto a = dir_ / "a", b = dir_ / "b";
  fs::create_directories(a);
  fs::create_directories(b);
  const std::string tle = read_file(SATEMU_SOURCE_DIR "/scenarios/tle/starlink-2026-02-24.tle");
  write("a/sats.tle", tle);
  std::string other = tle;
  other.replace(other.find("STARLINK-"), 9, "starlink-");
  write("b/sats.tle", other);
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_, {}, a));
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_, {}, b));
  auto r = run_tle_from(a, "copies");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("worker " + workers_[1].address +
                          " read other bytes for constellation.tle.file (sats.tle) than this "
                          "coordinator"),
            std::string::npos)
    << r.output;
  EXPECT_EQ(r.output.find(workers_[0].address + " read other"), std::string::npos) << r.output;
}

TEST_F(distributed_test, a_worker_missing_a_file_is_refused_naming_it) {
  // The coordinator holds the TLE file; the worker's directory does not.
  const auto a = dir_ / "a", c = dir_ / "c";
  fs::create_directories(a);
  fs::create_directories(c);
  write("a/sats.tle", read_file(SATEMU_SOURCE_DIR "/scenarios/tle/starlink-2026-02-24.tle"));
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_, {}, c));
  auto r = run_tle_from(a, "missing");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("worker " + workers_[0].address + " cannot run the scenario"),
            std::string::npos)
    << r.output;
  EXPECT_NE(r.output.find("cannot open TLE file"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("nothing ran"), std::string::npos) << r.output;
  // Left as it was: the output directory the run made is gone again.
  EXPECT_FALSE(fs::exists(dir_ / "o")) << r.output;
  // The worker took the run (it was set up), so it is done: its share did
  // not complete.
  EXPECT_EQ(reap(workers_[0], 20s), 3) << read_file(workers_[0].log);
}

TEST_F(distributed_test, shell_1000_ping_over_three_workers_is_the_single_process_run) {
  // Routes here cross orbital planes, hence nodes.
  const auto b = same_as_single_process(scenario("shell-1000-ping.yaml"), 3, {"duration=5s"});
  EXPECT_GT(b["metrics"]["pings_answered"].get<std::uint64_t>(), 0u);
  EXPECT_GT(b["distributed"]["cross_node_envelopes"].get<std::uint64_t>(), 0u);
}

TEST_F(distributed_test, a_killed_worker_fails_the_run_within_10s_naming_it) {
  worker_fault_fails_the_run(SIGKILL);
}

TEST_F(distributed_test, an_interrupted_worker_fails_the_run_within_10s_naming_it) {
  // SIGTERM: the worker tells its coordinator it was interrupted, then exits.
  worker_fault_fails_the_run(SIGTERM);
}

TEST_F(distributed_test, an_interrupted_worker_tells_why_while_another_is_awaited) {
  worker_fault_fails_the_run(SIGTERM, /*hold_other=*/true);
}

TEST_F(distributed_test, a_stopped_worker_fails_the_run_within_10s_naming_it) {
  // SIGSTOP: the process stays, its connection goes silent.
  worker_fault_fails_the_run(SIGSTOP);
}

TEST_F(distributed_test, a_wrong_secret_is_refused_and_the_worker_then_serves_the_right_one) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  const auto wrong = write("wrong", "not the run's secret at all, no\n");
  auto r = run({"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "w").string(),
                "--set", "duration=200ms", "--workers", worker_list(), "--secret-file", wrong},
               "wrong");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("wrong secret"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(workers_[0].address), std::string::npos) << r.output;
  r = run({"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "r").string(), "--set",
           "duration=200ms", "--workers", worker_list(), "--secret-file", secret_file_},
          "right");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "r" / "summary.json"));
  EXPECT_EQ(reap(workers_[0], 20s), 0);
  EXPECT_NE(read_file(workers_[0].log).find("authentication failed (wrong secret)"), std::string::npos);
}

// A run refused before it starts keeps the outputs of the run before it in
// the same directory, and does not use up the healthy worker listed first:
// a session that sets up no run leaves a worker waiting for the next one.
TEST_F(distributed_test, a_refused_run_keeps_the_earlier_outputs_and_the_healthy_workers) {
  const auto out = dir_ / "keep";
  const auto q = scenario("quickstart.yaml");
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  auto r = run({"run", q, "--quiet", "--out", out.string(), "--set", "duration=200ms",
                "--workers", workers_[0].address, "--secret-file", secret_file_},
               "first");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(reap(workers_[0], 20s), 0);
  const auto summary = read_file(out / "summary.json");
  const auto fingerprint = read_file(out / "fingerprint.txt");
  ASSERT_FALSE(summary.empty());

  const auto wrong = write("wrong", "not the run's secret at all, no\n");
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  ASSERT_NO_FATAL_FAILURE(start_workers(1, wrong));
  const auto healthy = workers_[1].address;
  r = run({"run", q, "--quiet", "--out", out.string(), "--set", "duration=200ms", "--workers",
           healthy + "," + workers_[2].address, "--secret-file", secret_file_},
          "refused");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("wrong secret"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("refused before it started: nothing ran"), std::string::npos)
    << r.output;
  EXPECT_EQ(read_file(out / "summary.json"), summary);
  EXPECT_EQ(read_file(out / "fingerprint.txt"), fingerprint);
  EXPECT_FALSE(fs::exists(out / "summary.partial.json"));

  // The healthy worker waits for the next coordinator, which it serves.
  EXPECT_EQ(wait_exit(workers_[1].pid, 500ms), -1) << read_file(workers_[1].log);
  EXPECT_NE(read_file(workers_[1].log).find("gave up before setting up a run; waiting"), std::string::npos)
    << read_file(workers_[1].log);
  r = run({"run", q, "--out", out.string(), "--set", "duration=100ms", "--workers", healthy,
           "--secret-file", secret_file_},
          "again");
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("replacing the earlier run's outputs in " + out.string()),
            std::string::npos)
    << r.output;
  EXPECT_EQ(reap(workers_[1], 20s), 0) << read_file(workers_[1].log);
  EXPECT_NE(read_file(out / "summary.json"), summary);
}

// Every address is tried before any worker is taken: the healthy worker
// listed first is not used up by the run the second address fails.
TEST_F(distributed_test, an_address_with_nothing_listening_is_refused_before_any_worker_is_taken) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  // A port that was free a moment ago.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  close(fd);
  const std::string bad = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto r = run({"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "bad").string(),
                "--set", "duration=200ms", "--workers", worker_list() + "," + bad,
                "--secret-file", secret_file_},
               "bad");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("cannot connect to worker " + bad + ": Connection refused"),
            std::string::npos)
    << r.output;
  expect_the_first_worker_still_serves();
}

TEST_F(distributed_test, a_worker_listed_twice_is_refused_at_once_and_keeps_serving) {
  // The second name reaches the worker already serving this coordinator,
  // which would never answer its hello: refused by the worker's node id, not
  // after the 10 s handshake timeout.
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  const auto port = workers_[0].address.substr(workers_[0].address.rfind(':') + 1);
  const auto t0 = std::chrono::steady_clock::now();
  auto r = run({"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "twice").string(),
                "--set", "duration=200ms", "--workers", worker_list() + ",localhost:" + port,
                "--secret-file", secret_file_},
               "twice");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--workers lists one worker process twice: " + workers_[0].address +
                          " and localhost:" + port + " reach the same satemu worker"),
            std::string::npos)
    << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "twice" / "summary.partial.json")) << r.output;
  expect_the_first_worker_still_serves();
}

// A coordinator that dies once it has set up the run leaves its workers with
// an aborted share: they exit 3, naming it. (One that dies before setting up
// a run leaves a worker waiting: worker_test.)
TEST_F(distributed_test, a_coordinator_killed_during_its_run_makes_its_worker_exit_3) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  const auto log = dir_ / "killed.log";
  const pid_t pid = satemu::testing::spawn_satemu(
    {"run", scenario("quickstart.yaml"), "--quiet", "--out", (dir_ / "killed").string(), "--set",
     "duration=1h", "--workers", workers_[0].address, "--secret-file", secret_file_},
    {}, log);
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (read_file(workers_[0].log).find("set up a run") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline && wait_exit(pid, 0ms) == -1)
    std::this_thread::sleep_for(10ms);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  const auto text = read_file(workers_[0].log);
  ASSERT_NE(text.find("set up a run"), std::string::npos) << read_file(log) << text;
  EXPECT_EQ(reap(workers_[0], 20s), 3) << read_file(workers_[0].log);
  EXPECT_TRUE(std::regex_search(
    read_file(workers_[0].log),
    std::regex(R"(satemu: error: coordinator 127\.0\.0\.1:\d+ went down \(.+\) before ending )"
               "the session")))
    << read_file(workers_[0].log);
}

TEST_F(distributed_test, ctrl_c_while_connecting_to_a_stopped_worker_exits_130) {
  // A stopped worker's kernel still accepts the TCP connection; CAF's
  // handshake then times out. Ctrl-C meanwhile is an interruption, not a
  // refusal (it had exited 2 with the timeout).
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  kill(workers_[0].pid, SIGSTOP);
  const auto [code, text] = interrupt_coordinator(workers_[0].address, "entities", 100ms, 10s);
  kill(workers_[0].pid, SIGCONT);
  EXPECT_EQ(code, 130) << text;
  EXPECT_NE(text.find("interrupted before it started: nothing ran"), std::string::npos) << text;
}

TEST_F(distributed_test, flag_errors_exit_2) {
  const auto q = scenario("quickstart.yaml");
  // Refused before the workload is built or the output directory made.
  const auto out = (dir_ / "flag-errors").string();
  auto r = run({"run", q, "--quiet", "--out", out, "--workers", "127.0.0.1:1"}, "nosecret");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--secret-file"), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--out", out, "--threads", "4", "--workers", "127.0.0.1:1",
           "--secret-file", secret_file_},
          "threads");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--threads: with --workers"), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--out", out, "--set", "threads=3", "--workers", "127.0.0.1:1",
           "--secret-file", secret_file_},
          "set-threads");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--set threads=3: with --workers"), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--out", out, "--workers", "127.0.0.1:1,,x", "--secret-file",
           secret_file_},
          "list");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("entry 2 is empty"), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--out", out, "--workers", "127.0.0.1:1", "--secret-file",
           secret_file_, "--set", "clock.mode=realtime"},
          "realtime");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("need virtual time"), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--out", out, "--workers", "127.0.0.1:1", "--secret-file",
           (dir_ / "missing").string()},
          "missing");
  EXPECT_EQ(r.code, 2) << r.output;
  // A secret without workers would be ignored: refused, as the TLS flags are.
  r = run({"run", q, "--quiet", "--out", out, "--secret-file", secret_file_}, "secret-alone");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("--secret-file holds the secret the workers share: it needs --workers"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out));
}

// --- TLS ---------------------------------------------------------------------

TEST_F(distributed_test, mesh_quickstart_over_two_tls_workers_is_the_single_process_run) {
  const auto b = same_as_single_process(scenario("quickstart.yaml"), 2, {"duration=2s"},
                                        worker_tls(), coord_tls());
  EXPECT_GT(b["distributed"]["cross_node_envelopes"].get<std::uint64_t>(), 1000u);
  for (const auto& w : workers_)
    EXPECT_NE(read_file(w.log).find("(mutual TLS)"), std::string::npos) << read_file(w.log);
}

TEST_F(distributed_test, a_plain_coordinator_fails_against_a_tls_worker_which_then_serves) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_, worker_tls()));
  auto r = short_run("plain", {}, 30s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_LT(r.seconds, 15.0) << r.output;
  EXPECT_NE(r.output.find("worker " + workers_[0].address), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--tls-cert"), std::string::npos) << r.output;
  r = short_run("tls", coord_tls());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir_ / "tls" / "summary.json"));
  EXPECT_EQ(reap(workers_[0], 20s), 0);
}

TEST_F(distributed_test, a_tls_coordinator_fails_against_a_plain_worker_which_then_serves) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_));
  auto r = short_run("tls", coord_tls(), 30s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("worker " + workers_[0].address), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("TLS handshake failed"), std::string::npos) << r.output;
  r = short_run("plain", {});
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(reap(workers_[0], 20s), 0);
}

TEST_F(distributed_test, a_certificate_from_another_ca_is_refused_and_the_worker_serves_on) {
  ASSERT_NO_FATAL_FAILURE(start_workers(1, secret_file_, worker_tls()));
  // The rogue side trusts the worker's CA, so only the worker can refuse it.
  auto r = short_run("rogue", {"--tls-cert", certs().rogue_cert, "--tls-key", certs().rogue_key,
                               "--tls-ca", certs().ca},
                     30s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("worker " + workers_[0].address), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("TLS handshake failed"), std::string::npos) << r.output;
  EXPECT_EQ(wait_exit(workers_[0].pid, 0ms), -1) << "the worker exited:\n"
                                                  << read_file(workers_[0].log);
  r = short_run("right", coord_tls());
  EXPECT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(reap(workers_[0], 20s), 0);
}

TEST_F(distributed_test, tls_flag_errors_exit_2) {
  const auto q = scenario("quickstart.yaml");
  const auto& c = certs();
  // Partial sets, on either command.
  auto r = run({"run", q, "--quiet", "--workers", "127.0.0.1:1", "--secret-file", secret_file_,
                "--tls-cert", c.coord_cert, "--tls-key", c.coord_key},
               "partial_run");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("go together"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("missing --tls-ca"), std::string::npos) << r.output;
  r = run({"worker", "--secret-file", secret_file_, "--tls-ca", c.ca}, "partial_worker", 20s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("missing --tls-cert and --tls-key"), std::string::npos) << r.output;
  // A missing file is named.
  const auto missing = (dir_ / "missing.pem").string();
  r = run({"worker", "--secret-file", secret_file_, "--tls-cert", missing, "--tls-key",
           c.worker_key, "--tls-ca", c.ca},
          "missing_worker", 20s);
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;
  r = run({"run", q, "--quiet", "--workers", "127.0.0.1:1", "--secret-file", secret_file_,
           "--tls-cert", c.coord_cert, "--tls-key", c.coord_key, "--tls-ca", missing},
          "missing_run");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find(missing), std::string::npos) << r.output;
  // TLS without --workers.
  r = run({"run", q, "--quiet", "--tls-cert", c.coord_cert, "--tls-key", c.coord_key, "--tls-ca",
           c.ca},
          "noworkers");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("need --workers"), std::string::npos) << r.output;
}

} // namespace
