/// satemu subcommand `worker`: a node of a distributed run (runtime/node.hpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace CLI {
class App;
} // namespace CLI

namespace satemu::cli {

/// Exit code of `satemu worker` when its coordinator went down after setting
/// up a run, or ended the session before the run completed (the other codes are
/// those of every subcommand).
inline constexpr int exit_coordinator_lost = 3; // = exit_node_failed

struct worker_args {
  /// ADDR:PORT to listen on; unset = 127.0.0.1:0 (any free port, printed).
  std::optional<std::string> listen;
  std::optional<std::string> secret_file;
  std::optional<std::size_t> threads;
  /// Mutual TLS (all three or none).
  std::optional<std::string> tls_cert;
  std::optional<std::string> tls_key;
  std::optional<std::string> tls_ca;
};

/// Adds the `worker` subcommand to `app`, filling `args`; returns it.
CLI::App* add_worker_subcommand(CLI::App& app, worker_args& args);

/// Runs a worker until its coordinator ends the session (0 after the run
/// completed or when none was set up; `exit_coordinator_lost` before the run
/// completed), goes down (`exit_coordinator_lost`), or the process is
/// interrupted (130). Bad flags or secret file: 2.
int worker_command(const worker_args& a);

} // namespace satemu::cli
