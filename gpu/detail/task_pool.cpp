#include "gpu/detail/task_pool.hpp"

#include <new>
#include <stdexcept>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu::detail {

task_pool::task_pool(int threads) : threads_(threads) {
  SATEMU_GPU_CHECK(threads >= 1, "a task pool needs at least one thread, got ", threads);
}

task_pool::~task_pool() {
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& w : workers_)
    w.join();
}

std::string task_pool::start() {
  if (!workers_.empty() || threads_ == 1)
    return {};
  std::string why;
  try {
    workers_.reserve(static_cast<std::size_t>(threads_ - 1));
    for (int t = 1; t < threads_; ++t)
      workers_.emplace_back([this, t] { work(t); });
  } catch (const std::system_error& e) {
    why = e.what();
  } catch (const std::bad_alloc&) {
    why = "out of memory";
  }
  if (why.empty())
    return {};
  const auto started = workers_.size() + 1; // the caller's own included
  {
    std::lock_guard lock(m_);
    stop_ = true;
  }
  start_.notify_all();
  for (auto& w : workers_)
    w.join();
  workers_.clear();
  stop_ = false;
  return absl::StrCat(started, " of ", threads_, " started, then: ", why);
}

void task_pool::run(std::int64_t tasks, const task_fn& fn) {
  if (tasks <= 0)
    return;
  if (threads_ == 1 || tasks == 1) {
    for (std::int64_t i = 0; i < tasks; ++i)
      fn(i, 0);
    return;
  }
  if (const auto why = start(); !why.empty())
    throw std::runtime_error("cannot start the cpu backend's threads: " + why);
  {
    std::lock_guard lock(m_);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    busy_ = threads_ - 1;
    ++generation_;
  }
  start_.notify_all();
  drain(0);
  std::unique_lock lock(m_);
  done_.wait(lock, [this] { return busy_ == 0; });
  fn_ = nullptr;
}

void task_pool::drain(int thread) {
  for (std::int64_t i = next_.fetch_add(1, std::memory_order_relaxed); i < tasks_;
       i = next_.fetch_add(1, std::memory_order_relaxed))
    (*fn_)(i, thread);
}

void task_pool::work(int thread) {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(m_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_)
        return;
      seen = generation_;
    }
    drain(thread);
    {
      std::lock_guard lock(m_);
      if (--busy_ == 0)
        done_.notify_one();
    }
  }
}

} // namespace satemu::gpu::detail
