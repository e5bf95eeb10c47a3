#include "runtime/kernel.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <future>
#include <mutex>
#include <new>
#include <queue>
#include <string>
#include <system_error>
#include <thread>

#include <unistd.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "caf/all.hpp"
#include "kj/exception.h"
#include "protocol/caf_types.hpp"
#include "runtime/detail/address_space.hpp"
#include "runtime/detail/entity_driver.hpp"
#include "runtime/output.hpp"

namespace satemu::runtime {
namespace {
struct batch_ref;
struct call_ref;
} // namespace
} // namespace satemu::runtime

// Both only ever travel between the actors of one run, in process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(satemu::runtime::batch_ref)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(satemu::runtime::call_ref)

namespace satemu::runtime {
namespace {

/// Which batch of envelopes went where, and the earliest delivery time in it.
struct batch_note {
  entity_id dst = 0;
  std::int64_t first_ns = 0;
};

using start_atom = caf::atom_constant<caf::atom("start")>;
using grant_atom = caf::atom_constant<caf::atom("grant")>;
using finish_atom = caf::atom_constant<caf::atom("finish")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;
using window_atom = caf::atom_constant<caf::atom("window")>;
using timer_atom = caf::atom_constant<caf::atom("timer")>;
using flush_atom = caf::atom_constant<caf::atom("flush")>;
using flushed_atom = caf::atom_constant<caf::atom("flushed")>;
using compute_atom = caf::atom_constant<caf::atom("compute")>;

/// Virtual time: a window's compute requests, lent by a conductor to the GPU
/// worker actor until it answers.
struct batch_ref {
  std::vector<compute_call>* calls = nullptr;
};

/// Real time: one compute request on its way to the GPU worker actor, or
/// its result on the way back (CAF 0.17 messages must be copyable).
struct call_ref {
  std::shared_ptr<compute_call> call;
};

using driver = detail::entity_driver;
using wall_clock = std::chrono::steady_clock;

/// The envelopes one entity sent another in one window.
struct batch_node {
  batch_node* next = nullptr;
  entity_id from = 0;
  std::vector<protocol::envelope> envs;

  /// Deletes `b`; returns the batch after it.
  static batch_node* pop(batch_node* b) {
    auto* next = b->next;
    delete b;
    return next;
  }
};

/// Envelopes waiting for one entity: a lock-free stack of batches. Any entity
/// pushes during its window; the owner takes them all when it is granted the
/// next window that could hold them. The window barrier orders every push
/// before that grant.
class inbox {
public:
  inbox() = default;
  inbox(const inbox&) = delete;
  inbox& operator=(const inbox&) = delete;
  ~inbox() {
    for (auto* b = take_all(); b != nullptr;)
      b = batch_node::pop(b);
  }

  void push(batch_node* b) {
    b->next = head_.load(std::memory_order_relaxed);
    while (!head_.compare_exchange_weak(b->next, b, std::memory_order_release,
                                        std::memory_order_relaxed)) {
    }
  }

  batch_node* take_all() { return head_.exchange(nullptr, std::memory_order_acquire); }

private:
  std::atomic<batch_node*> head_{nullptr};
};

/// State shared by every actor of one run; read-only once the run starts,
/// apart from the progress counters.
struct run_shared {
  std::vector<caf::actor> directory;
  run_options opts;
  std::atomic<std::int64_t> now_ns{0};
  std::atomic<std::uint64_t> events{0};
  wall_clock::time_point wall_start;
  /// Per entity, filled only by that entity's actor: its trace (when
  /// tracing) and, in real time, its lateness.
  std::vector<std::vector<trace_record>> traces;
  std::vector<histogram> lateness;

  // Virtual time: a granted entity pushes its outgoing batches into the
  // destinations' inboxes, writes its window report into its own slots, then
  // counts itself off `outstanding`; the last one wakes the conductor. The
  // atomic's acquire/release orders the batches and slots before the next
  // grants, so a window costs one CAF message per granted entity: the grant,
  // which hands it every envelope due to it.
  std::unique_ptr<inbox[]> inboxes;
  std::atomic<std::size_t> outstanding{0};
  std::vector<std::int64_t> next_ns;
  std::vector<std::uint64_t> processed;
  std::vector<std::vector<batch_note>> notes;
  std::promise<run_result> done;

  // Compute (runtime/compute.hpp); all unused without a compute service.
  // A granted entity that made requests counts itself in `requesters`
  // before counting itself off the window, so a window without requests
  // costs the conductor one load.
  caf::actor worker;
  std::vector<entity*> entities;
  std::atomic<std::size_t> requesters{0};
  /// Written by the GPU worker actor only.
  std::atomic<std::uint64_t> compute_requests{0};
  std::atomic<std::uint64_t> compute_batches{0};

  // The first exception out of an entity's or the compute service's code
  // in a single process (run_guarded): the run stops as when interrupted.
  std::atomic<bool> failed{false};
  std::mutex failure_mu;
  std::string failure;
  bool out_of_memory = false;
  /// Single process: address space held back for the end of a run that ran
  /// out of memory, given back when a failed run is ended
  /// (ask_entities_to_finish). It lets the entities' finish messages, and
  /// the outputs after them, be allocated where the failure left the process
  /// at its limit: the sends had failed in turn, and the process ended with
  /// nothing written.
  detail::address_space_reserve reserve;

  void fail(std::string what, bool memory) {
    std::lock_guard<std::mutex> lock(failure_mu);
    if (failed.load(std::memory_order_relaxed))
      return;
    failure = std::move(what);
    out_of_memory = memory;
    failed.store(true, std::memory_order_release);
  }
};

std::chrono::nanoseconds wall_delay(const run_shared& shared, std::int64_t emulated_ns) {
  return std::chrono::nanoseconds(
    static_cast<std::int64_t>(static_cast<double>(emulated_ns) * shared.opts.dilation));
}

/// How long from now until emulated time `emulated_ns` is due on the wall
/// clock (0 when it is past). Measured from the run's start, not from the
/// handler that schedules it, so that a late handler does not pass its
/// lateness on to every event it causes.
std::chrono::nanoseconds until_due(const run_shared& shared, std::int64_t emulated_ns) {
  const auto due = shared.wall_start + wall_delay(shared, emulated_ns);
  return std::max(std::chrono::nanoseconds::zero(),
                  std::chrono::duration_cast<std::chrono::nanoseconds>(due - wall_clock::now()));
}

/// Sends `xs` from `self` to `dest` for the wall-clock time of emulated time
/// `emulated_ns`: through the actor system's clock while that is ahead, and
/// at once when it is due already. A run that fell behind then catches up at
/// the pace its threads run, without a wake-up of the clock's thread and then
/// of a worker for every message: on a host slow to wake an idle thread (a
/// busy VM: 10 ms and more each), a chain of 1 ms hops never caught up.
template <class... Ts>
void send_when_due(caf::event_based_actor* self, const run_shared& shared, const caf::actor& dest,
                   std::int64_t emulated_ns, Ts&&... xs) {
  if (const auto wait = until_due(shared, emulated_ns); wait > std::chrono::nanoseconds::zero())
    self->delayed_send(dest, wait, std::forward<Ts>(xs)...);
  else
    self->send(dest, std::forward<Ts>(xs)...);
}

/// Moves the compute requests of the `granted` entities (all reported) into
/// `batch`, sorted by (entity, request sequence): the order does not depend
/// on which thread ran which entity.
void gather_requests(run_shared& shared, const std::vector<entity_id>& granted,
                     std::vector<compute_call>& batch) {
  shared.requesters.store(0, std::memory_order_relaxed);
  if (shared.opts.compute.service == nullptr) {
    std::fprintf(stderr,
                 "satemu: internal error: an entity asked for compute, but the run has no "
                 "compute service (run_options.compute)\n");
    std::abort();
  }
  for (auto id : granted) {
    auto& e = *shared.entities[id];
    if (detail::entity_driver::has_requests(e))
      detail::entity_driver::take_requests(e, batch);
  }
  std::sort(batch.begin(), batch.end(), [](const compute_call& a, const compute_call& b) {
    return std::tie(a.entity, a.seq) < std::tie(b.entity, b.seq);
  });
}

/// Queues each answered request as an event of its entity (idle at the
/// barrier: the next grant publishes the change) and lowers the entity's
/// next-event time in the conductor's `next` and `queue` to its ready time.
template <class Queue>
void deliver_results(run_shared& shared, std::vector<compute_call>& batch,
                     std::vector<std::int64_t>& next, Queue& queue) {
  for (auto& c : batch) {
    const auto id = c.entity;
    const auto ready = c.ready.ns();
    detail::entity_driver::push_result(*shared.entities[id], std::move(c));
    if (ready < next[id]) {
      next[id] = ready;
      queue.push({ready, id});
    }
  }
  batch.clear();
}

/// What an exception says, and whether it means memory ran out.
struct exception_text {
  std::string what;
  bool memory = false;
};

exception_text text_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return {"out of memory (std::bad_alloc)", true};
  } catch (const kj::Exception& x) {
    // Cap'n Proto's own allocations fail as OVERLOADED.
    const bool memory = x.getType() == kj::Exception::Type::OVERLOADED;
    return {memory ? absl::StrCat("out of memory (", x.getDescription().cStr(), ")")
                   : std::string(x.getDescription().cStr()),
            memory};
  } catch (const std::exception& x) {
    return {x.what()};
  } catch (...) {
    return {"an exception of unknown type"};
  }
}

/// Runs `f`, code the run calls out to (an entity's, the compute
/// service's). In a single process an exception out of it (out of memory,
/// mostly) fails the run, naming `where()`, and the run stops (virtual
/// time: at the end of the window, still reported) so that the outputs so
/// far are written; in a distributed run it ends the worker
/// (end_on_exceptions), whose coordinator names it.
template <class F, class Where>
void run_guarded(run_shared& shared, F&& f, Where&& where) {
  if (shared.opts.share != nullptr) {
    f();
    return;
  }
  try {
    f();
  } catch (...) {
    const auto x = text_of(std::current_exception());
    shared.fail(x.memory ? absl::StrCat(x.what, " in ", where())
                         : absl::StrCat(x.what, " (in ", where(), ")"),
                x.memory);
  }
}

/// Ends the process for `e`, an exception the run cannot stop in order
/// after, saying what and where: an actor's handler or start outside the
/// code run_guarded covers (the actor would never report its window again,
/// and the run would wait for it forever), or a send that failed (CAF may
/// have queued the message but not scheduled its receiver). Out of memory
/// (CAF's own allocations in a scenario too big for the machine) is the
/// user's error, with the advice and exit_out_of_memory; anything else is
/// satemu's (abort).
[[noreturn]] void end_process(const run_options& opts, const std::exception_ptr& e,
                              const std::string& where) {
  // The text may find no memory left either.
  exception_text x{"out of memory", true};
  try {
    x = text_of(e);
  } catch (const std::bad_alloc&) {
  }
  if (!x.memory) {
    std::fprintf(stderr, "satemu: internal error: %s in %s; the run cannot go on\n",
                 x.what.c_str(), where.c_str());
    std::abort();
  }
  // A worker's coordinator says what becomes of the run. After a progress
  // line (stderr on a terminal), the error is on a line of its own.
  const bool here = opts.share == nullptr;
  std::fprintf(stderr, "%ssatemu: error: %s in %s: %s\n%s",
               isatty(fileno(stderr)) != 0 ? "\r\033[K" : "", x.what.c_str(), where.c_str(),
               out_of_memory_advice,
               here ? "[satemu] the run cannot go on: no outputs written\n" : "");
  std::fflush(stderr);
  if (opts.before_exit) {
    try {
      opts.before_exit();
    } catch (...) {
    }
  }
  std::_Exit(exit_out_of_memory);
}

/// While a run is on, std::terminate for an exception nothing caught ends the
/// process as end_process does: std::bad_alloc out of the actor system's own
/// threads (its scheduler's queues, its middleman), outside any actor's
/// handler, which would otherwise abort with the C++ runtime's one line.
/// Runs may overlap (tests); while more than one is on, none of them is
/// named, and no before_exit is called.
class terminate_guard {
public:
  explicit terminate_guard(const run_options& opts) {
    const std::lock_guard<std::mutex> lock(mu_);
    if (depth_++ == 0) {
      opts_ = &opts;
      previous_ = std::set_terminate(&on_terminate);
    } else {
      opts_ = &anonymous_; // until the last of the overlapping runs ends
    }
  }
  ~terminate_guard() {
    const std::lock_guard<std::mutex> lock(mu_);
    if (--depth_ == 0) {
      std::set_terminate(previous_);
      opts_ = nullptr;
    }
  }
  terminate_guard(const terminate_guard&) = delete;
  terminate_guard& operator=(const terminate_guard&) = delete;

private:
  [[noreturn]] static void on_terminate() {
    const std::exception_ptr e = std::current_exception();
    const run_options* opts = nullptr;
    std::terminate_handler previous = nullptr;
    {
      const std::lock_guard<std::mutex> lock(mu_);
      opts = opts_;
      previous = previous_;
    }
    if (e != nullptr && opts != nullptr)
      end_process(*opts, e, "a thread of the run");
    if (previous != nullptr)
      previous();
    std::abort();
  }

  static inline std::mutex mu_;
  static inline int depth_ = 0;
  static inline const run_options* opts_ = nullptr;
  static inline std::terminate_handler previous_ = nullptr;
  static inline const run_options anonymous_{};
};

/// Makes an exception out of an actor's handler or its start, outside the
/// code run_guarded covers, end the process (end_process).
void end_on_exceptions(caf::scheduled_actor& self, const run_shared& shared, std::string where) {
  self.set_exception_handler([where = std::move(where), opts = &shared.opts](
                               caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
    end_process(*opts, e, where);
  });
}

/// The GPU worker actor: hosts the run's compute service (for the run's
/// lifetime, so it owns the backend in effect). Virtual time: runs a
/// conductor's batch and answers. Real time: collects requests as entities
/// make them and runs them as one batch when `realtime_max_batch` are waiting
/// or `realtime_window` after the first, then sends each result to its
/// entity for the wall-clock time of its ready time.
class compute_worker_actor final : public caf::event_based_actor {
public:
  compute_worker_actor(caf::actor_config& cfg, run_shared* shared)
    : caf::event_based_actor(cfg), shared_(shared) {
    end_on_exceptions(*this, *shared_, "the run's compute worker");
  }

  caf::behavior make_behavior() override {
    return {
      [this](flush_atom, batch_ref b) {
        run_batch(*b.calls);
        return flushed_atom::value;
      },
      [this](compute_atom, call_ref& c) {
        pending_.push_back(std::move(*c.call));
        if (pending_.size() >= std::max<std::size_t>(1, shared_->opts.compute.realtime_max_batch))
          flush_realtime();
        else if (pending_.size() == 1)
          delayed_send(this, shared_->opts.compute.realtime_window, flush_atom::value, generation_);
      },
      [this](flush_atom, std::uint64_t generation) {
        if (generation == generation_ && !pending_.empty())
          flush_realtime();
      },
      [this](finish_atom) { quit(); },
    };
  }

private:
  /// Runs `calls` on the compute service. If it fails (run_guarded), the
  /// run stops and no call is answered.
  void run_batch(std::vector<compute_call>& calls) {
    bool done = false;
    run_guarded(
      *shared_,
      [&] {
        shared_->opts.compute.service->run(calls);
        done = true;
      },
      [] { return std::string("the compute service"); });
    if (!done) {
      calls.clear();
      return;
    }
    shared_->compute_batches.fetch_add(1, std::memory_order_relaxed);
    shared_->compute_requests.fetch_add(calls.size(), std::memory_order_relaxed);
  }

  void flush_realtime() {
    ++generation_; // a pending window timer belongs to this batch
    std::vector<compute_call> batch = std::move(pending_);
    pending_.clear();
    std::sort(batch.begin(), batch.end(), [](const compute_call& a, const compute_call& b) {
      return std::tie(a.entity, a.seq) < std::tie(b.entity, b.seq);
    });
    run_batch(batch);
    for (auto& c : batch) {
      // A result due at or after the end is never delivered (the entity
      // would drop it), and its wall-clock time may lie beyond the clock's.
      if (c.ready.ns() >= shared_->opts.end.ns())
        continue;
      const auto& dst = shared_->directory[c.entity];
      send_when_due(this, *shared_, dst, c.ready.ns(), compute_atom::value,
                    call_ref{std::make_shared<compute_call>(std::move(c))});
    }
  }

  run_shared* shared_;
  std::vector<compute_call> pending_;
  std::uint64_t generation_ = 0;
};

/// Asks every entity actor to finish (each answers `finished` and quits);
/// returns how many answers to wait for. A failed run first gives back its
/// reserve of address space.
template <class Self>
std::size_t ask_entities_to_finish(Self* self, run_shared& shared) {
  if (shared.failed.load(std::memory_order_acquire))
    shared.reserve.release();
  std::size_t n = 0;
  for (auto& a : shared.directory)
    if (a) {
      self->send(a, finish_atom::value);
      ++n;
    }
  return n;
}

/// Collects a window's outgoing envelopes per destination.
class batching_outbox final : public outbox {
public:
  void post(entity_id hop, protocol::envelope&& e) override {
    auto& slot = slot_for(hop);
    slot.first_ns = std::min(slot.first_ns, e.deliver_ns);
    slot.batch->envs.push_back(std::move(e));
  }

  /// Hands each destination its batch and records in `notes` what went where.
  void flush(entity_id from, inbox* inboxes, std::vector<batch_note>& notes) {
    notes.clear();
    for (auto& s : slots_) {
      notes.push_back({s.dst, s.first_ns});
      s.batch->from = from;
      inboxes[s.dst].push(s.batch.release());
    }
    slots_.clear();
    index_.clear();
  }

private:
  struct slot {
    entity_id dst;
    std::int64_t first_ns;
    std::unique_ptr<batch_node> batch;
  };

  slot& slot_for(entity_id dst) {
    // Most entities talk to a handful of neighbours: a linear scan is fastest
    // there; an index takes over for fan-out to many destinations.
    if (slots_.size() <= linear_limit) {
      for (auto& s : slots_)
        if (s.dst == dst)
          return s;
    } else {
      if (index_.empty())
        for (std::size_t i = 0; i < slots_.size(); ++i)
          index_.emplace(slots_[i].dst, i);
      if (auto it = index_.find(dst); it != index_.end())
        return slots_[it->second];
      index_.emplace(dst, slots_.size());
    }
    slots_.push_back(
      {dst, std::numeric_limits<std::int64_t>::max(), std::make_unique<batch_node>()});
    slots_.back().batch->envs.reserve(4);
    return slots_.back();
  }

  static constexpr std::size_t linear_limit = 16;
  std::vector<slot> slots_;
  absl::flat_hash_map<entity_id, std::size_t> index_;
};

/// Runs `f`, entity `id`'s own code, under run_guarded.
template <class F>
void run_entity_code(run_shared& shared, entity_id id, F&& f) {
  run_guarded(shared, std::forward<F>(f), [id] { return absl::StrCat("entity ", id); });
}

/// Drives one entity in virtual time.
class vt_entity_actor final : public caf::event_based_actor {
public:
  vt_entity_actor(caf::actor_config& cfg, entity* e, entity_id id, run_shared* shared,
                  caf::actor conductor)
    : caf::event_based_actor(cfg), e_(e), id_(id), shared_(shared),
      conductor_(std::move(conductor)) {
    driver::bind(*e_, id_, shared_->opts.seed, &out_, shared_->opts.lookahead,
                 shared_->opts.trace ? &shared_->traces[id_] : nullptr);
    end_on_exceptions(*this, *shared_, absl::StrCat("entity ", id_));
  }

  caf::behavior make_behavior() override {
    if (id_ + 1 == shared_->opts.faults.entity_start)
      throw std::bad_alloc();
    return {
      [this](start_atom) {
        run_entity_code(*shared_, id_, [&] { driver::start(*e_); });
        report(0);
      },
      [this](grant_atom, std::int64_t window_end) {
        std::uint64_t processed = 0;
        auto* b = shared_->inboxes[id_].take_all();
        run_entity_code(*shared_, id_, [&] {
          for (; b != nullptr; b = batch_node::pop(b))
            for (auto& env : b->envs)
              driver::push(*e_, b->from, std::move(env));
          processed = driver::run_until(*e_, vtime::from_ns(window_end));
        });
        while (b != nullptr) // what an exception left
          b = batch_node::pop(b);
        report(processed);
      },
      [this](finish_atom) {
        driver::clear(*e_);
        send(conductor_, finished_atom::value, id_);
        quit();
      },
    };
  }

private:
  void report(std::uint64_t processed) {
    out_.flush(id_, shared_->inboxes.get(), shared_->notes[id_]);
    shared_->next_ns[id_] = driver::next_time(*e_).ns();
    shared_->processed[id_] = processed;
    if (driver::has_requests(*e_))
      shared_->requesters.fetch_add(1, std::memory_order_relaxed);
    if (shared_->outstanding.fetch_sub(1, std::memory_order_acq_rel) == 1)
      send(conductor_, window_atom::value);
  }

  entity* e_;
  entity_id id_;
  run_shared* shared_;
  caf::actor conductor_;
  batching_outbox out_;
};

/// What the conductors of a single-process run and of a distributed run's
/// node share: taking in the granted entities' reports, the window's compute
/// batch, granting the entities due in a window, and the end of the run.
class conductor_base : public caf::event_based_actor {
public:
  conductor_base(caf::actor_config& cfg, run_shared* shared, std::size_t n)
    : caf::event_based_actor(cfg), shared_(shared), next_(n, vtime::never().ns()) {
    end_on_exceptions(*this, *shared_, "the run's conductor");
  }

protected:
  using item = std::pair<std::int64_t, entity_id>;

  /// The run's common messages; `start` differs per conductor.
  caf::behavior behavior_with(std::function<void()> on_start) {
    return {
      [this, on_start](start_atom) { at_barrier(on_start); },
      [this](window_atom) { at_barrier([this] { end_window(); }); },
      [this](finished_atom, entity_id) {
        if (--outstanding_ == 0)
          deliver();
      },
    };
  }

  /// Runs `f`, the conductor's own work at a barrier: its bookkeeping and
  /// the next window's grants. In a single process an exception out of it
  /// (out of memory, mostly) fails the run as one out of an entity does
  /// (run_guarded), and the run ends at `last_end_`: entities granted part
  /// of a window run it, then finish (a grant that fails to go out ends the
  /// process instead: send_or_end). In a distributed run it ends the
  /// worker (end_on_exceptions).
  template <class F>
  void at_barrier(F&& f) {
    bool done = false;
    run_guarded(
      *shared_,
      [&] {
        f();
        done = true;
      },
      [] { return std::string("the run's conductor"); });
    if (!done)
      finish(true, last_end_);
  }

  /// Every granted entity has reported.
  virtual void end_window() = 0;
  /// The window is over, its compute batch (if any) delivered.
  virtual void after_window() = 0;

  /// Takes in the granted entities' next-event times, then the deliveries
  /// their senders announced (after every entity's own report, so a report
  /// cannot hide an envelope another entity sent it). `elsewhere(dst)` says
  /// whether `dst` is not driven here (its note is left to the caller).
  /// Returns the events processed in the window.
  template <class Elsewhere>
  std::uint64_t absorb_reports(Elsewhere&& elsewhere) {
    // The counter reaching zero orders the entities' slots before this read.
    std::atomic_thread_fence(std::memory_order_acquire);
    std::uint64_t processed = 0;
    for (auto id : granted_) {
      const auto next = shared_->next_ns[id];
      next_[id] = next;
      if (next != vtime::never().ns())
        queue_.push({next, id});
      processed += shared_->processed[id];
    }
    for (auto id : granted_)
      for (const auto& n : shared_->notes[id]) {
        if (elsewhere(n.dst))
          continue;
        if (n.first_ns < next_[n.dst]) {
          next_[n.dst] = n.first_ns;
          queue_.push({n.first_ns, n.dst});
        }
      }
    events_ += processed;
    shared_->events.store(events_, std::memory_order_relaxed);
    return processed;
  }

  /// Runs the window's compute requests, if any, as one batch on the GPU
  /// worker (every granted entity is done or waiting), queues their
  /// results, then `after_window()`.
  void finish_window() {
    if (shared_->requesters.load(std::memory_order_relaxed) != 0) {
      gather_requests(*shared_, granted_, batch_);
      granted_.clear();
      send_or_end([&] {
        request(shared_->worker, caf::infinite, flush_atom::value, batch_ref{&batch_})
          .then([this](flushed_atom) {
            at_barrier([this] {
              deliver_results(*shared_, batch_, next_, queue_);
              after_window();
            });
          });
      });
      return;
    }
    granted_.clear();
    after_window();
  }

  /// Drops queue entries that are stale (an entity's next time changed or
  /// it was granted since).
  void skip_stale() {
    while (!queue_.empty() && next_[queue_.top().second] != queue_.top().first)
      queue_.pop();
  }

  /// Grants every entity due before `window_end`; returns how many.
  std::size_t grant_due(std::int64_t window_end) {
    while (!queue_.empty() && queue_.top().first < window_end) {
      auto [time, id] = queue_.top();
      queue_.pop();
      if (next_[id] != time)
        continue;
      next_[id] = vtime::never().ns();
      granted_.push_back(id);
    }
    if (granted_.empty())
      return 0;
    ++windows_;
    // Count first: a granted entity may report before the last grant is sent.
    shared_->outstanding.store(granted_.size(), std::memory_order_release);
    const auto& faults = shared_->opts.faults;
    for (std::size_t i = 0; i < granted_.size(); ++i) {
      if (windows_ == faults.conductor_at_window && i == granted_.size() / 2)
        throw std::bad_alloc();
      send_or_end([&] {
        if (windows_ == faults.conductor_send_at_window && i == granted_.size() / 2)
          throw std::bad_alloc();
        send(shared_->directory[granted_[i]], grant_atom::value, window_end);
      });
    }
    return granted_.size();
  }

  /// Sends `start` to the entities in `granted_`.
  void start_granted() {
    shared_->outstanding.store(granted_.size(), std::memory_order_release);
    for (auto id : granted_)
      send_or_end([&] { send(shared_->directory[id], start_atom::value); });
  }

  /// Runs `f`, a send of the conductor's. One that fails (out of memory) may
  /// have queued its message but left the receiver unscheduled (CAF's
  /// scheduler queue could not grow), which would then never answer: the run
  /// cannot end in order, and the process ends (end_process).
  template <class F>
  void send_or_end(F&& f) {
    try {
      f();
    } catch (...) {
      end_process(shared_->opts, std::current_exception(), "the run's conductor");
    }
  }

  /// Ends the run at emulated time `reached`.
  void finish(bool interrupted, std::int64_t reached) {
    interrupted_ = interrupted;
    reached_ = reached;
    outstanding_ = ask_entities_to_finish(this, *shared_);
    if (outstanding_ == 0)
      deliver();
  }

  void deliver() {
    run_result r;
    r.windows = windows_;
    r.interrupted = interrupted_;
    r.reached = vtime::from_ns(reached_);
    shared_->done.set_value(std::move(r));
    quit();
  }

  run_shared* shared_;
  std::vector<std::int64_t> next_;
  std::priority_queue<item, std::vector<item>, std::greater<item>> queue_;
  std::vector<entity_id> granted_;
  std::vector<compute_call> batch_;
  std::size_t outstanding_ = 0;
  std::uint64_t events_ = 0;
  std::uint64_t windows_ = 0;
  /// Single process: the end of the last window granted to every entity due
  /// in it; every event before it has run once that window is reported.
  std::int64_t last_end_ = 0;
  std::int64_t reached_ = 0;
  bool interrupted_ = false;
};

/// Grants windows and detects their end (DESIGN.md, The virtual-time kernel).
class conductor_actor final : public conductor_base {
public:
  using conductor_base::conductor_base;

  caf::behavior make_behavior() override {
    return behavior_with([this] {
      const auto n = shared_->directory.size();
      if (n == 0) {
        finish(false, shared_->opts.end.ns());
        return;
      }
      granted_.resize(n);
      for (std::size_t i = 0; i < n; ++i)
        granted_[i] = static_cast<entity_id>(i);
      start_granted();
    });
  }

private:
  void end_window() override {
    absorb_reports([](entity_id) { return false; });
    finish_window();
  }

  /// Ends the run, or grants the window starting at the earliest pending event.
  void after_window() override {
    if ((shared_->opts.stop != nullptr && shared_->opts.stop->load()) ||
        shared_->failed.load(std::memory_order_acquire)) {
      // Every event before the end of the last window has run.
      finish(true, last_end_);
      return;
    }
    skip_stale();
    const auto end = shared_->opts.end.ns();
    if (queue_.empty() || queue_.top().first >= end) {
      finish(false, end);
      return;
    }
    const auto t = queue_.top().first;
    shared_->now_ns.store(t, std::memory_order_relaxed);
    // Saturating: a lookahead near the largest time must not wrap.
    const auto window_end =
      std::min(end, vtime::from_ns(t).plus_or_never(shared_->opts.lookahead).ns());
    grant_due(window_end);
    last_end_ = window_end;
  }
};

/// One node's conductor in a distributed run (DESIGN.md, The virtual-time
/// kernel, step 5). It drives the node's own entities like `conductor_actor`
/// but does not choose windows: at each barrier it hands the node's report
/// (next event time, events, envelopes for other nodes' entities) to the
/// exchange and gets the next window from the coordinator, with the
/// envelopes other nodes sent this one. Blocking in `exchange` is fine: every
/// entity of the node is idle at a barrier.
class node_conductor_actor final : public conductor_base {
public:
  node_conductor_actor(caf::actor_config& cfg, run_shared* shared, std::size_t n)
    : conductor_base(cfg, shared, n), share_(*shared->opts.share), touched_(n, 0) {
  }

  caf::behavior make_behavior() override {
    return behavior_with([this] {
      for (std::size_t i = 0; i < share_.node_of.size(); ++i)
        if (share_.node_of[i] == share_.node)
          granted_.push_back(static_cast<entity_id>(i));
      if (granted_.empty())
        end_window();
      else
        start_granted();
    });
  }

private:
  bool local(entity_id id) const {
    return share_.node_of[id] == share_.node;
  }

  void end_window() override {
    remote_.clear();
    report_.events = absorb_reports([&](entity_id dst) {
      if (local(dst))
        return false;
      if (touched_[dst] == 0) {
        touched_[dst] = 1;
        remote_.push_back(dst);
      }
      return true;
    });
    // Envelopes for other nodes' entities sit in those entities' inboxes
    // here; they leave as bytes with the report.
    for (auto dst : remote_) {
      touched_[dst] = 0;
      for (auto* b = shared_->inboxes[dst].take_all(); b != nullptr; b = batch_node::pop(b))
        for (auto& env : b->envs)
          report_.outgoing.push_back({dst, b->from, std::move(env)});
    }
    // Requests stay on their node: this node's GPU worker runs them before
    // the report, whose next-event time then counts their results.
    finish_window();
  }

  /// Reports to the coordinator and grants the node's share of the next
  /// window, until a window has entities here or the run stops.
  void after_window() override {
    while (true) {
      skip_stale();
      report_.next_ns = queue_.empty() ? vtime::never().ns() : queue_.top().first;
      auto grant = share_.exchange->exchange(std::move(report_));
      report_ = window_report{};
      if (grant.stop) {
        finish(grant.interrupted, grant.window_end);
        return;
      }
      for (auto& in : grant.incoming) {
        if (!local(in.hop))
          continue; // the exchange checked this; never deliver elsewhere
        const auto t = in.env.deliver_ns;
        auto* b = new batch_node;
        b->from = in.from;
        b->envs.push_back(std::move(in.env));
        shared_->inboxes[in.hop].push(b);
        if (t < next_[in.hop]) {
          next_[in.hop] = t;
          queue_.push({t, in.hop});
        }
      }
      shared_->now_ns.store(grant.window_end - shared_->opts.lookahead.ns(),
                            std::memory_order_relaxed);
      if (grant_due(grant.window_end) > 0)
        return;
      // Nothing due here in this window: report at once.
    }
  }

  const node_share& share_;
  /// Entities of other nodes that got envelopes this window (flagged in
  /// `touched_`); kept to reuse its memory.
  std::vector<std::uint8_t> touched_;
  std::vector<entity_id> remote_;
  window_report report_;
};

/// Drives one entity in real time: each send becomes a delayed CAF message.
class rt_entity_actor final : public caf::event_based_actor, public outbox {
public:
  rt_entity_actor(caf::actor_config& cfg, entity* e, entity_id id, run_shared* shared,
                  caf::actor collector)
    : caf::event_based_actor(cfg), e_(e), id_(id), shared_(shared),
      collector_(std::move(collector)) {
    driver::bind(*e_, id_, shared_->opts.seed, this, duration::zero(),
                 shared_->opts.trace ? &shared_->traces[id_] : nullptr);
    end_on_exceptions(*this, *shared_, absl::StrCat("entity ", id_));
  }

  void post(entity_id hop, protocol::envelope&& env) override {
    // Due at or after the end: never delivered (the receiver would drop it).
    if (env.deliver_ns >= shared_->opts.end.ns())
      return;
    send_when_due(this, *shared_, shared_->directory[hop], env.deliver_ns, id_, std::move(env));
  }

  caf::behavior make_behavior() override {
    return {
      [this](start_atom) {
        run_entity_code(*shared_, id_, [&] { driver::start(*e_); });
        arm_timers();
        send_requests();
      },
      [this](entity_id from, protocol::envelope& env) { deliver(from, std::move(env), 0); },
      [this](timer_atom, protocol::envelope& env, std::uint64_t tag) {
        deliver(id_, std::move(env), tag);
      },
      [this](compute_atom, call_ref& c) {
        if (c.call->ready.ns() >= shared_->opts.end.ns())
          return;
        if (shared_->failed.load(std::memory_order_relaxed))
          return; // the run is stopping
        note_lateness(c.call->ready.ns());
        c.call->ready = vtime::from_ns(not_before(c.call->ready.ns()));
        run_entity_code(*shared_, id_, [&] { driver::process_result(*e_, std::move(*c.call)); });
        after_event();
      },
      [this](finish_atom) {
        send(collector_, finished_atom::value, id_);
        quit();
      },
    };
  }

private:
  std::chrono::nanoseconds wall_delay(std::int64_t emulated_ns) const {
    return runtime::wall_delay(*shared_, emulated_ns);
  }

  void note_lateness(std::int64_t emulated_ns) {
    const auto intended = shared_->wall_start + wall_delay(emulated_ns);
    const auto late = wall_clock::now() - intended;
    shared_->lateness[id_].record(
      std::chrono::duration_cast<std::chrono::nanoseconds>(late).count());
  }

  void deliver(entity_id from, protocol::envelope&& env, std::uint64_t tag) {
    if (env.deliver_ns >= shared_->opts.end.ns() || shared_->failed.load(std::memory_order_relaxed))
      return; // past the end, or the run is stopping
    note_lateness(env.deliver_ns);
    env.deliver_ns = not_before(env.deliver_ns);
    run_entity_code(*shared_, id_, [&] { driver::process_now(*e_, from, std::move(env), tag); });
    after_event();
  }

  /// The time to handle an event due at `due_ns`: then, or, when it comes
  /// late, after an event due later, at that one's time. The entity's time
  /// never goes back (its link queues and timings count on it: a late
  /// message handled at its own time had met a queue busy into its future,
  /// and a device free before it was taken).
  std::int64_t not_before(std::int64_t due_ns) {
    last_ns_ = std::max(last_ns_, due_ns);
    return last_ns_;
  }

  void after_event() {
    shared_->events.fetch_add(1, std::memory_order_relaxed);
    arm_timers();
    send_requests();
  }

  /// Hands the compute requests the entity just made to the GPU worker actor.
  void send_requests() {
    if (!driver::has_requests(*e_))
      return;
    if (!shared_->worker) {
      std::fprintf(stderr,
                   "satemu: internal error: entity %u asked for compute, but the run has no "
                   "compute service\n",
                   id_);
      std::abort();
    }
    calls_.clear();
    driver::take_requests(*e_, calls_);
    for (auto& c : calls_)
      send(shared_->worker, compute_atom::value,
           call_ref{std::make_shared<compute_call>(std::move(c))});
    calls_.clear();
  }

  /// Turns timers the entity just scheduled into delayed messages to itself.
  void arm_timers() {
    protocol::envelope env;
    std::uint64_t tag = 0;
    while (driver::pop(*e_, env, tag))
      if (env.deliver_ns < shared_->opts.end.ns())
        send_when_due(this, *shared_, caf::actor_cast<caf::actor>(this), env.deliver_ns,
                      timer_atom::value, std::move(env), tag);
  }

  entity* e_;
  entity_id id_;
  run_shared* shared_;
  caf::actor collector_;
  std::vector<compute_call> calls_;
  /// The time of the latest event handled (not_before).
  std::int64_t last_ns_ = 0;
};

/// Real time: gathers the entities' final reports.
class rt_collector_actor final : public caf::event_based_actor {
public:
  rt_collector_actor(caf::actor_config& cfg, run_shared* shared)
    : caf::event_based_actor(cfg), shared_(shared) {
    end_on_exceptions(*this, *shared_, "the run's collector");
  }

  caf::behavior make_behavior() override {
    return {
      [this](finish_atom, std::int64_t reached, bool interrupted) {
        reached_ = reached;
        interrupted_ = interrupted;
        outstanding_ = ask_entities_to_finish(this, *shared_);
        if (outstanding_ == 0)
          deliver();
      },
      [this](finished_atom, entity_id) {
        if (--outstanding_ == 0)
          deliver();
      },
    };
  }

private:
  void deliver() {
    run_result r;
    r.interrupted = interrupted_;
    r.reached = vtime::from_ns(reached_);
    shared_->done.set_value(std::move(r));
    quit();
  }

  run_shared* shared_;
  std::size_t outstanding_ = 0;
  std::int64_t reached_ = 0;
  bool interrupted_ = false;
};

} // namespace

std::uint64_t combine_fingerprints(const std::vector<std::unique_ptr<entity>>& entities) {
  std::uint64_t h = hash_combine(0, entities.size());
  // Entity i has id i (a twin on a distributed run's coordinator was never
  // bound, so its id() is not set).
  for (std::size_t i = 0; i < entities.size(); ++i) {
    h = hash_combine(h, i);
    h = hash_combine(h, entities[i]->fingerprint());
  }
  return h;
}

absl::Status check_threads_can_start(std::size_t threads) {
  const auto n = static_cast<std::size_t>(threads_or_cores(static_cast<std::int64_t>(threads)));
  constexpr std::size_t extra = detail::caf_extra_threads;
  std::mutex mu;
  std::condition_variable cv;
  bool go = false;
  std::vector<std::thread> started;
  std::string why;
  try {
    started.reserve(n + extra);
    for (std::size_t i = 0; i < n + extra; ++i)
      started.emplace_back([&] {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return go; });
      });
  } catch (const std::system_error& e) {
    why = e.what();
  } catch (const std::bad_alloc&) {
    why = "out of memory";
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    go = true;
  }
  cv.notify_all();
  for (auto& t : started)
    t.join();
  if (why.empty())
    return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
    "cannot start the run's ", n, " scheduler threads (", started.size(), " of ", n + extra,
    " threads started, then: ", why,
    "): ask for fewer threads, or let the process take more memory"));
}

run_result run(std::vector<std::unique_ptr<entity>>& entities, const run_options& opts) {
  const auto threads =
    static_cast<std::size_t>(threads_or_cores(static_cast<std::int64_t>(opts.threads)));
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", threads);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  // Work stealing starves here: the conductor wakes every granted entity from
  // one worker, and the other workers back off into millisecond sleeps
  // between steals (2 threads ran 3x slower than 1). A shared queue wakes
  // them at once.
  cfg.set("scheduler.policy", caf::atom("sharing"));
  protocol::register_protocol_types(cfg);
  // Room for the actor system's threads and then, in a single process, for
  // the run's reserve, or std::bad_alloc here, the user's error: with none
  // left for them, a thread CAF starts ends the process in glibc or the
  // allocator, with no word.
  const std::size_t reserve_bytes =
    opts.share == nullptr ? (std::size_t{64} << 20) + entities.size() * 1024 : 0;
  const std::size_t thread_bytes =
    (threads + detail::caf_extra_threads) * detail::thread_room_bytes;
  if (!detail::address_space_room(reserve_bytes + thread_bytes))
    throw std::bad_alloc();
  // Declared before the actor system, so that it is on until every thread
  // of it has ended.
  const terminate_guard on_terminate(opts);
  caf::actor_system sys{cfg};

  run_shared shared;
  shared.opts = opts;
  auto future = shared.done.get_future();
  const auto n = entities.size();
  shared.directory.reserve(n);
  if (opts.trace)
    shared.traces.resize(n);
  if (opts.mode == clock_mode::real_time) {
    shared.lateness.resize(n);
  } else {
    shared.next_ns.assign(n, vtime::never().ns());
    shared.processed.assign(n, 0);
    shared.notes.resize(n);
    shared.inboxes = std::make_unique<inbox[]>(n);
  }

  if (opts.compute.service != nullptr) {
    shared.entities.reserve(n);
    for (auto& e : entities)
      shared.entities.push_back(e.get());
  }

  if (opts.share == nullptr && !shared.reserve.hold(reserve_bytes))
    throw std::bad_alloc();
  const auto rss_before = current_rss_bytes();
  const auto wall0 = wall_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(wall_clock::now() - wall0).count(); };
  run_result result;
  std::uint64_t rss_after = 0;
  // Once an actor is spawned, an exception cannot unwind out of here: the
  // actors use `shared`, which would go first, while they still run (real
  // time: an entity's timers fired into actors being destroyed). It ends
  // the process instead, as one the run cannot stop in order after.
  try {
    if (opts.compute.service != nullptr)
      shared.worker = sys.spawn<compute_worker_actor>(&shared);
    caf::actor boss;
    if (opts.mode == clock_mode::virtual_time && opts.share != nullptr) {
      boss = sys.spawn<node_conductor_actor>(&shared, n);
      shared.directory.resize(n);
      for (std::size_t i = 0; i < n; ++i)
        if (opts.share->node_of[i] == opts.share->node)
          shared.directory[i] = sys.spawn<vt_entity_actor>(
            entities[i].get(), static_cast<entity_id>(i), &shared, boss);
      rss_after = current_rss_bytes();
      caf::anon_send(boss, start_atom::value);
    } else if (opts.mode == clock_mode::virtual_time) {
      boss = sys.spawn<conductor_actor>(&shared, n);
      for (std::size_t i = 0; i < n; ++i)
        shared.directory.push_back(sys.spawn<vt_entity_actor>(
          entities[i].get(), static_cast<entity_id>(i), &shared, boss));
      rss_after = current_rss_bytes();
      caf::anon_send(boss, start_atom::value);
    } else {
      boss = sys.spawn<rt_collector_actor>(&shared);
      for (std::size_t i = 0; i < n; ++i)
        shared.directory.push_back(sys.spawn<rt_entity_actor>(
          entities[i].get(), static_cast<entity_id>(i), &shared, boss));
      rss_after = current_rss_bytes();
      shared.wall_start = wall_clock::now();
      for (auto& a : shared.directory)
        caf::anon_send(a, start_atom::value);
    }

    if (opts.faults.thread_escape)
      std::thread([] { throw std::bad_alloc(); }).join();
    if (opts.faults.main_after_start)
      throw std::bad_alloc();
    auto report = [&](vtime now) {
      if (opts.on_progress)
        opts.on_progress({now, shared.events.load(std::memory_order_relaxed), elapsed()});
    };
    if (opts.mode == clock_mode::real_time) {
      // The run lasts `end * dilation` of wall time from the common start.
      const auto wall_end =
        shared.wall_start + std::chrono::nanoseconds(static_cast<std::int64_t>(
                              static_cast<double>(opts.end.ns()) * opts.dilation));
      // Emulated time reached now [ns], at most `end`.
      auto emulated_ns = [&] {
        const std::chrono::duration<double, std::nano> wall = wall_clock::now() - shared.wall_start;
        return std::min(static_cast<std::int64_t>(wall.count() / opts.dilation), opts.end.ns());
      };
      bool interrupted = false;
      while (wall_clock::now() < wall_end) {
        if ((opts.stop != nullptr && opts.stop->load()) ||
            shared.failed.load(std::memory_order_acquire)) {
          interrupted = true;
          break;
        }
        std::this_thread::sleep_until(
          std::min(wall_end, wall_clock::now() + std::chrono::milliseconds(100)));
        report(vtime::from_ns(emulated_ns()));
      }
      const std::int64_t reached = interrupted ? emulated_ns() : opts.end.ns();
      caf::anon_send(boss, finish_atom::value, reached, interrupted);
    }
    while (future.wait_for(std::chrono::milliseconds(500)) != std::future_status::ready)
      report(vtime::from_ns(shared.now_ns.load(std::memory_order_relaxed)));

    result = future.get();
    {
      std::lock_guard<std::mutex> lock(shared.failure_mu);
      result.failure = shared.failure;
      result.out_of_memory = shared.out_of_memory;
    }
    result.wall_seconds = elapsed();
    result.threads = threads;
    result.rss_before_spawn_bytes = rss_before;
    result.rss_after_spawn_bytes = rss_after;
    boss = nullptr;
    if (shared.worker) {
      caf::anon_send(shared.worker, finish_atom::value);
      shared.worker = nullptr;
    }
    sys.await_all_actors_done();
    // Only now: in real time, the GPU worker may still be sending results
    // to entities (which have ended, and drop them) through the directory.
    shared.directory.clear();
  } catch (...) {
    end_process(opts, std::current_exception(), "the run's main thread");
  }
  result.compute_requests = shared.compute_requests.load();
  result.compute_batches = shared.compute_batches.load();

  tally_entities(entities, result);
  for (auto& h : shared.lateness)
    result.lateness_ns.merge(h);
  // The trace, in one sorted list. Each entity's is freed once copied; a
  // trace too big to copy is left out and fails the run, whose other
  // results stay.
  try {
    std::size_t total = 0;
    for (const auto& t : shared.traces)
      total += t.size();
    result.trace.reserve(total);
    for (auto& t : shared.traces) {
      result.trace.insert(result.trace.end(), t.begin(), t.end());
      std::vector<trace_record>().swap(t);
    }
  } catch (const std::bad_alloc&) {
    std::vector<trace_record>().swap(result.trace);
    shared.traces.clear();
    if (result.failure.empty())
      result.failure = "out of memory (std::bad_alloc) while gathering the trace (output.trace)";
    result.out_of_memory = true;
    result.interrupted = true;
  }
  auto before = [](const trace_record& a, const trace_record& b) {
    return std::tie(a.time_ns, a.entity, a.src, a.seq, a.from) <
           std::tie(b.time_ns, b.entity, b.src, b.seq, b.from);
  };
  std::sort(result.trace.begin(), result.trace.end(), before);
  return result;
}

void tally_entities(const std::vector<std::unique_ptr<entity>>& entities, run_result& result) {
  result.fingerprint = combine_fingerprints(entities);
  // Totals from the entities themselves: the same in both clock modes.
  result.events = 0;
  result.envelopes = 0;
  // Every counter that some entity counted or declared.
  std::vector<std::uint64_t> sums;
  std::vector<bool> used;
  for (const auto& e : entities) {
    result.events += e->events();
    result.envelopes += e->envelopes();
    const auto& c = e->counters();
    if (c.size() > sums.size()) {
      sums.resize(c.size(), 0);
      used.resize(c.size(), false);
    }
    for (std::size_t i = 0; i < c.size(); ++i)
      if (c[i] != entity::uncounted) {
        sums[i] += c[i];
        used[i] = true;
      }
  }
  const auto names = counter_names();
  for (std::size_t i = 0; i < sums.size(); ++i)
    if (used[i])
      result.counters[names[i]] = sums[i];
}

} // namespace satemu::runtime
