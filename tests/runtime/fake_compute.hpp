// A compute service for kernel tests: each job takes a given emulated time
// and answers 3 x input + 1; every batch is recorded.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <span>
#include <thread>
#include <utility>
#include <vector>

#include "runtime/compute.hpp"

namespace satemu::runtime::test_compute {

struct fake_job final : compute_job {
  duration work;
  std::uint64_t input = 0;
  std::uint64_t output = 0;
  /// The batch it ran in (index) and that batch's size.
  std::size_t batch = 0;
  std::size_t batch_size = 0;
};

class fake_service final : public compute_service {
public:
  void run(std::span<compute_call> batch) override {
    if (batches.size() == fail_batch) {
      if (fail_out_of_memory)
        throw std::bad_alloc();
      throw std::runtime_error("boom");
    }
    std::this_thread::sleep_for(wall_time);
    std::vector<std::pair<entity_id, std::uint64_t>> calls;
    for (auto& c : batch) {
      auto& j = dynamic_cast<fake_job&>(*c.job);
      j.output = 3 * j.input + 1;
      j.batch = batches.size();
      j.batch_size = batch.size();
      c.ready = c.at + j.work;
      calls.emplace_back(c.entity, c.seq);
    }
    batches.push_back(std::move(calls));
  }

  /// Per batch, the (entity, request sequence) of each call in order.
  std::vector<std::vector<std::pair<entity_id, std::uint64_t>>> batches;
  /// The batch (index) that throws instead, std::bad_alloc or a
  /// std::runtime_error "boom".
  std::size_t fail_batch = SIZE_MAX;
  bool fail_out_of_memory = true;
  /// The wall time each batch takes.
  std::chrono::milliseconds wall_time{0};
};

inline std::unique_ptr<fake_job> job(duration work, std::uint64_t input = 0) {
  auto j = std::make_unique<fake_job>();
  j->work = work;
  j->input = input;
  return j;
}

} // namespace satemu::runtime::test_compute
