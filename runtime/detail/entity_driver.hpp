/// Kernel-private access to an entity's event queue and bookkeeping.
#pragma once

#include "runtime/entity.hpp"

namespace satemu::runtime::detail {

/// The kernel's side of `entity`: queueing, processing, bookkeeping.
class entity_driver {
public:
  /// Binds an entity to its id, random stream, outbox and optional trace.
  /// `min_latency` is the lookahead: a send with a smaller latency is a
  /// broken invariant of the scenario and aborts with context.
  static void bind(entity& e, entity_id id, std::uint64_t seed, outbox* out,
                   duration min_latency, std::vector<trace_record>* trace);
  /// Runs `on_start` at time zero.
  static void start(entity& e);
  /// Queues an envelope handed over by entity `from`.
  static void push(entity& e, entity_id from, protocol::envelope&& env);
  /// Time of the earliest pending event, or `vtime::never()`.
  static vtime next_time(const entity& e);
  /// Processes, in order, every pending event with time < `end` (including
  /// ones scheduled while doing so); returns how many. Stops early after an
  /// event that made compute requests: the entity waits for their results.
  static std::uint64_t run_until(entity& e, vtime end);
  /// True when the entity made compute requests the kernel has not taken.
  static bool has_requests(const entity& e) { return !e.requests_.empty(); }
  /// Appends the entity's untaken compute requests to `out`, in request order.
  static void take_requests(entity& e, std::vector<compute_call>& out);
  /// Queues a finished request (its `ready` set by the service) as an event
  /// at `ready`. A ready time before the request, or never, aborts.
  static void push_result(entity& e, compute_call&& c);
  /// Runs a finished request's `on_compute` right away at its ready time
  /// (real-time mode).
  static void process_result(entity& e, compute_call&& c);
  /// Processes one envelope or timer right away at its own time (real-time
  /// mode, where arrival order is wall-clock order).
  static void process_now(entity& e, entity_id from, protocol::envelope&& env,
                          std::uint64_t tag);
  /// Takes the earliest pending event out of the queue, whatever its time;
  /// false when none is pending (real-time mode turns each into a delayed send).
  static bool pop(entity& e, protocol::envelope& env, std::uint64_t& tag);
  /// Drops every pending event (end of run).
  static void clear(entity& e);
  /// The entity's final state after a run on a worker: its bookkeeping
  /// (events, envelopes, fingerprint, counters), then `save_results`.
  static void save(const entity& e, protocol::byte_writer& w);
  /// Reads what `save` wrote into `e` (its twin on the coordinator).
  static void load(entity& e, protocol::byte_reader& r);

private:
  static void dispatch(entity& e, entity::pending& p);
  static void check_result(const entity& e, const compute_call& c);
  static entity::pending result_event(const entity& e, const compute_call& c);
};

} // namespace satemu::runtime::detail
