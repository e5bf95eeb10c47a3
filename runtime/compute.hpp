/// satemu compute service: what runs the compute requests of a run's
/// entities (`entity::compute`). The kernel knows only this interface; the
/// GPU worker (gpu/gpu_worker.hpp) implements it over a compute backend, so
/// the runtime never depends on `gpu/`.
///
/// The kernel hosts the service in one CAF actor per run (per node in a
/// distributed run), the GPU worker actor, which owns it for the run:
///
/// - Virtual time: an entity that calls `compute` stops processing events
///   (it waits). When every granted entity of a window has reported, done or
///   waiting, the conductor hands the worker every request of the window,
///   across all entities, sorted by (entity, request sequence), as one
///   batch; `run` fills in each request's `ready` time and results, and the
///   results become events of their entities at those times. A result may
///   fall before the window's end: the next window then starts at it (no
///   envelope can reach another entity before the end of the window that
///   was granted, since a sender's clock never goes below that window's
///   start), and the waiting entity goes on from there.
/// - Real time: each request goes to the worker as it is made; the worker
///   runs a batch when `realtime_max_batch` requests are waiting or
///   `realtime_window` of wall time after the first of them arrived,
///   whichever comes first, and each result is delivered at the wall-clock
///   time of its `ready` (late if the batch took longer).
///
/// Zero requests cost nothing: no message, no allocation, no extra work per
/// window or envelope beyond reading one counter per window.
#pragma once

#include <chrono>
#include <cstddef>
#include <span>

#include "runtime/entity.hpp"

namespace satemu::runtime {

/// Runs batches of compute requests. Called from one actor at a time.
class compute_service {
public:
  virtual ~compute_service();
  /// Runs `batch` (virtual time: sorted by entity, then request sequence)
  /// and sets every call's `ready` (never before its `at`) and its job's
  /// results. The ready times must not depend on what else is in the batch,
  /// or on the wall clock, for a run to be the same whatever the thread and
  /// node count (the GPU worker gives each request its own modeled duration).
  virtual void run(std::span<compute_call> batch) = 0;
};

/// How a run reaches its compute service.
struct compute_options {
  /// Null: the run has none, and an entity asking for compute aborts it.
  /// Not owned; must outlive the run.
  compute_service* service = nullptr;
  /// Real time only: a batch waits at most this long (wall time) for more
  /// requests after its first one.
  std::chrono::nanoseconds realtime_window = std::chrono::milliseconds(1);
  /// Real time only: a batch runs at once when it holds this many requests.
  std::size_t realtime_max_batch = 64;
};

} // namespace satemu::runtime
