// The satemu executable: parses the command line and dispatches.
#include <cctype>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <iostream>

#include "CLI/CLI.hpp"
#include "cli/calibrate_command.hpp"
#include "cli/flags.hpp"
#include "cli/quality_command.hpp"
#include "cli/report_command.hpp"
#include "cli/run_command.hpp"
#include "cli/sweep_command.hpp"
#include "cli/version.hpp"
#include "cli/worker_command.hpp"
#include "gpu/backend.hpp"
#include "gpu/cpu_backend.hpp"
#include "runtime/suggest.hpp"

namespace {

constexpr const char* description =
  "satemu: emulate LEO satellite constellations and distributed-LLM systems as CAF actors.\n"
  "\n"
  "Exit codes: 0 ok, 1 internal error, 2 bad input (scenario, flags, files), 3 a node of a\n"
  "distributed run failed, 130 interrupted.\n"
  "Scenario keys: satemu validate --explain [KIND]";

// The command (or satemu itself) whose flags a parse error is about.
const CLI::App& command_of(const CLI::App& app) {
  const auto subs = app.get_subcommands();
  return subs.empty() ? app : *subs.back();
}

// "a, b, c", each word between `quote`s.
std::string joined(const std::vector<std::string>& words, const std::string& quote = "") {
  std::string out;
  for (const auto& w : words)
    out += (out.empty() ? "" : ", ") + quote + w + quote;
  return out;
}

// For words on the command line that no command or flag takes: what the
// first was most likely meant as ("unknown flag '--thread' (did you mean
// '--threads'?)"). A flag is matched by the start of its name first, so `-v`
// finds --version.
std::string unexpected_text(const CLI::App& app) {
  const auto extras = app.remaining(true);
  if (extras.empty())
    return {};
  const CLI::App& at = command_of(app);
  const std::string& word = extras.front();
  if (word.starts_with("-")) {
    const auto start = word.find_first_not_of('-');
    const std::string bare = start == std::string::npos ? std::string() : word.substr(start);
    std::vector<std::string> names;
    std::vector<std::string> starting;
    for (const CLI::Option* opt : at.get_options())
      for (const auto& name : opt->get_lnames()) {
        names.push_back(name);
        if (!bare.empty() && name.starts_with(bare))
          starting.push_back(name);
      }
    // One or two letters are too few to guess from but by the start of a name.
    const std::string best = starting.size() == 1 ? starting.front()
                             : bare.size() > 2    ? satemu::runtime::nearest(bare, names)
                                                  : std::string();
    return "unknown flag '" + word + "'" +
           (best.empty() ? "" : " (did you mean '--" + best + "'?)");
  }
  if (&at == &app) {
    if (word == "help")
      return "unknown command 'help' (for help: satemu --help, or satemu COMMAND --help)";
    std::vector<std::string> commands;
    for (const CLI::App* sub : app.get_subcommands({}))
      commands.push_back(sub->get_name());
    return "unknown command '" + word + "'" + satemu::runtime::did_you_mean(word, commands) +
           "; the commands are " + joined(commands);
  }
  std::string takes;
  for (const CLI::Option* opt : at.get_options())
    if (opt->get_positional()) {
      std::string name = opt->get_name();
      for (char& c : name)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      takes += (takes.empty() ? "" : " ") + name;
    }
  return (extras.size() == 1 ? "unexpected argument " : "unexpected arguments ") +
         joined(extras, "'") + " (" +
         at.get_name() + " takes " + (takes.empty() ? "only flags" : "one " + takes) + ")";
}

// The text of a flag error: CLI11's own, but for words nothing takes and a
// flag given twice, which say what was meant. A misspelt flag comes before
// the required one it may have been meant as (`quality --modle tiny`).
std::string parse_error_text(const CLI::App& app, const CLI::Error& e) {
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr ||
      dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    if (auto text = unexpected_text(app); !text.empty())
      return text;
    if (std::string(e.what()) == "file is required")
      return command_of(app).get_name() + " needs a scenario FILE (YAML)";
    if (std::string(e.what()) == "runs is required")
      return "report needs a RUN: a run's output directory or a summary file";
  }
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e) != nullptr) {
    // "--seed: At Most 1 required but received 2"
    const std::string what = e.what();
    const std::string at_most = ": At Most 1 required but received ";
    if (const auto at = what.find(at_most); at != std::string::npos)
      return what.substr(0, at) + " given " + what.substr(at + at_most.size()) +
             " times: give it once";
  }
  return e.what();
}

} // namespace

int main(int argc, char** argv) {
  using namespace satemu::cli;
  satemu::gpu::start_with_openblas_settings(argv);
  // A file size limit (ulimit -f) fails the write that passes it, as a
  // full disk does, rather than killing the process without its outputs.
  std::signal(SIGXFSZ, SIG_IGN);
  CLI::App app{description, "satemu"};
  app.require_subcommand(0, 1);
  // Flag errors read like every other error, and name the help to read.
  // Set before the subcommands are added: they copy it.
  app.failure_message([](const CLI::App* a, const CLI::Error& e) {
    const CLI::App& at = command_of(*a);
    const std::string help = &at == a ? "satemu --help" : "satemu " + at.get_name() + " --help";
    return "satemu: error: " + parse_error_text(*a, e) + "\n(see " + help + ")\n";
  });
  bool version = false;
  app.add_flag("--version", version, "Print the version and the compute backends, then exit");

  run_args ra;
  auto* run = app.add_subcommand("run", "Run a scenario file and write its outputs");
  run->add_option("file", ra.file, "Scenario file (YAML)")->required();
  run->add_option("--threads", ra.threads,
                  "CAF scheduler threads (default: the scenario's `threads`, 0 = one per core; "
                  "not with --workers: each worker runs its own `worker --threads`)")
    ->check(thread_count());
  run->add_option("--seed", ra.seed, "Seed of every random stream (default: the scenario's `seed`)")
    ->check(seed_number());
  run->add_option("--out", ra.out,
                  "Output directory (default: the scenario's output.dir, else out/<name>)");
  run->add_option("--set", ra.sets,
                  "Override a scenario key before validation, e.g. --set workload.rate=50 "
                  "(repeatable)")
    ->allow_extra_args(false);
  run->add_flag("--quiet,-q", ra.quiet, "No progress line and no summary on stderr");
  run->add_option("--workers", ra.workers,
                  "Spread the run over these worker nodes (HOST:PORT,HOST:PORT,...; each started "
                  "with `satemu worker`); this process coordinates");
  run->add_option("--secret-file", ra.secret_file,
                  "With --workers: file holding the run's shared secret (the workers' too)");
  run->add_option("--tls-cert", ra.tls_cert,
                  "With --workers: this coordinator's TLS certificate (PEM); with --tls-key and "
                  "--tls-ca, connect to the workers over mutual TLS");
  run->add_option("--tls-key", ra.tls_key, "With --tls-cert: its private key (PEM, unencrypted)");
  run->add_option("--tls-ca", ra.tls_ca,
                  "With --tls-cert: CA certificate(s) (PEM) that must have signed each worker's "
                  "certificate");
  run->footer(
    "Distributed runs: start `satemu worker --secret-file F --listen HOST:PORT` on each node, "
    "then\n"
    "`satemu run FILE --workers HOST:PORT,... --secret-file F`. Whole orbital planes go to each\n"
    "worker (ground endpoints with the satellite serving them at time 0; entities of other\n"
    "workloads in runs of consecutive ids); every worker builds the scenario itself, so files\n"
    "it names must exist on every worker. Results are identical to a single-process run (but\n"
    "for a real-compute run's outputs_digest). Virtual time only; no output.trace. If a worker\n"
    "fails the run stops, outputs are marked PARTIAL and the exit code is 3. A run refused or\n"
    "interrupted before it starts (before every worker has built the scenario) writes nothing\n"
    "and leaves the output directory as it was.\n"
    "\n"
    "TLS: start the workers with --tls-cert, --tls-key and --tls-ca and give this command the\n"
    "same three flags (its own certificate and key; the CA that signed the workers'). Both\n"
    "sides then present certificates and refuse a peer whose certificate is not signed by their\n"
    "CA file (host names are not checked). The shared secret is still required and checked\n"
    "inside the TLS connection. TLS on one side only fails the connection (exit 2).\n"
    "\n"
    "Exit codes: 0 done, 1 internal error, 2 bad scenario or flags, what this host lacks (a\n"
    "CUDA device, the threads asked for, memory: a run out of memory stops with its outputs\n"
    "PARTIAL), or the workers refused the run (an address where nothing answers; a secret,\n"
    "TLS identity, build or copy of a file a worker does not share; a scenario a worker\n"
    "cannot build; one worker listed under two names), 3 a worker failed, 130 interrupted\n"
    "(outputs PARTIAL once the run started).");

  sweep_args sa;
  auto* sweep = app.add_subcommand(
    "sweep",
    "Evaluate an analytic model (workload kind skymemory, mode analytic) at its configured "
    "point and over the scenario's workload.sweeps; write a CSV table and an SVG plot per "
    "sweep, servers.csv (the layouts at the point), summary.json and scenario.resolved.yaml");
  sweep->footer(
    "Each sweep varies one of kv_size, servers, chunk_time, altitude and holds the others at\n"
    "the workload's values; its table has one row per (value, strategy) and its plot the fetch\n"
    "time against the value, one line per strategy. Keys: satemu validate --explain skymemory\n"
    "\n"
    "Exit codes: 0 done, 1 internal error or a file that could not be written (the others\n"
    "kept, PARTIAL), 2 bad scenario or flags (nothing written), 130 interrupted before the\n"
    "files were written (nothing written).");
  sweep->add_option("file", sa.file, "Scenario file (YAML)")->required();
  sweep->add_option("--out", sa.out,
                    "Output directory (default: the scenario's output.dir, else out/<name>)");
  sweep->add_option("--set", sa.sets,
                    "Override a scenario key before validation, e.g. --set workload.servers=49 "
                    "(repeatable)")
    ->allow_extra_args(false);
  sweep->add_flag("--quiet,-q", sa.quiet, "Print only the files written");

  std::string vfile;
  std::vector<std::string> vsets;
  std::optional<std::string> explain_kind;
  bool explain = false;
  auto* validate = app.add_subcommand(
    "validate", "Check a scenario file without running it, or list every scenario key");
  validate->add_option("file", vfile, "Scenario file (YAML)");
  validate->add_option("--set", vsets, "Override a scenario key (repeatable)")
    ->allow_extra_args(false);
  auto* explain_opt = validate->add_option(
    "--explain", explain_kind,
    "Print every scenario key with type, unit, default and help; with KIND, only the keys of "
    "that workload kind");
  explain_opt->expected(0, 1);
  validate->footer("Exit codes: 0 valid (warnings, if any, on stderr), 1 internal error, 2 not\n"
                   "valid (the file, line, column and key named) or a file that cannot be read.");

  calibrate_args ca;
  auto* calibrate = app.add_subcommand(
    "calibrate", "Time this host's kernels (cpu) or its GPU on device-resident data (cuda) and "
                 "fit a roofline (peak FLOP/s, memory bandwidth, launch overhead), printed as a "
                 "scenario's compute section");
  calibrate->add_option("--backend", ca.backend, "Backend to time: auto, cpu or cuda")
    ->capture_default_str();
  calibrate->add_flag("--quick", ca.quick, "Fewer and smaller problems (a few seconds)");
  calibrate->add_option("--threads", ca.threads,
                        "cpu backend: threads its kernels use, as compute.threads (0 = one per "
                        "core); the default, 1, measures one core")
    ->capture_default_str()
    ->check(thread_count());
  calibrate->add_option("--json", ca.json, "Also write the samples and the fit to this JSON file")
    ->check(not_empty("a file name"));
  calibrate->footer(
    "Exit codes: 0 done, 1 internal error, 2 bad flags, no CUDA device for --backend cuda, or a\n"
    "--json FILE that cannot be written (refused before the timing when it cannot be opened;\n"
    "one that fails as it is written, a full disk, after the fit is printed).");

  quality_args qa;
  auto* quality = add_quality_subcommand(app, qa);

  report_args rpa;
  auto* report = add_report_subcommand(app, rpa);

  worker_args wa;
  auto* worker = add_worker_subcommand(app, wa);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version end here with success; anything else is bad input.
    const int rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_bad_input;
  }

  try {
    if (version) {
      // As OpenBLAS loaded: before anything here sets it.
      const int blas_threads = satemu::gpu::openblas_threads();
      std::printf("%s\n", software_version().c_str());
      const auto choice = satemu::gpu::resolve_auto_backend();
      std::printf("compute backend (auto): %s (%s)\n", choice.name.c_str(), choice.reason.c_str());
      std::printf("cpu GEMMs: OpenBLAS %s kernels, loaded with %d thread%s\n",
                  satemu::gpu::openblas_core().c_str(), blas_threads,
                  blas_threads == 1 ? "" : "s");
      return exit_ok;
    }
    if (*run)
      return run_command(ra);
    if (*sweep)
      return sweep_command(sa);
    if (*worker)
      return worker_command(wa);
    if (*calibrate)
      return calibrate_command(ca);
    if (*quality)
      return quality_command(qa);
    if (*report)
      return report_command(rpa);
    if (*validate) {
      explain = explain_opt->count() > 0;
      if (explain) {
        if (!vfile.empty() || !vsets.empty()) {
          std::fprintf(stderr, "satemu: error: validate takes a FILE (with --set) or --explain, "
                               "not both\n");
          return exit_bad_input;
        }
        // CLI11 stores "" when --explain is given without a value.
        if (explain_kind && explain_kind->empty())
          explain_kind.reset();
        return explain_command(explain_kind);
      }
      if (vfile.empty()) {
        std::fprintf(stderr, "satemu: error: validate needs a FILE or --explain\n");
        return exit_bad_input;
      }
      return validate_command(vfile, vsets);
    }
    std::cout << app.help();
    return exit_bad_input;
  } catch (const std::bad_alloc&) {
    // Input that asks for more than the machine has.
    std::fprintf(stderr, "satemu: error: out of memory: %s\n",
                 *quality ? "the model's weights (fp32) and the activations of --tokens x "
                            "--sequences need more memory than the process may take (a smaller "
                            "model, fewer --tokens or --sequences, or a machine with more memory)"
                 : *calibrate ? "calibrate needs more memory than the process may take"
                              : out_of_memory_advice);
    return exit_bad_input;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "satemu: internal error: %s\n", e.what());
    return exit_internal;
  }
}
