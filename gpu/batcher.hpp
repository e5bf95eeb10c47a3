/// @file batcher.hpp
/// Batching of compute requests across the constellation: requests that use
/// the same weights are stacked into one launch (the tokens of many
/// satellites in one matrix), as a GPU worker does with every request of a
/// window.
///
/// - Decoder layers: the sequences queued for one layer's weights become one
///   ragged batch, so one flush costs that layer's kernels once
///   (layers.hpp lists them) however many requests there are.
/// - Linear layers: the rows queued for one weight matrix become one GEMM.
///
/// A request's result is what the same call alone would give: rows of a GEMM
/// and sequences of a ragged attention batch do not mix. (Equal to fp32
/// rounding, not bitwise: BLAS libraries pick GEMM kernels by matrix size, so
/// a row may differ in its last bits between a stacked and a lone GEMM. A
/// given batch is bitwise repeatable.) Groups run in
/// the order their first request came, and requests within a group in
/// submission order, so a flush is deterministic. Not thread-safe: the owner
/// (the GPU worker) serialises access.
///
/// Weights stay on the device: before a group runs, its weight matrices are
/// kept resident on the backend (backend::keep_resident; nothing on the cpu
/// backend), so the weights must stay alive and unchanged for as long as the
/// backend lives (or until its drop_resident()). When the device memory
/// cannot hold them, the kept copies are dropped and the group runs with its
/// weights copied in for the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/layers.hpp"

namespace satemu::gpu {

class batcher {
public:
  using ticket = std::size_t;

  explicit batcher(backend& b) : b_(b) {}

  /// Queues the prefill of one sequence x `[T, D]` through the layer with
  /// weights `w` (identified by address: the same weights object means the
  /// same weight set). The sequence continues the cached positions
  /// 0..P-1 whose keys and values are `past_k`, `past_v` `[P, kv_dim]`
  /// (layers.hpp, decoder_layer_extend); without them it starts at 0.
  ticket submit_layer(const decoder_config& cfg, const decoder_layer_weights& w, tensor x,
                      tensor past_k = {}, tensor past_v = {});
  /// Queues x W^T for x `[T, in]` and W `[out, in]`.
  ticket submit_linear(const tensor& w, tensor x);

  /// Runs every queued request, one launch set per weight set (and per
  /// config, for layers). A request the kernels refuse (a width other than
  /// the weights', a bad past) gets as its result the error the same call
  /// alone gives, and the other requests of its weight set their own
  /// results: a request of another width runs alone, and a stacked launch
  /// that fails runs again one request at a time. Returns the first error;
  /// the queue is empty afterwards either way.
  absl::Status flush();

  /// The result of a flushed request (moved out; once).
  absl::StatusOr<tensor> take(ticket t);
  /// A flushed layer request's new keys and values `[T, kv_dim]` (moved
  /// out; empty for a linear request or a failed group).
  std::pair<tensor, tensor> take_kv(ticket t);

  std::size_t pending() const { return queue_.size(); }
  /// Weight sets (launch groups) the last flush ran.
  std::size_t groups_last_flush() const { return groups_last_; }

private:
  struct request {
    const void* weights;
    const decoder_config* cfg; ///< null for a linear request
    const decoder_layer_weights* layer;
    const tensor* matrix;
    tensor x;
    tensor past_k, past_v;
    ticket id;

    /// Stacked together: the same weights object and, for layers, the same
    /// config object (a linear request on a layer's first tensor, at the
    /// layer's address, is not the layer).
    bool same_group(const request& o) const;
    /// The input width the weights take.
    std::int64_t width() const;
  };
  /// Stacks `group` (one request, or several of the weights' width), runs
  /// it and stores every request's result; the backend's error otherwise,
  /// with no result stored.
  absl::Status run(std::span<request* const> group);
  backend& b_;
  std::vector<request> queue_;
  /// Per ticket: the output once flushed, and a layer's new keys and values.
  struct outcome {
    std::optional<absl::StatusOr<tensor>> out;
    std::pair<tensor, tensor> kv;
  };
  std::vector<outcome> results_;
  std::size_t groups_last_ = 0;
};

} // namespace satemu::gpu
