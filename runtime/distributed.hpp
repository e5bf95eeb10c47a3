/// @file distributed.hpp
/// One emulation over several processes (DESIGN.md, Distribution): the
/// coordinator's side of the run protocol, the partition of entities over
/// worker nodes, and the encoding of the entities' final states. The worker's
/// side lives with the worker node (runtime/node.hpp, `worker_options::build_run`).
///
/// The run protocol, over the authenticated session of runtime/node.hpp
/// (C = coordinator, W = each worker):
///
///     C -> W  setup   {resolved scenario, node index, node of every entity}
///     W -> C  ready   {entities hosted}        (W built the scenario itself)
///     W -> C  report  {next event time, events, envelopes for other nodes}
///     C -> W  grant   {window end, envelopes from other nodes}    } per window
///     W -> C  report  {...}                                        }
///     C -> W  grant   {stop}
///     W -> C  results {hosted entities' final state, node figures}
///     C -> W  end                               (W exits 0)
///
/// Every worker builds the whole scenario (the same entities, in the same
/// order, from the same seed) and drives only its share; a node conductor
/// (runtime/kernel.hpp, `node_share`) runs each window there exactly as the
/// single-process conductor does. The coordinator hosts no entities: it is
/// the global conductor. A window starts at the smallest next-event time
/// over all nodes, counting the envelopes in flight between nodes, and
/// lasts one lookahead; every envelope a window produces is due after it,
/// so the envelopes for other nodes travel with the report, through the
/// coordinator, into the receiving node's next grant: two messages per node
/// per window carry both the barrier and the traffic. Entities order their
/// events by (time, source, sequence, previous hop) whatever the arrival
/// order, so the run is event for event the single-process run: the same
/// fingerprint, the same metrics. At the end the workers send their hosted
/// entities' states; the coordinator loads them into its own copy of the
/// workload and reports it as a single-process run would.
///
/// Faults: a worker that goes away (process killed, connection lost) is
/// seen at once through CAF's connection monitoring; one that stops
/// answering (stopped, hung host) when the BASP heartbeat times out. The
/// coordinator then stops every other worker and returns the failure naming
/// the worker and the emulated time reached; its caller writes partial
/// outputs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "runtime/entity.hpp"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"

namespace satemu::runtime {

/// Assigns entities to `nodes` nodes by group (an orbital plane, say):
/// groups stay whole, are taken in the order of their lowest entity id, and
/// are cut into `nodes` contiguous runs of about equal entity counts.
/// `group_of[i]` is entity i's group (any numbers). With fewer groups than
/// nodes some nodes get nothing. Returns each entity's node.
std::vector<std::uint32_t> partition_groups(std::span<const std::uint32_t> group_of,
                                            std::uint32_t nodes);

/// The final state of the entities of `node` (`node_of` as in the setup):
/// a count, then per entity its id and its state (entity_driver::save).
std::string save_entity_states(const std::vector<std::unique_ptr<entity>>& entities,
                               std::span<const std::uint32_t> node_of, std::uint32_t node);

/// Loads states written by `save_entity_states` for node `node` into the
/// twins in `entities`. InvalidArgument naming the entity when the bytes are
/// malformed or name an entity the node does not host.
absl::Status load_entity_states(std::string_view bytes,
                                std::vector<std::unique_ptr<entity>>& entities,
                                std::span<const std::uint32_t> node_of, std::uint32_t node);

struct coordinator_options {
  std::vector<node_address> workers;
  std::string secret;
  /// Mutual TLS to every worker (runtime/node.hpp); unset = plain TCP.
  std::optional<tls_options> tls;
  /// The resolved scenario every worker builds.
  std::string scenario_yaml;
  /// Per entity: the index of the worker hosting it.
  std::vector<std::uint32_t> node_of;
  vtime end;
  duration lookahead = milliseconds(1);
  /// Scheduler threads per worker; 0 = each worker's own setting.
  std::uint32_t threads = 0;
  /// Connecting and authenticating, per worker.
  std::chrono::milliseconds connect_timeout{10000};
  /// A worker building the scenario.
  std::chrono::milliseconds setup_timeout{300000};
  /// The workers' final results.
  std::chrono::milliseconds results_timeout{120000};
  /// A worker whose connection is silent this long counts as gone.
  std::chrono::milliseconds silence_timeout{5000};
  const std::atomic<bool>* stop = nullptr;
  std::function<void(const progress_info&)> on_progress;
  /// When set, every worker must report this software string (e.g.
  /// "satemu 0.1.0") in its handshake: nodes must run the same build.
  std::string software;
  /// The files the scenario names (key, path), and a digest of each as the
  /// coordinator read it (unset where it cannot: model weights that only
  /// the workers hold). Every worker must report the same digests as the
  /// coordinator, or where it has none, as the first worker.
  struct input_file {
    std::string key, path;
    std::optional<std::uint64_t> digest;
  };
  std::vector<input_file> inputs;
  /// Log lines (connections, setup); default: none. Failures come back in
  /// `coordinated_run::failure`.
  std::function<void(const std::string&)> log;
  /// Called once every worker has built the scenario, before the first
  /// window (e.g. to clear the earlier run's outputs only once this one
  /// will run); a failure ends the run there, as refused.
  std::function<absl::Status()> on_start;
};

/// What one node did.
struct node_figures {
  std::string address;
  /// The worker's CAF scheduler threads.
  std::uint32_t threads = 0;
  std::uint64_t entities = 0;
  std::uint64_t events = 0;
  /// Windows in which the node had events.
  std::uint64_t windows = 0;
  std::uint64_t cross_envelopes = 0;
  std::uint64_t cross_bytes = 0;
  /// Wall time the node waited at window barriers for its next grant [s].
  double barrier_wait_seconds = 0;
};

struct coordinated_run {
  /// Windows, reached time, interrupted, wall seconds; the totals
  /// (fingerprint, events, counters) come from the entities once their
  /// states are loaded (`tally_entities`).
  run_result result;
  std::vector<node_figures> nodes;
  /// Per worker: its `save_entity_states` bytes and its workload state.
  std::vector<std::string> entity_states;
  std::vector<std::string> workload_states;
  /// Envelopes and bytes relayed between nodes, and windows granted.
  std::uint64_t cross_envelopes = 0;
  std::uint64_t cross_bytes = 0;
  /// OK, or why the run failed (naming the worker); then `result.reached`
  /// is the start of the last window every node finished and the states
  /// are empty.
  absl::Status failure;
  /// The failure refused what the run was given before it started: a worker
  /// address that does not answer, a secret, TLS identity or build a worker
  /// does not accept, or a worker that built the scenario from other files.
  /// Not a node failing, and not an interruption.
  bool refused = false;
  /// The run started: every worker built the scenario and `on_start`
  /// succeeded. A run that fails before has nothing to report.
  bool started = false;
};

/// Runs the distributed run described by `opts` to its end (or the stop
/// flag, or a failure) and ends every worker's session.
coordinated_run coordinate(const coordinator_options& opts);

} // namespace satemu::runtime
