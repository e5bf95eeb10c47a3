/// @file recording_backend.hpp
/// A cpu backend that records what a GPU backend would be asked to do
/// differently: the matrices it is asked to keep resident and its whole-layer
/// calls. For tests of who calls keep_resident and layer_extend.
#pragma once

#include <set>

#include "absl/status/status.h"
#include "gpu/cpu_backend.hpp"
#include "gpu/layers.hpp"

namespace satemu::gpu {

class recording_backend : public cpu_backend {
public:
  /// keep_resident answers this (ok: the matrix is recorded as kept).
  absl::Status keep_answer = absl::OkStatus();
  std::set<const float*> kept;
  int drops = 0;
  int layer_calls = 0;

  absl::Status keep_resident(const_matrix_view w) override {
    if (keep_answer.ok())
      kept.insert(w.data);
    return keep_answer;
  }
  void drop_resident() override {
    kept.clear();
    ++drops;
  }
  absl::StatusOr<extend_result> layer_extend(const decoder_config& cfg,
                                             const decoder_layer_weights& w,
                                             const_matrix_view x,
                                             std::span<const std::int64_t> seq_offsets,
                                             std::span<const past_kv> past) override {
    ++layer_calls;
    return cpu_backend::layer_extend(cfg, w, x, seq_offsets, past);
  }
};

} // namespace satemu::gpu
