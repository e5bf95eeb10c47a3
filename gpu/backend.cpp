#include "gpu/backend.hpp"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "gpu/cpu_backend.hpp"
#include "gpu/cuda_backend.hpp"
#include "gpu/detail/check.hpp"
#include "gpu/device.hpp"

namespace satemu::gpu {

std::string_view op_name(op k) {
  switch (k) {
    case op::gemm: return "gemm";
    case op::gemm_strided_batched: return "gemm_strided_batched";
    case op::gemm_grouped: return "gemm_grouped";
    case op::rmsnorm: return "rmsnorm";
    case op::rope: return "rope";
    case op::attention_prefill: return "attention_prefill";
    case op::attention_decode: return "attention_decode";
    case op::kv_store: return "kv_store";
    case op::silu_mul: return "silu_mul";
    case op::gelu_mul: return "gelu_mul";
    case op::add: return "add";
    case op::add_gated: return "add_gated";
    case op::router_topk: return "router_topk";
    case op::moe_gather: return "moe_gather";
    case op::moe_combine: return "moe_combine";
    case op::quantize: return "quantize";
    case op::dequantize: return "dequantize";
    case op::sparsify: return "sparsify";
    case op::densify: return "densify";
    case op::cast_half: return "cast_half";
    case op::uncast_half: return "uncast_half";
  }
  SATEMU_GPU_CHECK(false, "unknown op ", static_cast<int>(k));
  return {};
}

std::uint64_t launch_counts::total() const {
  std::uint64_t n = 0;
  for (auto c : by_op)
    n += c;
  return n;
}

std::string launch_counts::to_string() const {
  std::string out;
  for (int i = 0; i < op_count; ++i) {
    if (by_op[static_cast<std::size_t>(i)] == 0)
      continue;
    absl::StrAppend(&out, out.empty() ? "" : " ", std::string(op_name(static_cast<op>(i))), "=",
                    by_op[static_cast<std::size_t>(i)]);
  }
  return out;
}

float attention_config::softmax_scale() const {
  if (scale != 0.0f)
    return scale;
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

quantized_activations quantized_activations::zeros(std::int64_t rows, std::int64_t cols,
                                                   int bits) {
  quantized_activations q;
  q.bits = bits;
  q.rows = rows;
  q.cols = cols;
  q.codes.assign(static_cast<std::size_t>(rows * q.row_bytes()), 0);
  q.scales.assign(static_cast<std::size_t>(rows), 0.0f);
  return q;
}

sparse_activations sparse_activations::zeros(std::int64_t rows, std::int64_t cols,
                                             std::int64_t k) {
  sparse_activations s;
  s.rows = rows;
  s.cols = cols;
  s.k = k;
  s.values.assign(static_cast<std::size_t>(rows * k), 0.0f);
  s.indices.assign(static_cast<std::size_t>(rows * k), 0);
  return s;
}

half_activations half_activations::zeros(std::int64_t rows, std::int64_t cols, half_type t) {
  half_activations h;
  h.type = t;
  h.rows = rows;
  h.cols = cols;
  h.bits.assign(static_cast<std::size_t>(rows * cols), 0);
  return h;
}

std::int64_t quantized_activations::size_bytes() const {
  return rows * row_bytes() + rows * static_cast<std::int64_t>(sizeof(float));
}

std::int64_t sparse_activations::size_bytes() const {
  return rows * k * static_cast<std::int64_t>(sizeof(float) + sizeof(std::int32_t));
}

std::string_view half_type_name(half_type t) {
  return t == half_type::fp16 ? "fp16" : "bf16";
}

std::string backend_choice::line() const {
  return absl::StrCat("compute backend: ", name, " (", reason, ")");
}

backend_choice resolve_auto_backend() {
  const device_info& info = probe_devices();
  if (info.cuda_built && info.cuda_devices > 0)
    return {"cuda", absl::StrCat("CUDA device ", info.detail, ", ",
                                 std::string(cuda_precision_name(cuda_options{}.precision)))};
  return {"cpu", info.detail};
}

absl::StatusOr<std::unique_ptr<backend>> make_backend(std::string_view name, int cpu_threads) {
  if (name == "cpu") {
    auto b = std::make_unique<cpu_backend>(cpu_threads);
    if (auto st = b->start_threads(); !st.ok())
      return st;
    return std::unique_ptr<backend>(std::move(b));
  }
  if (name == "auto") {
    const backend_choice choice = resolve_auto_backend();
    return make_backend(choice.name, cpu_threads);
  }
  if (name == "cuda")
    return make_cuda_backend();
  std::string accepted;
  for (std::string_view n : backend_names)
    absl::StrAppend(&accepted, accepted.empty() ? "" : ", ", std::string(n));
  return absl::InvalidArgumentError(absl::StrCat("unknown compute backend '", std::string(name),
                                                 "'; accepted: ", accepted,
                                                 name == "gpu" ? " (the GPU backend is 'cuda')"
                                                               : ""));
}

void plan_dispatch(moe_routing& r) {
  const auto slots = r.expert.size();
  std::vector<std::int64_t> count(static_cast<std::size_t>(r.n_experts), 0);
  for (std::int32_t e : r.expert)
    ++count[static_cast<std::size_t>(e)];
  r.expert_offsets.assign(static_cast<std::size_t>(r.n_experts + 1), 0);
  for (std::int64_t e = 0; e < r.n_experts; ++e)
    r.expert_offsets[static_cast<std::size_t>(e + 1)] =
        r.expert_offsets[static_cast<std::size_t>(e)] + count[static_cast<std::size_t>(e)];
  std::vector<std::int64_t> cursor(r.expert_offsets.begin(), r.expert_offsets.end() - 1);
  r.row_of_slot.resize(slots);
  r.token_of_row.resize(slots);
  for (std::size_t s = 0; s < slots; ++s) {
    const std::int64_t row = cursor[static_cast<std::size_t>(r.expert[s])]++;
    r.row_of_slot[s] = row;
    r.token_of_row[static_cast<std::size_t>(row)] =
        static_cast<std::int32_t>(s / static_cast<std::size_t>(r.k));
  }
}

} // namespace satemu::gpu
