/// @file gpu_worker.hpp
/// The GPU worker: the compute service (runtime/compute.hpp) that runs the
/// entities' compute requests on one backend (one per GPU, or the CPU
/// backend). The kernel hosts it in the GPU worker actor and hands it every
/// request of a window (virtual time) or of a short wall-time batch (real
/// time) at once; requests that use the same weights are stacked into one
/// launch set (gpu/batcher.hpp: the tokens of many satellites in one GEMM,
/// MoE experts as grouped GEMMs), and every request gets its own result, the
/// same numbers as a call of its own (to fp32 rounding).
///
/// Emulated time: every satellite carries its own device (the worker's
/// hardware profile). A request's modeled duration is what that device takes
/// for the request alone, from the roofline of its own FLOPs and bytes
/// (`request_cost`, `modeled_duration`); a satellite's requests run one after
/// another on its device, so a request starts when it is made or when the
/// same satellite's previous request is done, whichever is later, and is
/// ready at start + duration. Stacking is how one host emulates many devices
/// at once, not something the emulated satellites share: a request's ready
/// time does not depend on what else was in the batch, so the run's times
/// are the same whatever the batches, the thread count or the number of
/// nodes. Its numbers are the same whatever the thread count; each node of
/// a distributed run stacks only its own requests, and rows stacked with
/// others equal a lone call to fp32 rounding (gpu/batcher.hpp), so they may
/// differ in the last bits from a run over another number of nodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/compute_config.hpp"
#include "gpu/hardware.hpp"
#include "gpu/layers.hpp"
#include "gpu/model_runner.hpp"
#include "runtime/compute.hpp"

namespace satemu::gpu {

/// Work and memory traffic of one request on one device.
struct request_cost {
  double flops = 0;
  double bytes = 0;
  /// Kernels the request launches when run alone.
  int launches = 1;
};

/// One compute request of an entity (`entity::compute`): the prefill of one
/// sequence through a decoder layer, a linear layer, or a cost alone; and,
/// once the GPU worker has run it, its result and modeled duration. Weights
/// are referenced, not copied, and the same weights object is the same
/// weight set (requests for it are stacked). A GPU backend keeps the weights
/// it has run on the device (batcher.hpp), so they must stay alive and
/// unchanged while the worker lives.
class compute_request final : public runtime::compute_job {
public:
  enum class kind { layer, linear, modeled };

  /// Prefill of one sequence x `[T, D]` through the layer with weights `w`.
  /// Result `[T, D]`, and the new tokens' keys (after RoPE) and values in
  /// `keys`, `values` `[T, kv_dim]`. Positions start at 0, or continue the
  /// P cached positions whose keys and values are `past_k`, `past_v`
  /// `[P, kv_dim]` (prefix caching: layers.hpp, decoder_layer_extend).
  static std::unique_ptr<compute_request> layer(const decoder_config& cfg,
                                                const decoder_layer_weights& w, tensor x,
                                                tensor past_k = {}, tensor past_v = {});
  /// x W^T for x `[T, in]` and W `[out, in]`. Result `[T, out]`.
  static std::unique_ptr<compute_request> linear(const tensor& w, tensor x);
  /// An operation of `flops` FLOPs moving `bytes` bytes in `launches`
  /// kernels: it takes emulated time and runs nothing (`compute: modeled`).
  /// Result: an empty tensor. Counts must be finite and >= 0.
  static std::unique_ptr<compute_request> modeled(double flops, double bytes, int launches = 1);

  kind what() const { return kind_; }
  /// The input (consumed when the request runs).
  const tensor& input() const { return x_; }

  /// The request alone on one device computing with `bytes_per_element`
  /// bytes per weight and activation element:
  /// - layer: FLOPs of the q/k/v/o projections, causal attention (4 x
  ///   q_dim per visible key, cached keys included) and the MLP (a MoE
  ///   layer: the router and top_k experts per token); bytes of every weight
  ///   read once (a MoE layer: the router and min(E, T x top_k) experts), the
  ///   input and output rows, the cached keys and values read and the new
  ///   ones written. Element-wise work and intermediate activations are not
  ///   counted. Launches as layers.hpp lists them.
  /// - linear: 2 T in out FLOPs; the weight, input and output bytes; 1 launch.
  /// - modeled: as given.
  request_cost cost(double bytes_per_element) const;

  /// Set by the GPU worker: the output, or why the kernels refused the
  /// request (bad shapes); an empty tensor for a modeled request or a
  /// worker in modeled mode.
  absl::StatusOr<tensor> result = tensor{};
  /// Set by the GPU worker for a layer request that ran: the new tokens'
  /// keys (after RoPE) and values `[T, kv_dim]`, what a KV cache keeps.
  tensor keys, values;
  /// Set by the GPU worker: the modeled duration on the entity's device
  /// (the time the device is busy with it; waiting for the same satellite's
  /// earlier requests comes on top).
  runtime::duration duration;
  /// Set by the GPU worker: how long the request waited for the entity's
  /// device (busy with its earlier requests) before `duration` began.
  runtime::duration waited;

private:
  friend class gpu_worker;
  compute_request() = default;

  kind kind_ = kind::modeled;
  const decoder_config* cfg_ = nullptr;
  const decoder_layer_weights* layer_ = nullptr;
  const tensor* matrix_ = nullptr;
  tensor x_;
  tensor past_k_, past_v_;
  request_cost given_;
};

/// What `compute_request::layer` costs for `tokens` new tokens after `past`
/// cached ones (see `compute_request::cost`), without building the request.
request_cost layer_cost(const decoder_config& cfg, const decoder_layer_weights& w, double tokens,
                        double past, double bytes_per_element);

/// The same cost from a model profile alone, for layer `layer` of a model
/// whose weights are not made (compute.mode: modeled): equal to the above
/// for that layer's weights and config.
request_cost layer_cost(const model_profile& p, int layer, std::int64_t tokens, std::int64_t past,
                        double bytes_per_element);
/// The LM head for the last token of a prefill: its FLOPs, its weights'
/// bytes, one launch.
request_cost lm_head_cost(const model_profile& p, double bytes_per_element);

/// The job handed back to `on_compute` as the request it is; aborts with
/// context for a job of another kind (a programmer error).
compute_request& as_request(runtime::compute_job& job);

/// Emulated duration of `c` on `hw`: one roofline over the whole request
/// (estimate_duration: max(flops / peak, bytes / bandwidth) + one launch
/// overhead) plus one more launch overhead per further kernel.
runtime::duration modeled_duration(const hardware_profile& hw, compute_precision precision,
                                   const request_cost& c);

struct gpu_worker_options {
  /// The device every emulated satellite carries.
  hardware_profile device;
  /// The arithmetic the emulated device runs the model in; fp16/bf16 count
  /// 2 bytes per element, fp32 4. The host's kernels compute in fp32 either way.
  compute_precision precision = compute_precision::fp16;
  /// `compute: modeled`: durations only, no kernel runs.
  bool modeled = false;
};

class gpu_worker final : public runtime::compute_service {
public:
  gpu_worker(std::unique_ptr<backend> b, gpu_worker_options o);

  /// Runs a batch of `compute_request`s: sets each call's ready time (see
  /// the file comment) and each request's duration and result, with one
  /// launch set per weight set.
  void run(std::span<runtime::compute_call> batch) override;

  /// The backend; its launch counts cover every batch so far.
  backend& device_backend() { return *backend_; }
  const launch_counts& launches() const { return backend_->launches(); }
  const gpu_worker_options& options() const { return opts_; }
  /// Weight sets (launch groups) the last batch ran, and batches run so far.
  std::size_t groups_last_batch() const { return groups_last_; }
  std::uint64_t batches() const { return batches_; }

private:
  std::unique_ptr<backend> backend_;
  gpu_worker_options opts_;
  /// Per satellite: when its device is done with its last request [ns].
  absl::flat_hash_map<runtime::entity_id, std::int64_t> busy_until_;
  std::size_t groups_last_ = 0;
  std::uint64_t batches_ = 0;
};

/// The GPU worker a scenario's `compute` section describes: its backend
/// (`auto` picks CUDA when a device answers), device and mode.
absl::StatusOr<std::unique_ptr<gpu_worker>> make_gpu_worker(const compute_config& c);

/// Whether the section's model can be made here: InvalidArgument, starting
/// with the key at fault, when its fp32 weights would not fit
/// `memory_limit` (by default the memory available), or when that limit is
/// more than this machine's memory and swap together.
absl::Status check_model_memory(const compute_config& c);

/// The weights of `p`: synthetic (seeded by `seed`) when `weights_file` is
/// empty, else read from that safetensors file (its errors as
/// safetensors_file::open and load_model give them). No memory check.
absl::StatusOr<model_weights> model_weights_of(const model_profile& p,
                                               const std::string& weights_file,
                                               std::uint64_t seed);

/// The weights of the section's model: synthetic (seeded by `seed`), or read
/// from its safetensors file. Errors start with the key at fault. A model
/// check_model_memory refuses is refused before anything is allocated.
absl::StatusOr<model_weights> model_for(const compute_config& c);

/// What model_for makes, in words: "llama-3.2-1b's weights (synthetic, 4.94
/// GB in fp32)", or "(from FILE, ...)".
std::string weights_description(const compute_config& c);

} // namespace satemu::gpu
