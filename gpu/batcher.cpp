#include "gpu/batcher.hpp"

#include <algorithm>
#include <cstring>
#include <span>
#include <utility>

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

bool batcher::request::same_group(const request& o) const {
  return weights == o.weights && cfg == o.cfg;
}

std::int64_t batcher::request::width() const {
  return cfg != nullptr ? cfg->hidden : matrix->cols();
}

absl::Status batcher::run(std::span<request* const> group) {
  // One stacked input, and the row offsets of every request in it. Every
  // request of a group of more than one has the weights' width (flush).
  std::int64_t rows = 0;
  for (const auto* r : group)
    rows += r->x.rows();
  const auto& head = *group.front();
  std::vector<std::int64_t> offsets{0};
  tensor stacked({rows, group.size() == 1 ? head.x.cols() : head.width()});
  for (auto* r : group) {
    if (r->x.numel() > 0)
      std::memcpy(stacked.matrix().row(offsets.back()), r->x.data(),
                  static_cast<std::size_t>(r->x.numel()) * sizeof(float));
    offsets.push_back(offsets.back() + r->x.rows());
  }
  const absl::Status kept = head.cfg != nullptr ? keep_resident(b_, *head.layer)
                                                : b_.keep_resident(*head.matrix);
  if (!kept.ok())
    b_.drop_resident();
  tensor out, keys, values;
  if (head.cfg != nullptr) {
    std::vector<past_kv> past;
    past.reserve(group.size());
    for (auto* r : group)
      past.push_back(r->past_k.numel() == 0 && r->past_v.numel() == 0
                       ? past_kv{}
                       : past_kv{r->past_k.matrix(), r->past_v.matrix()});
    auto ext = decoder_layer_extend(b_, *head.cfg, *head.layer, stacked, offsets, past);
    if (!ext.ok())
      return ext.status();
    out = std::move(ext->out);
    keys = std::move(ext->k);
    values = std::move(ext->v);
  } else {
    auto y = linear(b_, stacked, *head.matrix);
    if (!y.ok())
      return y.status();
    out = std::move(*y);
  }
  for (std::size_t i = 0; i < group.size(); ++i) {
    auto& slot = results_[group[i]->id];
    slot.out = rows_of(out, offsets[i], offsets[i + 1]);
    if (head.cfg != nullptr)
      slot.kv = {rows_of(keys, offsets[i], offsets[i + 1]),
                 rows_of(values, offsets[i], offsets[i + 1])};
  }
  return absl::OkStatus();
}

absl::Status batcher::flush() {
  // Groups in order of their first request.
  std::vector<const request*> heads;
  for (const auto& r : queue_)
    if (std::none_of(heads.begin(), heads.end(),
                     [&](const request* h) { return h->same_group(r); }))
      heads.push_back(&r);
  groups_last_ = heads.size();
  absl::Status first_error;
  // A request on its own: its result, or its error, is the lone call's.
  auto alone = [&](request* r) {
    if (auto st = run({&r, 1}); !st.ok()) {
      results_[r->id].out = st;
      if (first_error.ok())
        first_error = st;
    }
  };
  for (const request* head : heads) {
    // Requests of the weights' width are stacked; any other runs alone, so
    // that its error is its own.
    std::vector<request*> group;
    for (auto& r : queue_)
      if (r.same_group(*head)) {
        if (r.x.cols() == r.width())
          group.push_back(&r);
        else
          alone(&r);
      }
    if (group.empty())
      continue;
    if (group.size() == 1) {
      alone(group.front());
    } else if (!run(group).ok()) {
      // A request the kernels refuse (a bad past) must not fail the others:
      // each runs again alone.
      for (auto* r : group)
        alone(r);
    }
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
