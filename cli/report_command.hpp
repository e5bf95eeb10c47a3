/// satemu subcommand `report`: the figures of one or more runs' summaries
/// side by side, to compare runs (strategies, seeds, thread counts).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
} // namespace CLI

namespace satemu::cli {

struct report_args {
  /// Output directories (their summary.json, else summary.partial.json) or
  /// summary files.
  std::vector<std::string> runs;
  /// Only the keys whose values are not the same in every run.
  bool diff = false;
  /// Patterns over the flattened keys (`metrics.latency_ms.*`; `*` any
  /// characters, `?` one, anything else itself); a pattern also takes the
  /// keys under what it matches (`metrics.latency_ms`).
  std::vector<std::string> keys;
  /// Also write the table as CSV to this file; "-": to stdout, instead of
  /// the table.
  std::string csv;
};

/// Adds the `report` subcommand to `app`, filling `args`; returns it.
CLI::App* add_report_subcommand(CLI::App& app, report_args& args);

/// Prints one row per key of the runs' summaries (nested keys flattened as
/// `metrics.latency_ms.p50`, array elements as `nodes[0].threads`) and one
/// column per run; 0, or 2 for a run without a readable summary, a key
/// pattern that matches nothing, or a CSV file that cannot be written.
int report_command(const report_args& a);

} // namespace satemu::cli
