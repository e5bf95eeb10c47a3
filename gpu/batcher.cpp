#include "gpu/batcher.hpp"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu {

batcher::ticket batcher::submit_layer(const decoder_config& cfg, const decoder_layer_weights& w,
                                      tensor x) {
  const ticket id = results_.size();
  results_.emplace_back();
  queue_.push_back({&w, &cfg, &w, nullptr, std::move(x), id});
  return id;
}

batcher::ticket batcher::submit_linear(const tensor& w, tensor x) {
  const ticket id = results_.size();
  results_.emplace_back();
  queue_.push_back({&w, nullptr, nullptr, &w, std::move(x), id});
  return id;
}

absl::Status batcher::flush() {
  // Groups in order of their first request.
  std::vector<const void*> order;
  for (const auto& r : queue_)
    if (std::find(order.begin(), order.end(), r.weights) == order.end())
      order.push_back(r.weights);
  groups_last_ = order.size();
  absl::Status first_error;
  for (const void* key : order) {
    std::vector<request*> group;
    std::int64_t rows = 0, cols = -1;
    absl::Status st;
    for (auto& r : queue_)
      if (r.weights == key) {
        if (cols >= 0 && r.x.cols() != cols && st.ok())
          st = absl::InvalidArgumentError(absl::StrCat("batched requests disagree on width: ", cols,
                                                       " and ", r.x.cols()));
        cols = r.x.cols();
        rows += r.x.rows();
        group.push_back(&r);
      }
    // One stacked input, and the row offsets of every request in it.
    std::vector<std::int64_t> offsets{0};
    tensor stacked({rows, std::max<std::int64_t>(cols, 0)});
    for (auto* r : group) {
      if (r->x.numel() > 0)
        std::memcpy(stacked.matrix().row(offsets.back()), r->x.data(),
                    static_cast<std::size_t>(r->x.numel()) * sizeof(float));
      offsets.push_back(offsets.back() + r->x.rows());
    }
    const auto& head = *group.front();
    absl::StatusOr<tensor> out =
      !st.ok()              ? absl::StatusOr<tensor>(st)
      : head.cfg != nullptr ? decoder_layer_prefill(b_, *head.cfg, *head.layer, stacked, offsets)
                            : linear(b_, stacked, *head.matrix);
    for (std::size_t i = 0; i < group.size(); ++i) {
      auto& slot = results_[group[i]->id];
      if (!out.ok()) {
        slot = out.status();
        continue;
      }
      const auto n = offsets[i + 1] - offsets[i];
      tensor part({n, out->cols()});
      if (part.numel() > 0)
        std::memcpy(part.data(), out->matrix().row(offsets[i]),
                    static_cast<std::size_t>(part.numel()) * sizeof(float));
      slot = std::move(part);
    }
    if (!out.ok() && first_error.ok())
      first_error = out.status();
  }
  queue_.clear();
  return first_error;
}

absl::StatusOr<tensor> batcher::take(ticket t) {
  SATEMU_GPU_CHECK(t < results_.size() && results_[t].has_value(), "ticket ", t,
                   " has no result (not submitted, not flushed, or taken)");
  auto r = std::move(*results_[t]);
  results_[t].reset();
  return r;
}

} // namespace satemu::gpu
