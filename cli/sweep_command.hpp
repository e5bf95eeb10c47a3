/// satemu subcommand `sweep`: evaluates an analytic model over the sweeps of
/// a scenario and writes a table and a plot per sweep.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace satemu::runtime {
class scenario;
} // namespace satemu::runtime

namespace satemu::cli {

struct sweep_args {
  std::string file;
  std::optional<std::string> out;
  std::vector<std::string> sets;
  bool quiet = false;
};

/// Loads the scenario (a `skymemory` workload in `mode: analytic`), evaluates
/// its configured point and every sweep, and writes into the output
/// directory: `sweep_<parameter>.csv` and `sweep_<parameter>.svg` per sweep,
/// `servers.csv` (the layouts at the configured point),
/// `scenario.resolved.yaml` and `summary.json`; prints each file written.
/// Exit codes as `run`.
int sweep_command(const sweep_args& a);

/// `validate` for an analytic scenario: checks what `sweep` would evaluate
/// and prints a one-line summary.
int validate_analytic(const std::string& file, const runtime::scenario& sc);

} // namespace satemu::cli
