/// satemu kernel: runs a set of entities as CAF actors, in deterministic
/// virtual time or paced real time.
///
/// Virtual time (DESIGN.md, The virtual-time kernel): a conductor actor grants
/// windows `[T, T+L)` of the lookahead `L` to the entities with due events,
/// and only to them; each processes its events in `(time, source, sequence)`
/// order. Every envelope it produces is due at `T+L` or later, so it cannot
/// belong to the current window: the sender gathers them per destination and,
/// at the end of its window, hands each destination one batch, pushed straight
/// into that entity's inbox (in-process shared memory). It then reports its
/// next event time and, per destination, the earliest delivery it sent, and
/// counts itself off the window. When the count reaches zero every envelope
/// of the window has arrived (sent == received by construction) and the
/// conductor starts the next window at the smallest next-event time anywhere,
/// so idle stretches are skipped. The grant is the one CAF message an entity
/// gets per window, and it carries every envelope due to it.
///
/// Compute (runtime/compute.hpp): an entity that makes a compute request
/// stops there and reports itself waiting. At the window's end, once every
/// granted entity is done or waiting, the conductor sends the GPU worker
/// actor the window's requests as one batch, sorted by (entity, request
/// sequence), and waits for its answer; each result becomes an event of its
/// entity at its ready time (request time plus modeled duration). The next
/// window starts at the smallest next-event time as always, which may now
/// be a result inside the window just ended: that is safe, because every
/// envelope sent from then on is still due at or after that window's end.
/// Windows without requests skip all of this. A distributed run's node
/// conductors do the same with a GPU worker per node: requests never leave
/// their node, and results do not depend on the batch, so 1 and N nodes
/// give the same run.
///
/// Real time: every send becomes a CAF delayed send of `latency * dilation`;
/// lateness (actual minus intended wall-clock delivery) is recorded. Compute
/// requests go to the GPU worker actor as they are made; it batches them
/// over a short wall-time window or up to a maximum batch size.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <memory>
#include <vector>

#include "protocol/envelope_batch.hpp"
#include "runtime/compute.hpp"
#include "runtime/entity.hpp"
#include "runtime/histogram.hpp"
#include "runtime/time.hpp"

namespace satemu::runtime {

enum class clock_mode { virtual_time, real_time };

/// A snapshot for progress display.
struct progress_info {
  vtime now;
  std::uint64_t events = 0;
  double wall_seconds = 0;
};

/// A node's end of a window barrier in a distributed run: what the node
/// tells the coordinator when its entities are done with a window.
struct window_report {
  /// Earliest pending event of the node's entities; `vtime::never()` if none.
  std::int64_t next_ns = 0;
  /// Events processed in the window.
  std::uint64_t events = 0;
  /// Envelopes the window produced for other nodes' entities.
  std::vector<protocol::routed_envelope> outgoing;
};

/// What the coordinator answers: the next window, with the envelopes other
/// nodes sent this one, or the end of the run.
struct window_grant {
  bool stop = false;
  bool interrupted = false;
  std::int64_t window_end = 0;
  std::vector<protocol::routed_envelope> incoming;
};

/// Carries a node's barrier to the coordinator (runtime/distributed.hpp).
class window_exchange {
public:
  virtual ~window_exchange() = default;
  /// Called by the node's conductor after the start and after every window;
  /// blocks until the coordinator grants the next window (or stops the run).
  virtual window_grant exchange(window_report&& report) = 0;
};

/// A node's share of a distributed run.
struct node_share {
  /// The node hosting each entity (one per entity of the run).
  std::vector<std::uint32_t> node_of;
  /// This node.
  std::uint32_t node = 0;
  window_exchange* exchange = nullptr;
};

struct run_options {
  clock_mode mode = clock_mode::virtual_time;
  /// Real time only: wall seconds per emulated second (1 = wall-clock speed).
  double dilation = 1.0;
  /// Events at or after `end` are not processed.
  vtime end;
  /// Smallest latency any send can have; the window length in virtual time.
  duration lookahead = milliseconds(1);
  std::uint64_t seed = 1;
  /// CAF scheduler threads; 0 = one per core.
  std::size_t threads = 0;
  /// Keep every processed event (time, entity, source, sequence, kind).
  bool trace = false;
  /// Called about twice a second from the waiting thread.
  std::function<void(const progress_info&)> on_progress;
  /// When set to true (e.g. by a SIGINT handler) the run stops at the next
  /// window and reports itself interrupted.
  const std::atomic<bool>* stop = nullptr;
  /// Virtual time only: run as one node of a distributed run. The entity
  /// vector holds every entity of the run; only those with
  /// `share->node_of[id] == share->node` are driven here, and the windows come
  /// from `share->exchange`. Null: the whole run is here.
  const node_share* share = nullptr;
  /// The compute service entities' `compute` requests go to (in a
  /// distributed run: this node's).
  compute_options compute;
  /// Called, when set, by a run that ends the process (exit_out_of_memory)
  /// just before it does, after saying why: e.g. to remove an output
  /// directory made for it. Memory may have run out: what it throws is
  /// ignored.
  std::function<void()> before_exit;

  /// Tests only: std::bad_alloc thrown where a scenario too big for the
  /// memory runs out. Virtual time, single process; windows are counted
  /// from 1 (the entities' start is window 0); 0 is never.
  struct fault_points {
    /// The conductor's bookkeeping as it grants this window, after the
    /// first half of its grants went out.
    std::uint64_t conductor_at_window = 0;
    /// The conductor's send of the middle grant of this window.
    std::uint64_t conductor_send_at_window = 0;
    /// The actor of entity `entity_start - 1`, as CAF starts it.
    std::uint64_t entity_start = 0;
    /// A thread of the process, once the entities are started: thrown out
    /// of it, as out of the actor system's own threads.
    bool thread_escape = false;
    /// The thread that called run, once the entities are started (in any
    /// mode).
    bool main_after_start = false;
  } faults;
};

struct run_result {
  /// Hash over every processed event; identical for identical scenario and
  /// seed whatever the thread count (virtual time only).
  std::uint64_t fingerprint = 0;
  std::uint64_t events = 0;
  std::uint64_t envelopes = 0;
  /// Virtual time: windows granted. Real time: 0.
  std::uint64_t windows = 0;
  /// Compute requests run, and the batches they ran in (this process's
  /// GPU worker only).
  std::uint64_t compute_requests = 0;
  std::uint64_t compute_batches = 0;
  /// Emulated time reached: `end`, or less when interrupted.
  vtime reached;
  double wall_seconds = 0;
  std::size_t threads = 0;
  /// Stopped before `end`: by `stop`, or by a `failure`.
  bool interrupted = false;
  /// Single process: an exception out of an entity's code, the compute
  /// service or the conductor (what and where; e.g. out of memory), which
  /// stopped the run (virtual time: at the end of its window, or of the
  /// window before when the conductor failed granting one; real time: within
  /// 100 ms). Empty when none. In a distributed run's worker such an
  /// exception ends the process.
  std::string failure;
  /// The failure was running out of memory (std::bad_alloc).
  bool out_of_memory = false;
  /// Resident memory right before the entities' actors were spawned and
  /// right after (all idle) [bytes].
  std::uint64_t rss_before_spawn_bytes = 0;
  std::uint64_t rss_after_spawn_bytes = 0;
  /// Every entity's metric counters, summed, by name (sorted).
  std::map<std::string, std::uint64_t> counters;
  /// Real time only: lateness of each delivered event [ns].
  histogram lateness_ns;
  /// With `trace`: every processed event, sorted by (time, entity, source, sequence).
  std::vector<trace_record> trace;
};

/// What follows "out of memory" in the error of a scenario too big for the
/// process, found while it is built or while it runs.
inline constexpr const char* out_of_memory_advice =
  "this scenario needs more memory than the process may take (fewer entities, endpoints or "
  "pairs, a lower rate or smaller messages, a smaller compute.model, or a machine with more "
  "memory)";

/// The exit status of a process whose run ran out of memory where it cannot
/// stop in order (CAF's own allocations for an actor: its behaviour as it
/// starts, a message it sends outside the entity's code): `run` prints what
/// and where, with out_of_memory_advice, and ends the process with it. The
/// executable's exit code for input too big for the machine.
inline constexpr int exit_out_of_memory = 2;

/// Runs `entities` (entity i gets id i) until `opts.end`. Blocks until done;
/// afterwards the entities hold their final state and may be inspected. Out
/// of memory in an entity's code, the compute service or the conductor's
/// bookkeeping stops the run with `failure` and `out_of_memory` set; out of
/// memory elsewhere, once the first actor is spawned (in an actor, in a
/// thread of the actor system, or here while the actors run), ends the
/// process (exit_out_of_memory). Throws std::bad_alloc, before any actor is
/// spawned, where the process has no room for the run's threads and, in a
/// single process, its reserve.
run_result run(std::vector<std::unique_ptr<entity>>& entities, const run_options& opts);

/// Whether `threads` threads (0: one per core), and the few the actor
/// system adds, can start here: ResourceExhausted naming the count and why
/// when not (a memory limit that cannot hold their stacks). To be asked
/// before `run`, whose actor system would hang on the threads it could not
/// start.
absl::Status check_threads_can_start(std::size_t threads);

/// Combines per-entity fingerprints in id order into the run's fingerprint.
std::uint64_t combine_fingerprints(const std::vector<std::unique_ptr<entity>>& entities);

/// Fills the run's totals from the entities (fingerprint, events, envelopes,
/// counters), as `run` does at its end; used where entities' final states
/// were gathered from other nodes.
void tally_entities(const std::vector<std::unique_ptr<entity>>& entities, run_result& r);

} // namespace satemu::runtime
