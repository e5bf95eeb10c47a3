/// satemu entities: the emulated things (satellites, users, model shards).
///
/// An entity is plain C++ driven by exactly one CAF actor of the kernel
/// (kernel.hpp); this header keeps CAF out of every workload. What an entity
/// sees is its own clock `now()`, `send()` of an envelope to another entity
/// with a latency, `schedule()` of a timer, its own random stream and its
/// counters. The kernel calls the hooks in the only order an entity ever sees
/// events: by `(time, source entity, source sequence)`, then by the entity
/// that handed the envelope over (copies of one message arriving together).
///
/// An entity that needs a kernel (a transformer layer, a compression) hands
/// a `compute_job` to `compute()`; the run's compute service (the GPU worker,
/// runtime/compute.hpp) batches it with the other requests of the window and
/// the job comes back, with its results, in `on_compute` at the request time
/// plus its modeled duration.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/envelope.hpp"
#include "runtime/rng.hpp"
#include "runtime/time.hpp"

namespace satemu::protocol {
class byte_writer;
class byte_reader;
} // namespace satemu::protocol

namespace satemu::runtime {

using entity_id = std::uint32_t;

/// Identifies a named metric counter; the same name gives the same id
/// everywhere in the process.
using counter_id = std::uint32_t;

/// The id of counter `name`, registering it on first use (thread-safe; call
/// it while building a workload, not per event).
counter_id register_counter(std::string_view name);
/// Every registered counter's name, indexed by id.
std::vector<std::string> counter_names();

namespace detail {
class entity_driver;
} // namespace detail

/// Where an entity's outgoing envelopes go; implemented by the kernel.
class outbox {
public:
  virtual ~outbox() = default;
  /// Takes an envelope whose header is complete, for delivery to the entity
  /// `hop` (its final destination or the next hop towards it).
  virtual void post(entity_id hop, protocol::envelope&& e) = 0;
};

/// Work an entity hands to the run's compute service. The service's owner
/// defines the kinds (gpu::compute_request); the kernel only carries them.
/// The same object comes back, with its results, in `entity::on_compute`.
class compute_job {
public:
  virtual ~compute_job();
};

/// One compute request on its way from an entity to the compute service and
/// back (runtime/compute.hpp).
struct compute_call {
  /// The requesting entity.
  entity_id entity = 0;
  /// The entity's sequence number for the request: orders its result among
  /// events of the same time, like a timer scheduled at the request.
  std::uint64_t seq = 0;
  /// The entity's own tag, handed back to `on_compute`.
  std::uint64_t tag = 0;
  /// When the entity asked.
  vtime at;
  /// Set by the service: when the result is available; never before `at`.
  vtime ready = vtime::never();
  std::unique_ptr<compute_job> job;
};

/// One processed event, kept when the run records a trace.
struct trace_record {
  std::int64_t time_ns;
  entity_id entity;
  entity_id src;
  std::uint64_t seq;
  /// The entity that handed it over (the previous hop; the entity itself for timers).
  entity_id from;
  protocol::kind k;
};

/// Base class of every emulated entity.
class entity {
public:
  entity() = default;
  entity(const entity&) = delete;
  entity& operator=(const entity&) = delete;
  virtual ~entity();

  entity_id id() const { return id_; }
  /// Current emulated time: the time of the event being processed.
  vtime now() const { return now_; }

  /// Events processed so far (envelopes and timers).
  std::uint64_t events() const { return events_; }
  /// Envelopes delivered to this entity and processed so far.
  std::uint64_t envelopes() const { return envelopes_; }
  /// Hash over this entity's processed events in processing order.
  std::uint64_t fingerprint() const { return fingerprint_; }
  /// Value of metric counter `id` (0 if never counted here).
  std::uint64_t counter(counter_id id) const {
    return id < counters_.size() && counters_[id] != uncounted ? counters_[id] : 0;
  }
  /// counters()'s value of a counter this entity never counted or declared.
  static constexpr std::uint64_t uncounted = ~std::uint64_t{0};
  /// Every counter of this entity, indexed by id: `uncounted` where it never
  /// counted or declared one (and past the end, which may come before the
  /// registry's).
  const std::vector<std::uint64_t>& counters() const { return counters_; }

  /// Distributed runs (runtime/distributed.hpp): the entity runs on a worker
  /// and its twin on the coordinator reports it. `save_results` writes what
  /// the workload reads from the entity after the run (samples, histograms,
  /// totals); `load_results` reads it back into the twin, reporting defects
  /// through the reader (`r.fail`). Kernel bookkeeping (events, fingerprint,
  /// counters) travels separately. The defaults save nothing.
  virtual void save_results(protocol::byte_writer& w) const {}
  virtual void load_results(protocol::byte_reader& r) {}

protected:
  /// Sends a new message to `dst`, delivered at `now() + latency`.
  void send(entity_id dst, duration latency, protocol::kind k, protocol::payload_ptr body);
  /// Sends a new message for `dst` to its first hop `next_hop`.
  void send_via(entity_id next_hop, entity_id dst, duration latency, protocol::kind k,
                protocol::payload_ptr body);
  /// Passes a received envelope on to `next_hop` (same header and payload,
  /// one hop more), delivered at `now() + latency`. The rvalue overload
  /// hands the envelope over without touching the payload's reference count.
  void forward(entity_id next_hop, duration latency, const protocol::envelope& in);
  void forward(entity_id next_hop, duration latency, protocol::envelope&& in);
  /// Fires `on_timer(tag)` at `now() + delay` (delay >= 0); never, where
  /// that time is past the last nanosecond time can hold.
  void schedule(duration delay, std::uint64_t tag);
  /// Hands `job` to the run's compute service; `on_compute(tag, job)` fires
  /// at the job's ready time, with the job's results: `now()` plus the
  /// job's modeled duration, after any wait for the entity's device to
  /// finish its earlier jobs (gpu/gpu_worker.hpp).
  /// In virtual time the entity then waits: it processes no later event
  /// until the window's requests have been flushed and its result's time is
  /// known (other requests of the same event handler still join the batch).
  /// A run without a compute service aborts with context.
  void compute(std::uint64_t tag, std::unique_ptr<compute_job> job);
  /// This entity's random stream: its workload's own draws.
  rng& random() { return rng_; }
  /// A second stream for the faults injected into its messages (losses,
  /// corruption), so that changing a fault rate leaves the workload's draws
  /// (prompts, arrivals, targets) as they were.
  rng& fault_random() { return fault_rng_; }
  /// Adds `n` to this entity's metric counter `id`; the kernel sums every
  /// entity's counters into the run's (summary.json `counters`).
  void count(counter_id id, std::uint64_t n = 1) {
    if (id >= counters_.size())
      counters_.resize(id + 1, uncounted);
    if (counters_[id] == uncounted)
      counters_[id] = 0;
    counters_[id] += n;
  }
  /// Counters this entity kind reports even while they stay 0: the run
  /// reports (summary.json `counters`) every counter that one of its
  /// entities counted or declared, and no other.
  void declare_counters(std::initializer_list<counter_id> ids) {
    for (const counter_id id : ids)
      count(id, 0);
  }

  /// Called once at time zero, before any other event.
  virtual void on_start() {}
  /// Called for each delivered envelope, at its delivery time. The envelope
  /// is the entity's: it may keep it or move it on with `forward`; the kernel
  /// drops whatever is left afterwards.
  virtual void on_envelope(protocol::envelope& e) = 0;
  /// Called for each timer, at its time.
  virtual void on_timer(std::uint64_t tag) {}
  /// Called for each finished compute request, at its result's time, with
  /// the job handed to `compute` (its results filled in).
  virtual void on_compute(std::uint64_t tag, std::unique_ptr<compute_job> job) {}
  /// Called after each of the three above returns: a place to let go of what
  /// must not outlive the event (a shared cache an idle entity would pin).
  virtual void after_event() {}

private:
  friend class detail::entity_driver;

  /// A pending event: an arrived envelope handed over by `from`, a timer
  /// (kind timer, src and from self, tag in `tag`), or a compute result
  /// (kind compute, src and from self, its job in `results_` under `seq`).
  struct pending {
    protocol::envelope env;
    std::uint64_t tag;
    entity_id from;
  };
  struct later {
    bool operator()(const pending& a, const pending& b) const {
      if (a.env.deliver_ns != b.env.deliver_ns)
        return a.env.deliver_ns > b.env.deliver_ns;
      if (a.env.src != b.env.src)
        return a.env.src > b.env.src;
      if (a.env.seq != b.env.seq)
        return a.env.seq > b.env.seq;
      return a.from > b.from;
    }
  };

  void check_latency(entity_id hop, duration latency) const;

  entity_id id_ = 0;
  vtime now_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_ = 0;
  std::uint64_t envelopes_ = 0;
  std::uint64_t fingerprint_ = 0;
  duration min_latency_ = duration::zero();
  outbox* outbox_ = nullptr;
  std::vector<trace_record>* trace_ = nullptr;
  rng rng_;
  rng fault_rng_;
  std::vector<pending> heap_;
  std::vector<std::uint64_t> counters_;
  /// Compute requests not yet taken by the kernel, and results whose event
  /// is pending (few: an entity waits on its requests).
  std::vector<compute_call> requests_;
  std::vector<compute_call> results_;
};

} // namespace satemu::runtime
