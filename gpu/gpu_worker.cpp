#include "gpu/gpu_worker.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <typeinfo>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gpu/batcher.hpp"
#include "gpu/detail/check.hpp"
#include "runtime/output.hpp"
#include "runtime/quantity.hpp"

namespace satemu::gpu {

namespace {

double numel(const tensor& t) { return static_cast<double>(t.numel()); }

// Launches of one request run alone (layers.hpp): the attention half of a
// decoder layer is 2 rmsnorm, 4 gemm, 1 rope, 1 attention, 2 add (2 rmsnorm
// more with q/k norms, 2 more with sandwich norms); a gated MLP adds 3 gemm
// and 1 silu_mul or gelu_mul, a MoE layer 1 gemm, 1 router_topk,
// 1 moe_gather, 3 gemm_grouped, 1 silu_mul and 1 moe_combine, and a
// shared expert its MLP's and 1 add (or 1 gemm and 1 add_gated with a gate).
constexpr int attention_launches = 10;
constexpr int mlp_launches = 4;
constexpr int moe_launches = 8;

int layer_launches(bool qk_norm, bool sandwich_norm, bool moe, bool shared_expert,
                   bool shared_gate) {
  int n = attention_launches + (qk_norm ? 2 : 0) + (sandwich_norm ? 2 : 0);
  if (!moe)
    return n + mlp_launches;
  n += moe_launches;
  if (shared_expert)
    n += mlp_launches + (shared_gate ? 2 : 1);
  return n;
}

} // namespace

std::unique_ptr<compute_request> compute_request::layer(const decoder_config& cfg,
                                                        const decoder_layer_weights& w,
                                                        tensor x, tensor past_k,
                                                        tensor past_v) {
  std::unique_ptr<compute_request> r(new compute_request);
  r->kind_ = kind::layer;
  r->cfg_ = &cfg;
  r->layer_ = &w;
  r->x_ = std::move(x);
  r->past_k_ = std::move(past_k);
  r->past_v_ = std::move(past_v);
  return r;
}

std::unique_ptr<compute_request> compute_request::linear(const tensor& w, tensor x) {
  std::unique_ptr<compute_request> r(new compute_request);
  r->kind_ = kind::linear;
  r->matrix_ = &w;
  r->x_ = std::move(x);
  return r;
}

std::unique_ptr<compute_request> compute_request::modeled(double flops, double bytes,
                                                          int launches) {
  SATEMU_GPU_CHECK(std::isfinite(flops) && std::isfinite(bytes) && flops >= 0 && bytes >= 0 &&
                     launches >= 1,
                   "modeled request with flops=", flops, " bytes=", bytes,
                   " launches=", launches);
  std::unique_ptr<compute_request> r(new compute_request);
  r->kind_ = kind::modeled;
  r->given_ = {flops, bytes, launches};
  return r;
}

request_cost compute_request::cost(double bpe) const {
  // Tokens of the input (none once the request has run and its input is
  // consumed; an empty tensor's rows() is 1).
  const double t = x_.numel() == 0 ? 0.0 : static_cast<double>(x_.rows());
  switch (kind_) {
    case kind::modeled:
      return given_;
    case kind::linear: {
      const double out = static_cast<double>(matrix_->rows());
      const double in = static_cast<double>(matrix_->cols());
      return {2 * t * in * out, bpe * (out * in + t * in + t * out), 1};
    }
    case kind::layer:
      break;
  }
  const double past = past_k_.numel() == 0 ? 0 : static_cast<double>(past_k_.rows());
  return layer_cost(*cfg_, *layer_, t, past, bpe);
}

request_cost layer_cost(const decoder_config& cfg, const decoder_layer_weights& w, double t,
                        double past, double bpe) {
  const double d = static_cast<double>(cfg.hidden);
  const double q = static_cast<double>(cfg.attn.q_dim());
  const double kv = static_cast<double>(cfg.attn.kv_dim());
  // Projections, and causal attention: token i sees P + i + 1 keys (P
  // cached; at most the sliding window), each costing 2 q_dim for QK^T and
  // 2 q_dim for AV.
  double flops = 2 * t * (numel(w.wq) + numel(w.wk) + numel(w.wv) + numel(w.wo)) +
                 4 * q * static_cast<double>(attended_keys(static_cast<std::int64_t>(t),
                                                           static_cast<std::int64_t>(past),
                                                           cfg.attn.window));
  double weights = numel(w.attn_norm) + numel(w.mlp_norm) + numel(w.wq) + numel(w.wk) +
                   numel(w.wv) + numel(w.wo) + numel(w.q_norm) + numel(w.k_norm) +
                   numel(w.attn_out_norm) + numel(w.mlp_out_norm) + numel(w.bq) +
                   numel(w.bk) + numel(w.bv);
  const auto* moe_ffn = std::get_if<moe_weights>(&w.ffn);
  const int launches =
    layer_launches(cfg.qk_norm, cfg.sandwich_norm, moe_ffn != nullptr,
                   moe_ffn != nullptr && moe_ffn->shared.gate.numel() > 0,
                   moe_ffn != nullptr && moe_ffn->shared_gate.numel() > 0);
  if (const auto* mlp = std::get_if<swiglu_weights>(&w.ffn)) {
    const double m = numel(mlp->gate) + numel(mlp->up) + numel(mlp->down);
    flops += 2 * t * m;
    weights += m;
  } else {
    const auto& moe = std::get<moe_weights>(w.ffn);
    const double experts = static_cast<double>(moe.experts.size());
    const double expert =
      moe.experts.empty()
        ? 0
        : numel(moe.experts[0].gate) + numel(moe.experts[0].up) + numel(moe.experts[0].down);
    const double k = static_cast<double>(moe.top_k);
    const double shared =
        numel(moe.shared.gate) + numel(moe.shared.up) + numel(moe.shared.down);
    flops += 2 * t * (numel(moe.router) + k * expert + shared + numel(moe.shared_gate));
    weights += numel(moe.router) + std::min(experts, t * k) * expert + shared +
               numel(moe.shared_gate);
  }
  // Input and output rows, the cached keys and values attended to (a sliding
  // window's only), and the new ones.
  const double cached = static_cast<double>(
    cached_keys_read(static_cast<std::int64_t>(past), cfg.attn.window));
  const double activations = 2 * t * d + 2 * (cached + t) * kv;
  return {flops, bpe * (weights + activations), launches};
}

request_cost layer_cost(const model_profile& p, int layer, std::int64_t tokens, std::int64_t past,
                        double bpe) {
  const auto t = static_cast<double>(tokens);
  const double d = static_cast<double>(p.hidden_size);
  const double kv = static_cast<double>(p.num_kv_heads * p.head_dim);
  const std::int64_t touched =
    p.is_moe() ? std::min<std::int64_t>(p.num_experts, tokens * p.experts_per_token) : 0;
  // The profile's weight count in elements (bytes at 1 per element).
  const auto weights = static_cast<double>(layer_weight_bytes_touched(p, touched, 1));
  const auto cached = static_cast<double>(
    cached_keys_read(past, is_sliding_layer(p, layer) ? p.sliding_window : 0));
  const double activations = 2 * t * d + 2 * (cached + t) * kv;
  return {static_cast<double>(layer_flops(p, layer, tokens, past)),
          bpe * (weights + activations),
          layer_launches(p.qk_norm, p.sandwich_norm, p.is_moe(),
                         p.shared_expert_intermediate_size > 0, p.shared_expert_gate)};
}

request_cost lm_head_cost(const model_profile& p, double bpe) {
  return {static_cast<double>(lm_head_flops(p, 1)),
          bpe * static_cast<double>(p.vocab_size * p.hidden_size), 1};
}

compute_request& as_request(runtime::compute_job& job) {
  auto* r = dynamic_cast<compute_request*>(&job);
  SATEMU_GPU_CHECK(r != nullptr, "the GPU worker got a compute job of type ",
                   typeid(job).name(), ", not a gpu::compute_request");
  return *r;
}

runtime::duration modeled_duration(const hardware_profile& hw, compute_precision precision,
                                   const request_cost& c) {
  return estimate_duration(hw, c.flops, c.bytes, precision) +
         hw.launch_overhead * std::max(0, c.launches - 1);
}

gpu_worker::gpu_worker(std::unique_ptr<backend> b, gpu_worker_options o)
  : backend_(std::move(b)), opts_(std::move(o)) {
  SATEMU_GPU_CHECK(backend_ != nullptr, "gpu_worker without a backend");
}

void gpu_worker::run(std::span<runtime::compute_call> batch) {
  const double bpe = element_bytes(opts_.precision);
  // A fresh batcher per batch: its tickets and results live for one batch.
  batcher stack(*backend_);
  std::vector<std::optional<batcher::ticket>> tickets(batch.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto& call = batch[i];
    auto& req = as_request(*call.job);
    req.duration = modeled_duration(opts_.device, opts_.precision, req.cost(bpe));
    auto& busy = busy_until_[call.entity];
    const auto start = std::max(call.at.ns(), busy);
    req.waited = runtime::duration::from_ns(start - call.at.ns());
    // Saturated short of `never` (which means no result at all): durations
    // are bounded (max_estimate), but a device may queue many of them.
    const auto ready = runtime::vtime::from_ns(start).plus_or_never(req.duration);
    call.ready = ready.is_never() ? runtime::vtime::from_ns(ready.ns() - 1) : ready;
    busy = call.ready.ns();
    req.result = tensor{};
    req.keys = req.values = tensor{};
    if (opts_.modeled || req.kind_ == compute_request::kind::modeled)
      continue;
    tickets[i] = req.kind_ == compute_request::kind::layer
                   ? stack.submit_layer(*req.cfg_, *req.layer_, std::move(req.x_),
                                        std::move(req.past_k_), std::move(req.past_v_))
                   : stack.submit_linear(*req.matrix_, std::move(req.x_));
    req.x_ = tensor{};
    req.past_k_ = req.past_v_ = tensor{};
  }
  if (stack.pending() > 0) {
    // A refused request carries its own error; the others their results.
    (void)stack.flush();
    for (std::size_t i = 0; i < batch.size(); ++i)
      if (tickets[i]) {
        auto& req = as_request(*batch[i].job);
        req.result = stack.take(*tickets[i]);
        std::tie(req.keys, req.values) = stack.take_kv(*tickets[i]);
      }
  }
  groups_last_ = stack.groups_last_flush();
  ++batches_;
}

absl::StatusOr<std::unique_ptr<gpu_worker>> make_gpu_worker(const compute_config& c) {
  // Modeled: the backend runs no kernel, and needs no threads.
  auto b = make_backend(c.backend, c.modeled ? 1 : c.resolved_cpu_threads());
  if (!b.ok())
    return b.status();
  gpu_worker_options o;
  o.device = c.device;
  o.modeled = c.modeled;
  return std::make_unique<gpu_worker>(std::move(*b), std::move(o));
}

namespace {

/// "4.94 GB", "340 kB", "12 B": three significant figures in decimal units.
std::string approx_bytes(std::uint64_t bytes) {
  const double b = static_cast<double>(bytes);
  for (auto [scale, unit] : {std::pair{1e12, "TB"}, {1e9, "GB"}, {1e6, "MB"}, {1e3, "kB"}})
    if (b >= scale)
      return absl::StrFormat("%.3g %s", b / scale, unit);
  return absl::StrFormat("%d B", bytes);
}

/// The bytes of the model's weights: fp32 on the host whatever the backend.
std::uint64_t weight_bytes(const compute_config& c) {
  return static_cast<std::uint64_t>(parameter_count(c.model)) * sizeof(float);
}

} // namespace

absl::Status check_model_memory(const compute_config& c) {
  // A model that cannot fit would be killed by the system part way through.
  const std::uint64_t need = weight_bytes(c);
  if (c.memory_limit > 0) {
    if (const std::uint64_t total = runtime::total_memory_bytes(); c.memory_limit > total)
      return absl::InvalidArgumentError(absl::StrFormat(
          "compute.memory_limit: %s is more than this machine's %s of memory and swap; a model "
          "that needs it would be killed part way through",
          runtime::to_string(runtime::data_size{c.memory_limit}), approx_bytes(total)));
    if (need > c.memory_limit)
      return absl::InvalidArgumentError(absl::StrFormat(
          "compute.memory_limit: %s's weights take %s in fp32 for compute.mode: real, more than "
          "the %s of compute.memory_limit; compute.mode: modeled costs its layers without "
          "running them",
          c.model.name, approx_bytes(need), runtime::to_string(runtime::data_size{c.memory_limit})));
    return absl::OkStatus();
  }
  if (const std::uint64_t available = runtime::available_memory_bytes(); need > available)
    return absl::InvalidArgumentError(absl::StrFormat(
        "compute.model: %s's weights take %s in fp32 for compute.mode: real, more than the %s "
        "of memory available (compute.memory_limit sets another limit); compute.mode: modeled "
        "costs its layers without running them",
        c.model.name, approx_bytes(need), approx_bytes(available)));
  return absl::OkStatus();
}

absl::StatusOr<model_weights> model_weights_of(const model_profile& p,
                                               const std::string& weights_file,
                                               std::uint64_t seed) {
  if (weights_file.empty())
    return synthetic_model(p, seed);
  auto file = safetensors_file::open(weights_file);
  if (!file.ok())
    return file.status();
  return load_model(p, *file);
}

absl::StatusOr<model_weights> model_for(const compute_config& c) {
  SATEMU_GPU_RETURN_IF_ERROR(check_model_memory(c));
  auto m = model_weights_of(c.model, c.weights_file, c.seed);
  if (!m.ok())
    return absl::Status(m.status().code(), absl::StrCat(c.weights_file.empty() ? "compute.model: "
                                                                               : "compute.weights: ",
                                                        m.status().message()));
  return m;
}

std::string weights_description(const compute_config& c) {
  return absl::StrCat(c.model.name, "'s weights (",
                      c.weights_file.empty() ? "synthetic" : absl::StrCat("from ", c.weights_file),
                      ", ", approx_bytes(weight_bytes(c)), " in fp32)");
}

} // namespace satemu::gpu
