#include "cli/run_command.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "actors/skymemory_emulated.hpp"
#include "actors/workload.hpp"
#include "cli/json_file.hpp"
#include "cli/sweep_command.hpp"
#include "cli/version.hpp"
#include "gpu/backend.hpp"
#include "nlohmann/json.hpp"
#include "runtime/distributed.hpp"
#include "runtime/files.hpp"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"
#include "runtime/output.hpp"
#include "runtime/progress.hpp"
#include "runtime/scenario.hpp"
#include "runtime/schema.hpp"

namespace satemu::cli {

int report_error(const absl::Status& st) {
  std::fprintf(stderr, "satemu: error: %s\n", std::string(st.message()).c_str());
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange:
    // What the input asks for that this host lacks (the cuda backend
    // without a device, threads); failed nodes of a distributed run exit 3
    // elsewhere.
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return exit_bad_input;
    default:
      return exit_internal;
  }
}

absl::StatusOr<std::optional<runtime::tls_options>> tls_from_flags(
  const std::optional<std::string>& cert, const std::optional<std::string>& key,
  const std::optional<std::string>& ca) {
  if (!cert && !key && !ca)
    return std::optional<runtime::tls_options>{};
  std::string missing;
  for (const auto& [flag, value] : {std::pair{"--tls-cert", &cert}, std::pair{"--tls-key", &key},
                                    std::pair{"--tls-ca", &ca}})
    if (!*value)
      absl::StrAppend(&missing, missing.empty() ? "" : " and ", flag);
  if (!missing.empty())
    return absl::InvalidArgumentError(absl::StrCat(
      "--tls-cert, --tls-key and --tls-ca go together (all three for TLS, none for plain TCP); "
      "missing ",
      missing));
  runtime::tls_options tls{*cert, *key, *ca};
  if (auto st = runtime::check_tls_files(tls); !st.ok())
    return st;
  for (const auto& w : runtime::tls_file_warnings(tls))
    std::fprintf(stderr, "satemu: warning: %s\n", w.c_str());
  return std::optional<runtime::tls_options>(std::move(tls));
}

namespace {

std::atomic<bool> g_stop{false};
std::atomic<std::int64_t> g_stop_ns{0};
/// Whether stderr is a terminal: a signal's line then starts on a line of its
/// own, after the progress line or the echoed ^C.
std::atomic<bool> g_stderr_tty{false};

/// Writes the `n` bytes of `msg` (starting with a newline) to stderr,
/// without the newline when stderr is not a terminal (async-signal-safe).
void signal_text(const char* msg, std::size_t n) {
  const std::size_t skip = g_stderr_tty.load() ? 0 : 1;
  if (n > skip)
    (void)!write(STDERR_FILENO, msg + skip, n - skip);
}
template <std::size_t N>
void signal_line(const char (&msg)[N]) {
  signal_text(msg, N - 1);
}

/// CLOCK_MONOTONIC in ns (async-signal-safe).
std::int64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// SIGINT (Ctrl-C), SIGTERM (timeout, batch systems) and SIGHUP (a closed
// terminal) alike.
extern "C" void on_stop_signal(int sig) {
  const std::int64_t now = monotonic_ns();
  if (!g_stop.exchange(true)) {
    g_stop_ns.store(now);
    signal_line("\n[satemu] stopping at the end of the current window (real time: at once), "
                "or before the run if it has not started (Ctrl-C again, a second on, quits "
                "without outputs)\n");
    return;
  }
  // Ctrl-C again, a second or more on, quits at once without outputs (for a
  // window that does not end). One sooner is the same stop delivered twice
  // (`timeout -s INT` signals the process and its process group).
  if (now - g_stop_ns.load() >= 1'000'000'000) {
    signal_line("\n[satemu] quitting at once: no outputs written\n");
    std::signal(sig, SIG_DFL);
    std::raise(sig);
  }
}

// Before the run (loading, building, making model weights), where nothing
// has been written: a stop ends the process at once.
std::atomic<const char*> g_interrupted_line{""};
extern "C" void on_build_signal(int) {
  const char* line = g_interrupted_line.load();
  signal_text(line, std::strlen(line));
  _exit(exit_interrupted);
}

/// `text` as a YAML double-quoted scalar: read back as exactly `text`.
std::string yaml_quoted(std::string_view text) {
  std::string q = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\')
      q += {'\\', c};
    else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      q += absl::StrFormat("\\x%02X", static_cast<unsigned char>(c));
    else
      q += c;
  }
  return q + "\"";
}

/// A `--set` of `key` (KEY=VALUE) beside the flag that sets it: refused,
/// since one of the two would be ignored.
absl::Status refuse_both(const std::vector<std::string>& sets, std::string_view key,
                         std::string_view flag) {
  for (const auto& s : sets)
    if (runtime::override_key(s) == key)
      return absl::InvalidArgumentError(absl::StrCat(std::string(flag), " and --set ", s,
                                                     " both set ", std::string(key),
                                                     ": give one of them"));
  return absl::OkStatus();
}

absl::StatusOr<runtime::scenario> load(const std::string& file, const run_args* a,
                                       const std::vector<std::string>& sets) {
  if (a != nullptr && a->seed)
    if (auto st = refuse_both(sets, "seed", "--seed"); !st.ok())
      return st;
  if (a != nullptr && a->threads)
    if (auto st = refuse_both(sets, "threads", "--threads"); !st.ok())
      return st;
  // Flags become overrides so the resolved scenario records them.
  std::vector<std::string> overrides;
  if (a != nullptr && a->seed)
    overrides.push_back("seed=" + std::to_string(*a->seed));
  if (a != nullptr && a->threads)
    overrides.push_back("threads=" + std::to_string(*a->threads));
  overrides.insert(overrides.end(), sets.begin(), sets.end());
  return load_scenario(file, a != nullptr ? a->out : std::nullopt, std::move(overrides));
}

} // namespace

absl::StatusOr<runtime::scenario> load_scenario(const std::string& file,
                                                const std::optional<std::string>& out,
                                                std::vector<std::string> overrides) {
  actors::register_workloads();
  // A path, not YAML: "o # x" or "~" is a directory of that name.
  if (out) {
    if (auto st = refuse_both(overrides, "output.dir", "--out"); !st.ok())
      return st;
    overrides.insert(overrides.begin(), "output.dir=" + yaml_quoted(*out));
  }
  auto sc = runtime::load_scenario_file(file, overrides);
  if (!sc.ok())
    return sc;
  // The default output directory is out/<name>.
  if (const auto name = sc->get_string("name");
      name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos)
    return absl::InvalidArgumentError(
      absl::StrCat(sc->where("name"), ": name: '", name,
                   "' cannot name the output directory out/<name>: give a plain, non-empty name"));
  return sc;
}

namespace {

std::string hex64(std::uint64_t v) { return absl::StrFormat("%016x", v); }

/// The count, and the percentiles of what was measured: null when nothing
/// was (zeros would read as perfectly on time).
nlohmann::json percentiles_ns(const runtime::histogram& h) {
  if (h.count() == 0)
    return {{"count", 0},        {"p50", nullptr}, {"p90", nullptr}, {"p99", nullptr},
            {"p999", nullptr},   {"max", nullptr}, {"min", nullptr}, {"mean", nullptr}};
  return {{"count", h.count()},          {"p50", h.quantile(0.5)}, {"p90", h.quantile(0.9)},
          {"p99", h.quantile(0.99)},     {"p999", h.quantile(0.999)},
          {"max", h.max()},              {"min", h.min()},         {"mean", h.mean()}};
}

/// trace.csv, handed to `put` in parts of about 1 MiB: a long run's trace is
/// tens of bytes per event, too big to hold again as one string.
void trace_csv(const std::vector<runtime::trace_record>& trace,
               const runtime::output_dir::sink& put) {
  constexpr std::size_t part_bytes = 1 << 20;
  std::string out = "time_ns,entity,source,sequence,kind\n";
  out.reserve(part_bytes + 128);
  for (const auto& r : trace) {
    absl::StrAppendFormat(&out, "%d,%u,%u,%u,%s\n", r.time_ns, r.entity, r.src, r.seq,
                          protocol::to_string(r.k));
    if (out.size() >= part_bytes) {
      put(out);
      out.clear();
    }
  }
  put(out);
}

/// A run over worker nodes: what the coordinator learnt besides the totals.
struct distributed_outcome {
  runtime::run_result result;
  nlohmann::json nodes = nlohmann::json::array();
  nlohmann::json summary;
  absl::Status failure;
  /// The workers refused the run before it started (runtime::coordinated_run).
  bool refused = false;
  /// The run started (runtime::coordinated_run): before, nothing ran.
  bool started = false;
};

/// What a run over workers needs from its flags and scenario, checked before
/// the workload is built or the output directory opened.
struct distributed_setup {
  std::vector<runtime::node_address> workers;
  std::string secret;
  std::optional<runtime::tls_options> tls;
};

/// `a.workers`, `a.secret_file` and the scenario's keys that a distributed
/// run cannot have: InvalidArgument (exit 2) naming the flag or key at fault.
absl::StatusOr<distributed_setup> check_distributed(const runtime::scenario& sc,
                                                    const run_args& a,
                                                    std::optional<runtime::tls_options> tls) {
  auto workers = runtime::parse_worker_list(*a.workers);
  if (!workers.ok())
    return absl::InvalidArgumentError(absl::StrCat("--workers: ", workers.status().message()));
  if (!a.secret_file)
    return absl::InvalidArgumentError(
      "--workers needs --secret-file FILE: the workers admit only a coordinator that knows "
      "the run's shared secret");
  auto secret = runtime::read_secret_file(*a.secret_file);
  if (!secret.ok())
    return secret.status();
  for (const auto& w : runtime::secret_file_warnings(*a.secret_file, *secret))
    std::fprintf(stderr, "satemu: warning: %s\n", w.c_str());
  if (sc.get_string("clock.mode") == "realtime")
    return absl::InvalidArgumentError(
      absl::StrCat(sc.where("clock.mode"),
                   ": clock.mode: distributed runs (--workers) need virtual time"));
  if (sc.get_bool("output.trace"))
    return absl::InvalidArgumentError(absl::StrCat(
      sc.where("output.trace"), ": output.trace: not available in distributed runs (--workers)"));
  return distributed_setup{std::move(*workers), std::move(*secret), std::move(tls)};
}

/// Removes the earlier run's outputs from `out`, saying so unless `quiet`.
absl::Status replace_earlier(runtime::output_dir& out, bool quiet) {
  if (!quiet && out.has_earlier())
    std::fprintf(stderr, "[satemu] replacing the earlier run's outputs in %s\n",
                 out.path().c_str());
  return out.clear_earlier();
}

/// Coordinates the run over the workers and loads the entities' final
/// states into `work`; a failure of the run comes back in `failure`.
distributed_outcome run_distributed(const runtime::scenario& sc, actors::workload& work,
                                    const runtime::run_options& opts, distributed_setup setup,
                                    runtime::output_dir& out_dir, bool quiet) {
  auto& entities = work.entities();
  const auto groups = work.placement_groups();
  runtime::coordinator_options co;
  co.workers = std::move(setup.workers);
  co.secret = std::move(setup.secret);
  co.tls = std::move(setup.tls);
  co.scenario_yaml = sc.resolved_yaml();
  co.node_of = runtime::partition_groups(groups, static_cast<std::uint32_t>(co.workers.size()));
  co.end = opts.end;
  co.lookahead = opts.lookahead;
  co.stop = opts.stop;
  co.software = software_version();
  // The files the workers must read the same: those the coordinator holds
  // (a TLE file it built the network from) are checked against its copy.
  for (const auto& [key, path] : sc.input_files()) {
    auto digest = runtime::file_digest(path);
    co.inputs.push_back({key, path, digest.ok() ? std::optional(*digest) : std::nullopt});
  }
  co.on_progress = opts.on_progress;
  // The earlier run's outputs stay until the workers have taken this one.
  co.on_start = [&out_dir, quiet] { return replace_earlier(out_dir, quiet); };
  if (!quiet)
    // On a terminal the line first clears the progress line it interrupts.
    co.log = [tty = isatty(fileno(stderr)) != 0](const std::string& line) {
      std::fprintf(stderr, "%s[satemu] %s\n", tty ? "\r\033[K" : "", line.c_str());
    };
  auto cr = runtime::coordinate(co);

  distributed_outcome out;
  out.failure = cr.failure;
  out.refused = cr.refused;
  out.started = cr.started;
  out.result = cr.result;
  // A node's figures come with its results at the end: after a failure
  // they are unknown (null), not 0.
  const bool known = cr.failure.ok();
  auto figure = [known](auto v) { return known ? nlohmann::json(v) : nlohmann::json(nullptr); };
  out.result.threads = 0; // the workers' threads, all together
  for (const auto& n : cr.nodes) {
    out.result.threads += n.threads;
    out.nodes.push_back({{"address", n.address},
                         {"threads", n.threads},
                         {"entities", n.entities},
                         {"events", figure(n.events)},
                         {"windows_with_events", figure(n.windows)},
                         {"cross_node_envelopes", figure(n.cross_envelopes)},
                         {"cross_node_bytes", figure(n.cross_bytes)},
                         {"barrier_wait_seconds", figure(n.barrier_wait_seconds)}});
  }
  out.summary = {{"workers", cr.nodes.size()},
                 {"cross_node_envelopes", cr.cross_envelopes},
                 {"cross_node_bytes", cr.cross_bytes}};
  if (!cr.failure.ok())
    return out;
  for (std::uint32_t k = 0; k < cr.entity_states.size(); ++k) {
    if (auto st = runtime::load_entity_states(cr.entity_states[k], entities, co.node_of, k); !st.ok()) {
      out.failure = absl::InternalError(
        absl::StrCat("results of worker ", cr.nodes[k].address, ": ", st.message()));
      return out;
    }
    if (auto st = work.merge_node_state(cr.workload_states[k]); !st.ok()) {
      out.failure = absl::InternalError(
        absl::StrCat("workload state of worker ", cr.nodes[k].address, ": ", st.message()));
      return out;
    }
  }
  runtime::tally_entities(entities, out.result);
  return out;
}

} // namespace

absl::Status locate(const runtime::scenario& sc, const absl::Status& st) {
  const std::string msg(st.message());
  const auto colon = msg.find(": ");
  std::string where = sc.source_name();
  if (colon != std::string::npos && sc.has(msg.substr(0, colon)))
    where = sc.where(msg.substr(0, colon));
  // The key named first holds its default (it has no place): another key
  // the message names that was given (in the file or by --set) has one, or
  // else a map holding one of them.
  if (where == sc.source_name()) {
    // The dotted words of the message, e.g. "workload.entities".
    std::vector<std::string> paths;
    for (absl::string_view word : absl::StrSplit(msg, absl::ByAnyChar(" :,;'\"()"))) {
      word = absl::StripSuffix(word, ".");
      if (!word.empty() && absl::ascii_islower(word[0]) && absl::StrContains(word, '.'))
        paths.emplace_back(word);
    }
    while (where == sc.source_name() && !paths.empty()) {
      for (const auto& path : paths)
        if (sc.has(path) && where == sc.source_name())
          where = sc.where(path);
      // One level up each, dropping the top-level keys.
      std::vector<std::string> up;
      for (const auto& path : paths)
        if (const auto dot = path.rfind('.'); dot != std::string::npos)
          up.push_back(path.substr(0, dot));
      paths = std::move(up);
    }
  }
  return absl::Status(st.code(), absl::StrCat(where, ": ", msg));
}

absl::StatusOr<runtime::output_dir> open_output(const runtime::scenario& sc, std::string& dir,
                                                bool keep_earlier) {
  dir = sc.get_string("output.dir");
  if (dir.empty())
    dir = "out/" + sc.get_string("name");
  // A run's own scenario.resolved.yaml, run again as it is, names the
  // directory it lies in: the rerun would replace the results it
  // reproduces, and its own input, as would a file named as that output.
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path file = sc.source_name();
  if (fs::equivalent(file.parent_path().empty() ? fs::path(".") : file.parent_path(), dir, ec) &&
      !ec) {
    const auto name = file.filename().string();
    bool output = name == "scenario.resolved.yaml" ||
                  name == runtime::output_dir::partial_name("scenario.resolved.yaml");
    std::ifstream listed(fs::path(dir) / ".satemu-outputs");
    for (std::string line; !output && std::getline(listed, line);)
      output = line == name;
    if (output)
      return absl::InvalidArgumentError(absl::StrCat(
        "output.dir: ", sc.source_name(), " is an output of a run in '", dir,
        "', which this run would replace: give it another --out"));
  }
  return keep_earlier ? runtime::output_dir::prepare(dir) : runtime::output_dir::open(dir);
}

absl::StatusOr<runtime::hosted_run> build_hosted_run(const std::string& scenario_yaml) {
  actors::register_workloads();
  auto sc = runtime::load_scenario_text(scenario_yaml, "the coordinator's scenario");
  if (!sc.ok())
    return sc.status();
  auto built = actors::make_workload(*sc);
  if (!built.ok())
    return locate(*sc, built.status());
  std::shared_ptr<actors::workload> work = std::move(*built);
  runtime::hosted_run h;
  h.entities = &work->entities();
  h.lookahead_ns = work->lookahead().ns();
  h.end_ns = sc->get_duration("duration").ns();
  h.seed = static_cast<std::uint64_t>(sc->get_int("seed"));
  h.workload_state = [w = work.get()] { return w->node_state(); };
  h.compute = work->compute();
  h.owner = work;
  for (const auto& [key, path] : sc->input_files()) {
    auto digest = runtime::file_digest(path);
    if (!digest.ok())
      return absl::Status(digest.status().code(), absl::StrCat(key, ": ", digest.status().message()));
    h.inputs.push_back({key, *digest});
  }
  return h;
}

int explain_command(const std::optional<std::string>& kind) {
  actors::register_workloads();
  auto text = runtime::explain(kind);
  if (!text.ok())
    return report_error(text.status());
  std::cout << *text;
  return exit_ok;
}

namespace {

/// The workload's warnings, on stderr (also with -q: they are about the
/// results).
void print_warnings(const actors::workload& w) {
  for (const auto& line : w.warnings())
    std::fprintf(stderr, "satemu: warning: %s\n", line.c_str());
}

} // namespace

int validate_command(const std::string& file, const std::vector<std::string>& sets) {
  auto sc = load(file, nullptr, sets);
  if (!sc.ok())
    return report_error(sc.status());
  if (sc->get_string("workload.kind") == "skymemory" &&
      sc->get_string("workload.mode") == "analytic")
    return validate_analytic(file, *sc);
  if (auto st = actors::skymemory::check_emulated_keys(*sc); !st.ok())
    return report_error(locate(*sc, st));
  // Building the workload checks what single keys cannot (e.g. min <= max).
  auto w = actors::make_workload(*sc, actors::build_depth::check);
  if (!w.ok())
    return report_error(locate(*sc, w.status()));
  print_warnings(**w);
  std::printf("%s: ok (workload %s, %s emulated, lookahead %s)\n", file.c_str(),
              sc->get_string("workload.kind").c_str(),
              runtime::to_string(sc->get_duration("duration")).c_str(),
              runtime::to_string((*w)->lookahead()).c_str());
  return exit_ok;
}

void exit_on_stop_signals(const char* line) {
  g_stderr_tty.store(isatty(STDERR_FILENO) != 0);
  g_interrupted_line.store(line);
  for (const int sig : {SIGINT, SIGTERM, SIGHUP})
    std::signal(sig, on_build_signal);
}

void ignore_stop_signals() {
  for (const int sig : {SIGINT, SIGTERM, SIGHUP})
    std::signal(sig, SIG_IGN);
}

int run_command(const run_args& a) {
  // Flags first: a usage error should not wait for a scenario to build.
  auto tls = tls_from_flags(a.tls_cert, a.tls_key, a.tls_ca);
  if (!tls.ok())
    return report_error(tls.status());
  if (*tls && !a.workers)
    return report_error(absl::InvalidArgumentError(
      "--tls-cert, --tls-key and --tls-ca secure the connections to workers: they need --workers"));
  if (a.secret_file && !a.workers)
    return report_error(absl::InvalidArgumentError(
      "--secret-file holds the secret the workers share: it needs --workers"));
  if (a.workers) {
    // The scenario's `threads` is not used there: setting it is refused.
    std::optional<std::string> threads;
    if (a.threads)
      threads = "--threads";
    for (const auto& s : a.sets)
      if (!threads && runtime::override_key(s) == "threads")
        threads = "--set " + s;
    if (threads)
      return report_error(absl::InvalidArgumentError(absl::StrCat(
        *threads, ": with --workers the entities run on the workers, each with the scheduler "
                  "threads of its own `satemu worker --threads`")));
  }
  exit_on_stop_signals("\n[satemu] interrupted before the run started: no outputs written\n");
  auto sc = load(a.file, &a, a.sets);
  if (!sc.ok())
    return report_error(sc.status());
  if (auto st = actors::skymemory::check_emulated_keys(*sc); !st.ok())
    return report_error(locate(*sc, st));
  // Nothing is built and no directory made for a run its flags refuse.
  std::optional<distributed_setup> setup;
  if (a.workers) {
    auto s = check_distributed(*sc, a, std::move(*tls));
    if (!s.ok())
      return report_error(s.status());
    setup = std::move(*s);
  }
  // A coordinator's entities run on the workers: it needs no model weights.
  // Making them is the one long step before a run starts: it is announced.
  const std::string weights = setup ? "" : actors::weights_to_build(*sc);
  if (!weights.empty()) {
    // What can refuse the run is found before that step: the workload's
    // checks (compute.memory_limit among them), and an output directory
    // that cannot be written (prepared, then left as it was).
    if (auto checked = actors::make_workload(*sc, actors::build_depth::check); !checked.ok())
      return report_error(locate(*sc, checked.status()));
    std::string probe_dir;
    auto probe = open_output(*sc, probe_dir, true);
    if (!probe.ok())
      return report_error(probe.status());
    probe->remove_if_unused();
  }
  const auto build_start = std::chrono::steady_clock::now();
  if (!weights.empty() && !a.quiet) {
    // Which backend computes, and why: `auto` may have fallen back to cpu.
    const auto backend = sc->get_string("compute.backend");
    const auto choice = backend == "auto" ? gpu::resolve_auto_backend()
                                          : gpu::backend_choice{backend, "compute.backend"};
    std::fprintf(stderr, "[satemu] %s\n", choice.line().c_str());
    std::fprintf(stderr, "[satemu] making %s\n", weights.c_str());
  }
  auto built =
    actors::make_workload(*sc, setup ? actors::build_depth::coordinate : actors::build_depth::run);
  if (!built.ok())
    return report_error(locate(*sc, built.status()));
  if (!weights.empty() && !a.quiet)
    std::fprintf(stderr, "[satemu] weights made in %.1f s\n",
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - build_start)
                   .count());
  auto& work = **built;
  print_warnings(work);

  // The actor system hangs on threads it cannot start: found first.
  if (!setup)
    if (auto st = runtime::check_threads_can_start(static_cast<std::size_t>(sc->get_int("threads")));
        !st.ok())
      return report_error(st);
  std::string dir;
  // The earlier outputs are cleared only once the run has run (a
  // distributed one's once its workers have taken it): a run that fails or
  // is stopped before it starts leaves them as they were.
  auto out = open_output(*sc, dir, true);
  if (!out.ok())
    return report_error(out.status());

  runtime::run_options opts;
  opts.mode = sc->get_string("clock.mode") == "realtime" ? runtime::clock_mode::real_time
                                                          : runtime::clock_mode::virtual_time;
  opts.dilation = sc->get_real("clock.dilation");
  opts.end = runtime::vtime::zero() + sc->get_duration("duration");
  opts.lookahead = work.lookahead();
  opts.seed = static_cast<std::uint64_t>(sc->get_int("seed"));
  opts.threads = static_cast<std::size_t>(sc->get_int("threads"));
  opts.trace = sc->get_bool("output.trace");
  opts.stop = &g_stop;
  opts.compute.service = work.compute();
  if (sc->has("compute.batch_window")) {
    opts.compute.realtime_window =
      std::chrono::nanoseconds(sc->get_duration("compute.batch_window").ns());
    opts.compute.realtime_max_batch = static_cast<std::size_t>(sc->get_int("compute.max_batch"));
  }
  runtime::progress_line progress(
    a.quiet ? runtime::progress_line::mode::off
            : runtime::progress_line::parse(sc->get_string("output.progress")),
    opts.end);
  opts.on_progress = [&](const runtime::progress_info& p) { progress.update(p); };

  auto& entities = work.entities();
  if (!a.quiet)
    std::fprintf(stderr, "[satemu] %s: %zu entities, %s %s, lookahead %s, output %s\n",
                 sc->get_string("name").c_str(), entities.size(),
                 runtime::to_string(sc->get_duration("duration")).c_str(),
                 sc->get_string("clock.mode").c_str(), runtime::to_string(opts.lookahead).c_str(),
                 dir.c_str());

  g_stop.store(false);
  // SIGHUP too: a closed terminal or ssh session keeps the results so far.
  struct restore_signals {
    void (*int_before)(int);
    void (*term_before)(int);
    void (*hup_before)(int);
    ~restore_signals() {
      std::signal(SIGINT, int_before);
      std::signal(SIGTERM, term_before);
      std::signal(SIGHUP, hup_before);
    }
  } restore{std::signal(SIGINT, on_stop_signal), std::signal(SIGTERM, on_stop_signal),
            std::signal(SIGHUP, on_stop_signal)};
  runtime::run_result r;
  std::optional<distributed_outcome> dist;
  if (setup) {
    dist = run_distributed(*sc, work, opts, std::move(*setup), *out, a.quiet);
    r = dist->result;
  } else {
    // Out of memory where the run cannot stop in order ends the process
    // (runtime::exit_out_of_memory): nothing was written, and a directory
    // made for the run goes again.
    opts.before_exit = [&] { out->remove_if_unused(); };
    try {
      r = runtime::run(entities, opts);
    } catch (const std::bad_alloc&) {
      // No room for the run's threads and its reserve.
      progress.finish();
      out->remove_if_unused();
      std::fprintf(stderr, "satemu: error: out of memory as the run started: %s\n",
                   out_of_memory_advice);
      std::fprintf(stderr, "[satemu] the run failed before it started: nothing ran, %s left as "
                           "it was\n", dir.c_str());
      return exit_bad_input;
    }
  }
  // The outputs are what the run leaves: writing them is not interrupted.
  ignore_stop_signals();
  progress.finish();

  if (!dist) {
    const bool ran = opts.mode == runtime::clock_mode::virtual_time ? r.windows > 0 : r.events > 0;
    if (r.interrupted && r.failure.empty() && !ran) {
      out->remove_if_unused();
      std::fprintf(stderr, "[satemu] interrupted before the run started: no outputs written, %s "
                           "left as it was\n", dir.c_str());
      return exit_interrupted;
    }
    // One that cannot be removed is replaced by this run's file of that
    // name, or named in the summary as unwritten.
    if (auto st = replace_earlier(*out, a.quiet); !st.ok())
      std::fprintf(stderr, "satemu: warning: %s\n", std::string(st.message()).c_str());
  }
  if (dist && !dist->started) {
    // Nothing ran: nothing to report, and the earlier outputs stay.
    out->remove_if_unused();
    const bool interrupted = absl::IsCancelled(dist->failure);
    if (!interrupted)
      std::fprintf(stderr, "satemu: error: %s\n", std::string(dist->failure.message()).c_str());
    std::fprintf(stderr, "[satemu] distributed run %s before it started: nothing ran, %s left as it was\n",
                 interrupted ? "interrupted" : dist->refused ? "refused" : "failed", dir.c_str());
    return interrupted     ? exit_interrupted
           : dist->refused ? exit_bad_input
                           : exit_node_failed;
  }
  if (dist && !dist->failure.ok()) {
    // No entity states came back: say what is known, marked partial; the
    // figures that come with the results are null (the keys of every summary).
    nlohmann::json j;
    j["scenario"] = sc->get_string("name");
    j["complete"] = false;
    j["error"] = std::string(dist->failure.message());
    for (const char* unknown : {"fingerprint", "events", "envelopes", "events_per_wall_second",
                                "envelopes_per_wall_second", "metrics", "counters",
                                "memory_per_entity_bytes"})
      j[unknown] = nullptr;
    j["emulated_seconds"] = r.reached.seconds();
    j["wall_seconds"] = r.wall_seconds;
    j["peak_rss_bytes"] = runtime::peak_rss_bytes();
    j["threads"] = r.threads;
    j["windows"] = r.windows;
    j["seed"] = opts.seed;
    j["clock"] = sc->get_string("clock.mode");
    j["entities"] = entities.size();
    j["distributed"] = dist->summary;
    j["nodes"] = dist->nodes;
    absl::Status st = out->write("scenario.resolved.yaml", sc->resolved_yaml());
    if (st.ok())
      st = out->write("summary.json", json_text(j));
    if (st.ok())
      st = out->commit(false);
    // Ctrl-C while the workers set up is an interruption, not a node's fault.
    const bool interrupted = absl::IsCancelled(dist->failure);
    if (!interrupted)
      std::fprintf(stderr, "satemu: error: %s\n", std::string(dist->failure.message()).c_str());
    std::fprintf(stderr,
                 "[satemu] distributed run %s at emulated %.3fs: outputs in %s are PARTIAL "
                 "(summary.partial.json)\n",
                 interrupted ? "interrupted" : "failed", r.reached.seconds(), dir.c_str());
    if (!st.ok())
      std::fprintf(stderr, "satemu: error: %s\n", std::string(st.message()).c_str());
    return interrupted     ? exit_interrupted
           : dist->refused ? exit_bad_input
                           : exit_node_failed;
  }

  const bool complete = !r.interrupted;
  const auto n = entities.size();
  nlohmann::json j;
  j["scenario"] = sc->get_string("name");
  j["complete"] = complete;
  j["fingerprint"] = hex64(r.fingerprint);
  j["events"] = r.events;
  j["envelopes"] = r.envelopes;
  j["emulated_seconds"] = r.reached.seconds();
  j["wall_seconds"] = r.wall_seconds;
  j["events_per_wall_second"] = r.wall_seconds > 0 ? r.events / r.wall_seconds : 0.0;
  j["envelopes_per_wall_second"] = r.wall_seconds > 0 ? r.envelopes / r.wall_seconds : 0.0;
  j["peak_rss_bytes"] = runtime::peak_rss_bytes();
  j["threads"] = r.threads;
  j["seed"] = opts.seed;
  j["clock"] = sc->get_string("clock.mode");
  j["entities"] = n;
  j["windows"] = r.windows;
  if (r.compute_requests > 0)
    j["compute"] = {{"requests", r.compute_requests}, {"batches", r.compute_batches}};
  // Measured where the entities are spawned: on the workers, out of sight.
  j["memory_per_entity_bytes"] =
    dist ? nlohmann::json(nullptr)
    : n > 0 && r.rss_after_spawn_bytes > r.rss_before_spawn_bytes
      ? nlohmann::json(static_cast<double>(r.rss_after_spawn_bytes - r.rss_before_spawn_bytes) / n)
      : nlohmann::json(0.0);
  if (opts.mode == runtime::clock_mode::real_time) {
    j["dilation"] = opts.dilation;
    j["lateness_ns"] = percentiles_ns(r.lateness_ns);
  }
  if (!r.failure.empty())
    j["error"] = r.failure;
  else if (r.interrupted)
    j["error"] = absl::StrFormat("interrupted (SIGINT, SIGTERM or SIGHUP) at emulated %.3fs",
                                 r.reached.seconds());
  j["counters"] = r.counters;
  // An output that cannot be made for lack of memory is left out and named;
  // the others are still written, and the summary is then partial.
  std::vector<std::string> short_of_memory;
  auto unless_out_of_memory = [&](const std::string& name, const auto& make) {
    try {
      make();
    } catch (const std::bad_alloc&) {
      short_of_memory.push_back(name);
    }
  };
  unless_out_of_memory("summary.json metrics", [&] { j["metrics"] = work.metrics(r); });
  if (dist) {
    j["distributed"] = dist->summary;
    j["nodes"] = dist->nodes;
  }

  // Every file is tried: one that cannot be written (a full disk, a big
  // file) does not cost the others.
  // (output_dir keeps the failures.)
  (void)out->write("scenario.resolved.yaml", sc->resolved_yaml());
  (void)out->write("fingerprint.txt", hex64(r.fingerprint) + "\n");
  unless_out_of_memory("the workload's files", [&] {
    for (const auto& [name, content] : work.files(r))
      (void)out->write(name, content);
  });
  if (opts.trace)
    unless_out_of_memory("trace.csv", [&] {
      (void)out->write_parts("trace.csv", [&](const auto& put) { trace_csv(r.trace, put); });
    });
  absl::Status st = out->first_failure();
  if (st.ok() && !short_of_memory.empty())
    st = absl::ResourceExhaustedError(
      absl::StrCat("out of memory while making ", short_of_memory.front()));
  if (st.ok())
    st = out->write("summary.json", json_text(j));
  if (st.ok())
    st = out->commit(complete);
  if (!st.ok()) {
    // A file could not be written (a full disk): what was is kept, marked
    // partial, with a partial summary that says why; when even that cannot
    // be written, the summary goes to stderr. The run's figures stay.
    j["complete"] = false;
    j["error"] = std::string(st.message());
    auto unwritten = out->unwritten();
    unwritten.insert(unwritten.end(), short_of_memory.begin(), short_of_memory.end());
    if (!unwritten.empty())
      j["unwritten_files"] = unwritten;
    auto kept = out->write("summary.json", json_text(j));
    // What was written is kept as partial, with its summary or without.
    if (auto committed = out->commit(false); kept.ok())
      kept = committed;
    if (!kept.ok())
      std::fprintf(stderr, "%s", json_text(j).c_str());
    const bool memory = absl::IsResourceExhausted(st);
    std::fprintf(stderr, "satemu: error: %s%s%s\n", std::string(st.message()).c_str(),
                 memory ? ": " : "", memory ? out_of_memory_advice : "");
    std::fprintf(stderr, "[satemu] outputs in %s are PARTIAL%s\n", dir.c_str(),
                 kept.ok() ? " (summary.partial.json)" : ": the summary is above");
    return memory ? exit_bad_input : exit_internal;
  }

  // Warnings about the results (messages still in flight at the end, and
  // what to change) are for a run that reached its end.
  if (!r.interrupted)
    for (const auto& line : work.result_warnings(r))
      std::fprintf(stderr, "satemu: warning: %s\n", line.c_str());
  // Real time is only as good as the host's pace: say when it fell behind.
  if (opts.mode == runtime::clock_mode::real_time) {
    if (r.events == 0)
      std::fprintf(stderr,
                   "satemu: warning: real time: no event ran in the %.3g s of wall time the run "
                   "had (duration x clock.dilation)\n",
                   opts.end.seconds() * opts.dilation);
    else if (const auto late = r.lateness_ns.quantile(0.9);
             static_cast<double>(late) >
             std::min(10e6, 0.1 * static_cast<double>(opts.end.ns()) * opts.dilation))
      std::fprintf(stderr,
                   "satemu: warning: real time: the host fell behind (lateness p50 %.1f ms, p90 "
                   "%.1f ms, p99 %.1f ms); events ran late (one that came after an event due "
                   "later ran at that one's time), and those still waiting at the end did not "
                   "run: a larger clock.dilation, or virtual time, keeps up\n",
                   static_cast<double>(r.lateness_ns.quantile(0.5)) * 1e-6,
                   static_cast<double>(late) * 1e-6,
                   static_cast<double>(r.lateness_ns.quantile(0.99)) * 1e-6);
  }
  if (!r.failure.empty()) {
    std::fprintf(stderr, "satemu: error: %s%s%s\n", r.failure.c_str(),
                 r.out_of_memory ? ": " : "", r.out_of_memory ? out_of_memory_advice : "");
    if (r.out_of_memory && opts.trace)
      std::fprintf(stderr, "satemu: note: output.trace keeps every event in memory (about 32 "
                           "bytes each): without it the run takes far less\n");
    std::fprintf(stderr,
                 "[satemu] stopped at emulated %.3fs: outputs in %s are PARTIAL "
                 "(summary.partial.json)\n",
                 r.reached.seconds(), dir.c_str());
    return r.out_of_memory ? exit_bad_input : exit_internal;
  }
  if (!complete) {
    std::fprintf(stderr,
                 "[satemu] interrupted at emulated %.3fs: outputs in %s are PARTIAL "
                 "(summary.partial.json)\n",
                 r.reached.seconds(), dir.c_str());
    return exit_interrupted;
  }
  if (!a.quiet)
    std::fprintf(stderr,
                 "[satemu] done: %.3fs emulated in %.2fs wall, %llu events (%.3g/s), %llu "
                 "envelopes, fingerprint %s\n",
                 r.reached.seconds(), r.wall_seconds,
                 static_cast<unsigned long long>(r.events),
                 r.wall_seconds > 0 ? r.events / r.wall_seconds : 0.0,
                 static_cast<unsigned long long>(r.envelopes), hex64(r.fingerprint).c_str());
  std::printf("%s\n", (std::filesystem::path(dir) / "summary.json").string().c_str());
  return exit_ok;
}

} // namespace satemu::cli
