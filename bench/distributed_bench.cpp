// Distributed runs over real processes on loopback: `satemu worker` processes
// and a `satemu run --workers` coordinator, started as the user would.
//
//   BM_Distributed_Barriers/workers: the mesh quickstart (1,024 entities)
//     at 1 message per entity per emulated second for 10 s, so windows carry
//     almost no work: window barriers per wall second (`windows_per_s`).
//     workers:0 is the same scenario in one process, for scale.
//   BM_Distributed_CrossEnvelopes/workers: the quickstart at 200 messages
//     per entity per second for 2 s: envelopes handed between nodes per wall
//     second (`cross_envelopes_per_s`) and all envelopes per second.
//   BM_Distributed_StarlinkPing/workers: scenarios/starlink-ping.yaml (60 s
//     emulated) over that many workers, or in one process (workers:0):
//     wall seconds and events per second.
//   BM_Distributed_TlsBarriers, BM_Distributed_TlsCrossEnvelopes: the first
//     two over mutual TLS (--tls-cert/--tls-key/--tls-ca on every node,
//     certificates made with the openssl tool per run).
//
// Figures come from the coordinator's summary.json (`wall_seconds`: the run
// itself, after every node built the scenario); `process_s` is the whole
// coordinator process, start-up and scenario building included. Workers run
// with --threads 1, the single process with threads 1 (same cores in use per
// node). One run per repetition.
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_main.hpp"
#include "bench/source_tree.hpp"
#include "nlohmann/json.hpp"
// The program spawn_satemu starts: $SATEMU_BINARY, else the one built.
#define SATEMU_BINARY satemu::bench::from_env("SATEMU_BINARY", SATEMU_BUILT_BINARY)
#include "tests/cli/process.hpp"
#include "tests/tls_certs.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

using satemu::testing::read_file;

struct outcome {
  nlohmann::json summary;
  double process_s = 0;
  std::string error;
};

/// Runs `scenario` with `sets` over `workers` worker processes (0: in one
/// process) and returns its summary.
outcome run_case(const std::string& scenario, const std::vector<std::string>& sets, int workers,
                 bool tls) {
  const auto dir = fs::temp_directory_path() / ("satemu_dist_bench_" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto secret = (dir / "secret").string();
  std::ofstream(secret) << "benchmark secret of enough bytes\n";
  fs::permissions(secret, fs::perms::owner_read | fs::perms::owner_write);
  std::vector<pid_t> pids;
  std::string list;
  outcome out;
  satemu::testing::test_certs certs;
  if (tls && !satemu::testing::make_test_certs(dir, certs))
    out.error = "openssl failed: " + read_file(dir / "openssl.log");
  const auto tls_flags = [&](const std::string& cert, const std::string& key) {
    return tls ? std::vector<std::string>{"--tls-cert", cert, "--tls-key", key, "--tls-ca", certs.ca}
               : std::vector<std::string>{};
  };
  for (int i = 0; i < workers && out.error.empty(); ++i) {
    const auto log = dir / ("worker" + std::to_string(i) + ".log");
    std::vector<std::string> wargs{"worker", "--listen", "127.0.0.1:0", "--secret-file", secret,
                                   "--threads", "1"};
    for (auto& f : tls_flags(certs.worker_cert, certs.worker_key))
      wargs.push_back(f);
    pids.push_back(satemu::testing::spawn_satemu(wargs, {}, log));
    const std::regex listening(R"(listening on (127\.0\.0\.1:\d+))");
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    std::smatch m;
    std::string text;
    while (!std::regex_search(text = read_file(log), m, listening)) {
      if (std::chrono::steady_clock::now() > deadline) {
        out.error = "worker did not start: " + text;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    if (out.error.empty()) {
      if (!list.empty())
        list += ',';
      list += m[1].str();
    }
  }
  std::vector<std::string> args{"run", satemu::bench::source_dir() + "/" + scenario, "--quiet",
                                "--out", (dir / "out").string()};
  for (const auto& s : sets)
    args.insert(args.end(), {"--set", s});
  if (workers > 0) {
    args.insert(args.end(), {"--workers", list, "--secret-file", secret});
    for (auto& f : tls_flags(certs.coord_cert, certs.coord_key))
      args.push_back(f);
  } else
    args.insert(args.end(), {"--threads", "1"});
  if (out.error.empty()) {
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = satemu::testing::spawn_satemu(args, satemu::bench::source_dir(),
                                                    dir / "run.log");
    int status = 0;
    waitpid(pid, &status, 0);
    out.process_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (satemu::testing::decode_status(status) != 0)
      out.error = "run failed: " + read_file(dir / "run.log");
    else
      out.summary = nlohmann::json::parse(read_file(dir / "out" / "summary.json"));
  }
  for (auto pid : pids) {
    int status = 0;
    if (!out.error.empty())
      kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  fs::remove_all(dir);
  return out;
}

void report(benchmark::State& state, const std::string& scenario, const std::vector<std::string>& sets,
            bool tls = false) {
  const int workers = static_cast<int>(state.range(0));
  for (auto _ : state) {
    auto o = run_case(scenario, sets, workers, tls);
    if (!o.error.empty()) {
      state.SkipWithError(o.error.c_str());
      return;
    }
    const auto& s = o.summary;
    const double wall = s["wall_seconds"].get<double>();
    state.SetIterationTime(wall);
    state.counters["wall_s"] = wall;
    state.counters["process_s"] = o.process_s;
    state.counters["windows_per_s"] = s["windows"].get<double>() / wall;
    state.counters["events_per_s"] = s["events"].get<double>() / wall;
    state.counters["envelopes_per_s"] = s["envelopes"].get<double>() / wall;
    state.counters["emulated_s_per_wall_s"] = s["emulated_seconds"].get<double>() / wall;
    if (s.contains("distributed")) {
      state.counters["cross_envelopes_per_s"] =
        s["distributed"]["cross_node_envelopes"].get<double>() / wall;
      double wait = 0;
      for (const auto& n : s["nodes"])
        wait += n["barrier_wait_seconds"].get<double>();
      state.counters["worker_barrier_wait_share"] = wait / (wall * workers);
    }
  }
}

void BM_Distributed_Barriers(benchmark::State& state) {
  report(state, "scenarios/quickstart.yaml", {"workload.rate=1"});
}
BENCHMARK(BM_Distributed_Barriers)->Arg(0)->Arg(2)->ArgName("workers")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

void BM_Distributed_CrossEnvelopes(benchmark::State& state) {
  report(state, "scenarios/quickstart.yaml", {"workload.rate=200", "duration=2s"});
}
BENCHMARK(BM_Distributed_CrossEnvelopes)->Arg(0)->Arg(2)->ArgName("workers")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

void BM_Distributed_StarlinkPing(benchmark::State& state) {
  report(state, "scenarios/starlink-ping.yaml", {});
}
BENCHMARK(BM_Distributed_StarlinkPing)->Arg(0)->Arg(2)->ArgName("workers")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

void BM_Distributed_TlsBarriers(benchmark::State& state) {
  report(state, "scenarios/quickstart.yaml", {"workload.rate=1"}, true);
}
BENCHMARK(BM_Distributed_TlsBarriers)->Arg(2)->ArgName("workers")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

void BM_Distributed_TlsCrossEnvelopes(benchmark::State& state) {
  report(state, "scenarios/quickstart.yaml", {"workload.rate=200", "duration=2s"}, true);
}
BENCHMARK(BM_Distributed_TlsCrossEnvelopes)->Arg(2)->ArgName("workers")->Iterations(1)->UseManualTime()->Unit(benchmark::kSecond);

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
