#include "gpu/batcher.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu {

namespace {

// Rows [first, last) of a matrix, as a tensor of their own.
tensor rows_of(const tensor& m, std::int64_t first, std::int64_t last) {
  tensor part({last - first, m.cols()});
  if (part.numel() > 0)
    std::memcpy(part.data(), m.matrix().row(first),
                static_cast<std::size_t>(part.numel()) * sizeof(float));
  return part;
}

} // namespace

batcher::ticket batcher::submit_layer(const decoder_config& cfg, const decoder_layer_weights& w,
                                      tensor x, tensor past_k, tensor past_v) {
  const ticket id = results_.size();
  results_.emplace_back();
  queue_.push_back({&w, &cfg, &w, nullptr, std::move(x), std::move(past_k), std::move(past_v), id});
  return id;
}

batcher::ticket batcher::submit_linear(const tensor& w, tensor x) {
  const ticket id = results_.size();
  results_.emplace_back();
  queue_.push_back({&w, nullptr, nullptr, &w, std::move(x), {}, {}, id});
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
    if (st.ok()) {
      const absl::Status kept = head.cfg != nullptr ? keep_resident(b_, *head.layer)
                                                    : b_.keep_resident(*head.matrix);
      if (!kept.ok())
        b_.drop_resident();
    }
    absl::StatusOr<tensor> out = tensor{};
    tensor keys, values;
    if (!st.ok()) {
      out = st;
    } else if (head.cfg != nullptr) {
      std::vector<past_kv> past;
      past.reserve(group.size());
      for (auto* r : group)
        past.push_back(r->past_k.numel() == 0 && r->past_v.numel() == 0
                         ? past_kv{}
                         : past_kv{r->past_k.matrix(), r->past_v.matrix()});
      auto ext = decoder_layer_extend(b_, *head.cfg, *head.layer, stacked, offsets, past);
      if (ext.ok()) {
        out = std::move(ext->out);
        keys = std::move(ext->k);
        values = std::move(ext->v);
      } else {
        out = ext.status();
      }
    } else {
      out = linear(b_, stacked, *head.matrix);
    }
    for (std::size_t i = 0; i < group.size(); ++i) {
      auto& slot = results_[group[i]->id];
      if (!out.ok()) {
        slot.out = out.status();
        continue;
      }
      slot.out = rows_of(*out, offsets[i], offsets[i + 1]);
      if (head.cfg != nullptr)
        slot.kv = {rows_of(keys, offsets[i], offsets[i + 1]),
                   rows_of(values, offsets[i], offsets[i + 1])};
    }
    if (!out.ok() && first_error.ok())
      first_error = out.status();
  }
  queue_.clear();
  return first_error;
}

std::pair<tensor, tensor> batcher::take_kv(ticket t) {
  SATEMU_GPU_CHECK(t < results_.size(), "ticket ", t, " was not submitted");
  return std::exchange(results_[t].kv, {});
}

absl::StatusOr<tensor> batcher::take(ticket t) {
  SATEMU_GPU_CHECK(t < results_.size() && results_[t].out.has_value(), "ticket ", t,
                   " has no result (not submitted, not flushed, or taken)");
  auto r = std::move(*results_[t].out);
  results_[t].out.reset();
  return r;
}

} // namespace satemu::gpu
