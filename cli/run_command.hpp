/// satemu subcommands `run` and `validate`.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"
#include "runtime/output.hpp"

namespace satemu::runtime {
class scenario;
} // namespace satemu::runtime

namespace satemu::cli {

/// Exit codes of the satemu executable.
enum exit_code : int {
  exit_ok = 0,
  exit_internal = 1,
  exit_bad_input = 2,
  /// A distributed run lost a worker (run) or its coordinator (worker).
  exit_node_failed = 3,
  exit_interrupted = 130
};

using runtime::out_of_memory_advice;
static_assert(runtime::exit_out_of_memory == exit_bad_input);

struct run_args {
  std::string file;
  std::optional<std::size_t> threads;
  std::optional<std::uint64_t> seed;
  std::optional<std::string> out;
  std::vector<std::string> sets;
  bool quiet = false;
  /// Distributed run: the workers ("h:p,h:p") and the shared secret's file.
  std::optional<std::string> workers;
  std::optional<std::string> secret_file;
  /// With --workers: mutual TLS (all three or none).
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_ca;
};

/// The TLS of a distributed run from --tls-cert, --tls-key and --tls-ca:
/// none set = plain TCP (nullopt); all three = TLS, the files checked
/// (`runtime::check_tls_files`); some = InvalidArgument naming the missing
/// flags.
absl::StatusOr<std::optional<runtime::tls_options>> tls_from_flags(
  const std::optional<std::string>& cert, const std::optional<std::string>& key,
  const std::optional<std::string>& ca);

/// Prints `satemu: error: ...` and returns the exit code for the status:
/// bad input (InvalidArgument, NotFound, OutOfRange) 2, anything else 1.
int report_error(const absl::Status& st);

/// From here on SIGINT, SIGTERM and SIGHUP (Ctrl-C, `timeout`, a closed
/// terminal) end the process at once with exit_interrupted, writing `line`
/// (a literal that starts with a newline, dropped when stderr is not a
/// terminal) to stderr: for the work before anything is written.
void exit_on_stop_signals(const char* line);
/// From here on those signals are ignored: outputs being written are
/// finished.
void ignore_stop_signals();

/// Loads a scenario file as `run`, `validate` and `sweep` do: `out` (the
/// --out path, taken as it is, not read as YAML) as output.dir, then
/// `overrides` ("key=value", later ones win); refuses a `name` that cannot
/// name the output directory out/<name>.
absl::StatusOr<runtime::scenario> load_scenario(const std::string& file,
                                                const std::optional<std::string>& out,
                                                std::vector<std::string> overrides);

/// A workload's error names the key it is about first ("workload.x: ...");
/// prefixes where the scenario gave that key ("file:line:col: ") or, when it
/// did not give it, the file name.
absl::Status locate(const runtime::scenario& sc, const absl::Status& st);

/// The scenario's output directory (`output.dir`, else out/<name>), opened;
/// with `keep_earlier` only prepared (runtime::output_dir::prepare).
absl::StatusOr<runtime::output_dir> open_output(const runtime::scenario& sc, std::string& dir,
                                                bool keep_earlier = false);

int run_command(const run_args& a);

/// What `satemu worker` hosts: the workload of a resolved scenario, built
/// exactly as `run` builds it.
absl::StatusOr<runtime::hosted_run> build_hosted_run(const std::string& scenario_yaml);
int validate_command(const std::string& file, const std::vector<std::string>& sets);
int explain_command(const std::optional<std::string>& kind);

} // namespace satemu::cli
