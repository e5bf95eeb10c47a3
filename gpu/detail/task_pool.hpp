/// @file task_pool.hpp
/// Private to gpu/: a fixed set of threads that runs the tasks 0..n-1 of
/// one call at a time, the calling thread among them. Which thread runs a
/// task is not fixed, so what a task computes must not depend on it; the
/// thread index is for scratch space only.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace satemu::gpu::detail {

class task_pool {
public:
  using task_fn = std::function<void(std::int64_t task, int thread)>;

  /// `threads` >= 1 threads in all, the caller's included. The others start
  /// with the first call that has more than one task.
  explicit task_pool(int threads);
  ~task_pool();
  task_pool(const task_pool&) = delete;
  task_pool& operator=(const task_pool&) = delete;

  int threads() const { return threads_; }

  /// Starts the other threads now (else the first call with more than one
  /// task does). Empty when they run; else how many started and why the
  /// next could not (they are stopped again).
  std::string start();

  /// Runs fn(task, thread) for every task in [0, tasks), with `thread` in
  /// [0, threads()), and returns when all are done. One call at a time; a
  /// task must not call run.
  void run(std::int64_t tasks, const task_fn& fn);

private:
  void work(int thread);
  /// Claims and runs tasks of the current call until none is left.
  void drain(int thread);

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable start_, done_;
  // The current call: set under m_ before generation_ moves on.
  const task_fn* fn_ = nullptr;
  std::int64_t tasks_ = 0;
  std::atomic<std::int64_t> next_{0};
  std::uint64_t generation_ = 0;
  int busy_ = 0; ///< workers not yet done with the current call
  bool stop_ = false;
};

} // namespace satemu::gpu::detail
