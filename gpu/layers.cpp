#include "gpu/layers.hpp"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "gpu/detail/check.hpp"

namespace satemu::gpu {

namespace {

absl::Status expect_shape(std::string_view what, const tensor& t,
                          const tensor::shape_type& want) {
  if (t.shape() == want)
    return absl::OkStatus();
  tensor::shape_type w = want;
  return absl::InvalidArgumentError(absl::StrCat(std::string(what), " is ", t.shape_string(), ", expected ",
                                                 tensor(std::move(w)).shape_string()));
}

// Everything after the attention block: h + N_m(ffn(rmsnorm(h))).
absl::StatusOr<tensor> ffn_block(backend& b, const decoder_config& cfg,
                                 const decoder_layer_weights& w, tensor h) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor n2, b.rmsnorm(h, w.mlp_norm, cfg.rms_eps));
  tensor f;
  if (const auto* mlp = std::get_if<swiglu_weights>(&w.ffn)) {
    SATEMU_GPU_ASSIGN_OR_RETURN(f, swiglu_mlp(b, *mlp, n2, cfg.activation));
  } else {
    SATEMU_GPU_ASSIGN_OR_RETURN(f, moe_layer(b, std::get<moe_weights>(w.ffn), n2));
  }
  if (cfg.sandwich_norm) {
    SATEMU_GPU_ASSIGN_OR_RETURN(f, b.rmsnorm(f, w.mlp_out_norm, cfg.rms_eps));
  }
  SATEMU_GPU_RETURN_IF_ERROR(b.add(f, h));
  return f;
}

// RMSNorm over each head_dim-wide head of the rows of `x`: the rows are
// viewed as [rows * heads, head_dim], and the result takes x's shape.
absl::Status norm_heads(backend& b, const decoder_config& cfg, tensor& x, const tensor& weight) {
  const std::int64_t hd = cfg.attn.head_dim;
  const const_matrix_view heads{x.data(), x.numel() / hd, hd};
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor y, b.rmsnorm(heads, weight, cfg.rms_eps));
  y.reshape(x.shape());
  x = std::move(y);
  return absl::OkStatus();
}

struct qkv {
  tensor q, k, v;
};

absl::StatusOr<qkv> project_qkv(backend& b, const decoder_config& cfg,
                                const decoder_layer_weights& w, const_matrix_view x,
                                std::span<const std::int64_t> positions) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor n1, b.rmsnorm(x, w.attn_norm, cfg.rms_eps));
  qkv out;
  SATEMU_GPU_ASSIGN_OR_RETURN(out.q, linear(b, n1, w.wq, w.bq));
  SATEMU_GPU_ASSIGN_OR_RETURN(out.k, linear(b, n1, w.wk, w.bk));
  SATEMU_GPU_ASSIGN_OR_RETURN(out.v, linear(b, n1, w.wv, w.bv));
  if (cfg.qk_norm) {
    SATEMU_GPU_RETURN_IF_ERROR(norm_heads(b, cfg, out.q, w.q_norm));
    SATEMU_GPU_RETURN_IF_ERROR(norm_heads(b, cfg, out.k, w.k_norm));
  }
  SATEMU_GPU_RETURN_IF_ERROR(b.rope(cfg.attn, out.q, out.k, positions));
  return out;
}

// The rest of a layer after attention: h = x + N_a(wo(attn)), then the FFN block.
absl::StatusOr<tensor> finish_layer(backend& b, const decoder_config& cfg,
                                    const decoder_layer_weights& w, const_matrix_view x,
                                    const_matrix_view attn) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor h, linear(b, attn, w.wo));
  if (cfg.sandwich_norm) {
    SATEMU_GPU_ASSIGN_OR_RETURN(h, b.rmsnorm(h, w.attn_out_norm, cfg.rms_eps));
  }
  SATEMU_GPU_RETURN_IF_ERROR(b.add(h, x));
  return ffn_block(b, cfg, w, std::move(h));
}

// Checks x against the layer and seq_offsets against x.
absl::Status check_ragged(const decoder_config& cfg, const_matrix_view x,
                          std::span<const std::int64_t> seq_offsets) {
  if (x.cols != cfg.hidden)
    return absl::InvalidArgumentError(absl::StrCat("decoder layer: x is ", to_string(x),
                                                   ", expected ", cfg.hidden, " columns"));
  if (seq_offsets.empty() || seq_offsets.front() != 0 || seq_offsets.back() != x.rows)
    return absl::InvalidArgumentError(absl::StrCat(
        "decoder layer: seq_offsets must run from 0 to the ", x.rows, " token rows"));
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s)
    if (seq_offsets[s + 1] < seq_offsets[s])
      return absl::InvalidArgumentError(
        absl::StrCat("decoder layer: seq_offsets decrease at index ", s + 1));
  return absl::OkStatus();
}

void copy_rows(const_matrix_view from, std::int64_t first, std::int64_t n, float* to) {
  if (n > 0)
    std::memcpy(to, from.row(first), static_cast<std::size_t>(n * from.cols) * sizeof(float));
}

} // namespace

absl::Status validate(std::int64_t hidden, const swiglu_weights& w) {
  const std::int64_t f = w.gate.rank() == 2 ? w.gate.dim(0) : -1;
  if (f < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("mlp gate is ", w.gate.shape_string(), ", expected [F, ", hidden, "]"));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("mlp gate", w.gate, {f, hidden}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("mlp up", w.up, {f, hidden}));
  return expect_shape("mlp down", w.down, {hidden, f});
}

absl::Status validate(std::int64_t hidden, const moe_weights& w) {
  const auto n_exp = static_cast<std::int64_t>(w.experts.size());
  if (n_exp == 0)
    return absl::InvalidArgumentError("moe layer has no experts");
  if (w.top_k < 1 || w.top_k > n_exp)
    return absl::InvalidArgumentError(
        absl::StrCat("moe top_k ", w.top_k, " must be in [1, ", n_exp, "]"));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("moe router", w.router, {n_exp, hidden}));
  if (w.shared.gate.numel() != 0) {
    if (auto s = validate(hidden, w.shared); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("moe shared expert: ", s.message()));
  } else if (w.shared.up.numel() != 0 || w.shared.down.numel() != 0) {
    return absl::InvalidArgumentError("moe shared expert has up or down but no gate");
  }
  if (w.shared_gate.numel() != 0) {
    if (w.shared.gate.numel() == 0)
      return absl::InvalidArgumentError("moe shared_gate without a shared expert");
    SATEMU_GPU_RETURN_IF_ERROR(expect_shape("moe shared_gate", w.shared_gate, {1, hidden}));
  }
  for (std::size_t e = 0; e < w.experts.size(); ++e) {
    if (auto s = validate(hidden, w.experts[e]); !s.ok())
      return absl::InvalidArgumentError(absl::StrCat("moe expert ", e, ": ", s.message()));
    if (w.experts[e].gate.shape() != w.experts[0].gate.shape())
      return absl::InvalidArgumentError(absl::StrCat(
          "moe expert ", e, " has intermediate size ", w.experts[e].gate.dim(0),
          ", expert 0 has ", w.experts[0].gate.dim(0)));
  }
  return absl::OkStatus();
}

absl::Status validate(const decoder_config& cfg, const decoder_layer_weights& w) {
  const std::int64_t d = cfg.hidden;
  const attention_config& a = cfg.attn;
  if (d <= 0 || a.n_heads <= 0 || a.n_kv_heads <= 0 || a.head_dim <= 0 ||
      a.head_dim % 2 != 0 || a.n_heads % a.n_kv_heads != 0)
    return absl::InvalidArgumentError(absl::StrCat(
        "decoder layer: hidden ", d, ", n_heads ", a.n_heads, ", n_kv_heads ", a.n_kv_heads,
        ", head_dim ", a.head_dim,
        ": need positive sizes, an even head_dim and n_heads a multiple of n_kv_heads"));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("attn_norm", w.attn_norm, {d}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("wq", w.wq, {a.q_dim(), d}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("wk", w.wk, {a.kv_dim(), d}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("wv", w.wv, {a.kv_dim(), d}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("wo", w.wo, {d, a.q_dim()}));
  SATEMU_GPU_RETURN_IF_ERROR(expect_shape("mlp_norm", w.mlp_norm, {d}));
  // The optional norms: present exactly when the config uses them.
  auto optional = [&](std::string_view what, const tensor& t, bool used, std::int64_t n,
                      const char* flag) -> absl::Status {
    if (used)
      return expect_shape(what, t, {n});
    if (t.numel() != 0)
      return absl::InvalidArgumentError(absl::StrCat(
          std::string(what), " is ", t.shape_string(), " but the layer has no ", flag));
    return absl::OkStatus();
  };
  SATEMU_GPU_RETURN_IF_ERROR(optional("q_norm", w.q_norm, cfg.qk_norm, a.head_dim, "qk_norm"));
  SATEMU_GPU_RETURN_IF_ERROR(optional("k_norm", w.k_norm, cfg.qk_norm, a.head_dim, "qk_norm"));
  SATEMU_GPU_RETURN_IF_ERROR(
      optional("attn_out_norm", w.attn_out_norm, cfg.sandwich_norm, d, "sandwich_norm"));
  SATEMU_GPU_RETURN_IF_ERROR(
      optional("mlp_out_norm", w.mlp_out_norm, cfg.sandwich_norm, d, "sandwich_norm"));
  SATEMU_GPU_RETURN_IF_ERROR(optional("bq", w.bq, cfg.qkv_bias, a.q_dim(), "qkv_bias"));
  SATEMU_GPU_RETURN_IF_ERROR(optional("bk", w.bk, cfg.qkv_bias, a.kv_dim(), "qkv_bias"));
  SATEMU_GPU_RETURN_IF_ERROR(optional("bv", w.bv, cfg.qkv_bias, a.kv_dim(), "qkv_bias"));
  if (const auto* mlp = std::get_if<swiglu_weights>(&w.ffn))
    return validate(d, *mlp);
  if (cfg.activation != mlp_activation::silu)
    return absl::InvalidArgumentError("decoder layer: MoE experts take the silu activation");
  return validate(d, std::get<moe_weights>(w.ffn));
}

absl::StatusOr<tensor> linear(backend& b, const_matrix_view x, const_matrix_view w,
                              const tensor& bias) {
  tensor y({x.rows, w.rows});
  if (bias.numel() == 0) {
    SATEMU_GPU_RETURN_IF_ERROR(b.gemm({.trans_b = true}, x, w, y));
    return y;
  }
  if (bias.numel() != w.rows)
    return absl::InvalidArgumentError(absl::StrCat("linear: bias is ", bias.shape_string(),
                                                   ", expected [", w.rows, "]"));
  for (std::int64_t t = 0; t < x.rows; ++t)
    std::memcpy(y.matrix().row(t), bias.data(), static_cast<std::size_t>(w.rows) * sizeof(float));
  SATEMU_GPU_RETURN_IF_ERROR(b.gemm({.trans_b = true, .beta = 1.0f}, x, w, y));
  return y;
}

absl::StatusOr<tensor> swiglu_mlp(backend& b, const swiglu_weights& w, const_matrix_view x,
                                  mlp_activation act) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor g, linear(b, x, w.gate));
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor u, linear(b, x, w.up));
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor a, act == mlp_activation::gelu_tanh ? b.gelu_mul(g, u)
                                                                          : b.silu_mul(g, u));
  return linear(b, a, w.down);
}

absl::StatusOr<moe_routing> moe_route(backend& b, const moe_weights& w, const_matrix_view x) {
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor logits, linear(b, x, w.router));
  return b.router_topk(logits, w.top_k, w.renormalise);
}

absl::StatusOr<tensor> moe_layer(backend& b, const moe_weights& w, const_matrix_view x) {
  SATEMU_GPU_RETURN_IF_ERROR(validate(x.cols, w));
  SATEMU_GPU_ASSIGN_OR_RETURN(const moe_routing r, moe_route(b, w, x));
  SATEMU_GPU_ASSIGN_OR_RETURN(const tensor xs, b.moe_gather(x, r));
  const std::int64_t rows = xs.rows();
  const std::int64_t d = x.cols;
  const std::int64_t f = w.experts[0].gate.dim(0);
  tensor g({rows, f});
  tensor u({rows, f});
  tensor y({rows, d});
  // One problem per expert over its block of dispatched rows (possibly empty).
  auto run = [&](const tensor swiglu_weights::*proj, const tensor& in, tensor& out) {
    std::vector<gemm_problem> problems;
    problems.reserve(w.experts.size());
    for (std::size_t e = 0; e < w.experts.size(); ++e) {
      const std::int64_t first = r.expert_offsets[e];
      const std::int64_t n = r.expert_rows(static_cast<std::int64_t>(e));
      problems.push_back({const_matrix_view{in.data() + first * in.cols(), n, in.cols()},
                          (w.experts[e].*proj).matrix(),
                          matrix_view{out.data() + first * out.cols(), n, out.cols()}});
    }
    return b.gemm_grouped({.trans_b = true}, problems);
  };
  SATEMU_GPU_RETURN_IF_ERROR(run(&swiglu_weights::gate, xs, g));
  SATEMU_GPU_RETURN_IF_ERROR(run(&swiglu_weights::up, xs, u));
  SATEMU_GPU_ASSIGN_OR_RETURN(const tensor a, b.silu_mul(g, u));
  SATEMU_GPU_RETURN_IF_ERROR(run(&swiglu_weights::down, a, y));
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor out, b.moe_combine(y, r));
  if (w.shared.gate.numel() == 0)
    return out;
  SATEMU_GPU_ASSIGN_OR_RETURN(const tensor s, swiglu_mlp(b, w.shared, x));
  if (w.shared_gate.numel() == 0) {
    SATEMU_GPU_RETURN_IF_ERROR(b.add(out, s));
  } else {
    SATEMU_GPU_ASSIGN_OR_RETURN(const tensor g, linear(b, x, w.shared_gate));
    SATEMU_GPU_RETURN_IF_ERROR(b.add_gated(out, s, g));
  }
  return out;
}

absl::Status keep_resident(backend& b, const decoder_layer_weights& w) {
  for (const tensor* t : {&w.wq, &w.wk, &w.wv, &w.wo})
    SATEMU_GPU_RETURN_IF_ERROR(b.keep_resident(*t));
  auto mlp = [&](const swiglu_weights& m) -> absl::Status {
    for (const tensor* t : {&m.gate, &m.up, &m.down})
      SATEMU_GPU_RETURN_IF_ERROR(b.keep_resident(*t));
    return absl::OkStatus();
  };
  if (const auto* m = std::get_if<swiglu_weights>(&w.ffn))
    return mlp(*m);
  const auto& moe = std::get<moe_weights>(w.ffn);
  SATEMU_GPU_RETURN_IF_ERROR(b.keep_resident(moe.router));
  for (const swiglu_weights& e : moe.experts)
    SATEMU_GPU_RETURN_IF_ERROR(mlp(e));
  if (moe.shared.gate.numel() != 0)
    SATEMU_GPU_RETURN_IF_ERROR(mlp(moe.shared));
  if (moe.shared_gate.numel() != 0)
    SATEMU_GPU_RETURN_IF_ERROR(b.keep_resident(moe.shared_gate));
  return absl::OkStatus();
}

absl::StatusOr<extend_result> backend::layer_extend(const decoder_config& cfg,
                                                    const decoder_layer_weights& w,
                                                    const_matrix_view x,
                                                    std::span<const std::int64_t> seq_offsets,
                                                    std::span<const past_kv> past) {
  return decoder_layer_extend_from_kernels(*this, cfg, w, x, seq_offsets, past);
}

absl::StatusOr<tensor> decoder_layer_prefill(backend& b, const decoder_config& cfg,
                                             const decoder_layer_weights& w,
                                             const_matrix_view x,
                                             std::span<const std::int64_t> seq_offsets,
                                             kv_cache* cache) {
  if (cache == nullptr) {
    // (Empty offsets are refused by the layer's checks.)
    const std::vector<past_kv> none(seq_offsets.empty() ? 0 : seq_offsets.size() - 1);
    SATEMU_GPU_ASSIGN_OR_RETURN(extend_result r,
                                b.layer_extend(cfg, w, x, seq_offsets, none));
    return std::move(r.out);
  }
  SATEMU_GPU_RETURN_IF_ERROR(validate(cfg, w));
  SATEMU_GPU_RETURN_IF_ERROR(check_ragged(cfg, x, seq_offsets));
  std::vector<std::int64_t> positions(static_cast<std::size_t>(x.rows));
  std::vector<std::int64_t> slots(static_cast<std::size_t>(x.rows));
  for (std::size_t s = 0; s + 1 < seq_offsets.size(); ++s)
    for (std::int64_t t = seq_offsets[s]; t < seq_offsets[s + 1]; ++t) {
      positions[static_cast<std::size_t>(t)] = t - seq_offsets[s];
      slots[static_cast<std::size_t>(t)] = static_cast<std::int64_t>(s);
    }
  SATEMU_GPU_ASSIGN_OR_RETURN(qkv p, project_qkv(b, cfg, w, x, positions));
  if (cache != nullptr)
    SATEMU_GPU_RETURN_IF_ERROR(b.kv_store(*cache, p.k, p.v, slots, positions));
  SATEMU_GPU_ASSIGN_OR_RETURN(const tensor attn,
                              b.attention_prefill(cfg.attn, p.q, p.k, p.v, seq_offsets));
  return finish_layer(b, cfg, w, x, attn);
}

absl::StatusOr<extend_result> decoder_layer_extend(backend& b, const decoder_config& cfg,
                                                   const decoder_layer_weights& w,
                                                   const_matrix_view x,
                                                   std::span<const std::int64_t> seq_offsets,
                                                   std::span<const past_kv> past) {
  return b.layer_extend(cfg, w, x, seq_offsets, past);
}

absl::StatusOr<extend_plan> plan_extend(const decoder_config& cfg, const decoder_layer_weights& w,
                                        const_matrix_view x,
                                        std::span<const std::int64_t> seq_offsets,
                                        std::span<const past_kv> past) {
  SATEMU_GPU_RETURN_IF_ERROR(validate(cfg, w));
  SATEMU_GPU_RETURN_IF_ERROR(check_ragged(cfg, x, seq_offsets));
  const std::size_t n_seq = seq_offsets.size() - 1;
  if (past.size() != n_seq)
    return absl::InvalidArgumentError(absl::StrCat("decoder layer: ", past.size(),
                                                   " pasts for ", n_seq, " sequences"));
  const std::int64_t kv_dim = cfg.attn.kv_dim();
  extend_plan plan;
  for (std::size_t s = 0; s < n_seq; ++s) {
    const auto& p = past[s];
    if (p.k.rows != p.v.rows || (p.k.rows > 0 && (p.k.cols != kv_dim || p.v.cols != kv_dim)))
      return absl::InvalidArgumentError(absl::StrCat(
        "decoder layer: sequence ", s, "'s past keys are ", to_string(p.k), " and values ",
        to_string(p.v), ", expected [P, ", kv_dim, "] each"));
    plan.past_rows += p.k.rows;
  }
  plan.positions.resize(static_cast<std::size_t>(x.rows));
  for (std::size_t s = 0; s < n_seq; ++s)
    for (std::int64_t t = seq_offsets[s]; t < seq_offsets[s + 1]; ++t)
      plan.positions[static_cast<std::size_t>(t)] = past[s].k.rows + (t - seq_offsets[s]);
  return plan;
}

absl::StatusOr<extend_result> decoder_layer_extend_from_kernels(
    backend& b, const decoder_config& cfg, const decoder_layer_weights& w, const_matrix_view x,
    std::span<const std::int64_t> seq_offsets, std::span<const past_kv> past) {
  SATEMU_GPU_ASSIGN_OR_RETURN(const extend_plan plan, plan_extend(cfg, w, x, seq_offsets, past));
  const std::size_t n_seq = seq_offsets.size() - 1;
  const std::int64_t kv_dim = cfg.attn.kv_dim();
  SATEMU_GPU_ASSIGN_OR_RETURN(qkv p, project_qkv(b, cfg, w, x, plan.positions));
  tensor attn;
  if (plan.past_rows == 0) {
    SATEMU_GPU_ASSIGN_OR_RETURN(attn, b.attention_prefill(cfg.attn, p.q, p.k, p.v, seq_offsets));
  } else {
    // Each sequence's cached keys and values, then its new ones; the new
    // queries are the sequence's last positions.
    const std::int64_t rows = x.rows + plan.past_rows;
    tensor k({rows, kv_dim}), v({rows, kv_dim});
    std::vector<std::int64_t> kv_offsets{0};
    for (std::size_t s = 0; s < n_seq; ++s) {
      const std::int64_t at = kv_offsets.back();
      const std::int64_t n_past = past[s].k.rows;
      const std::int64_t n_new = seq_offsets[s + 1] - seq_offsets[s];
      copy_rows(past[s].k, 0, n_past, k.matrix().row(at));
      copy_rows(past[s].v, 0, n_past, v.matrix().row(at));
      copy_rows(p.k.matrix(), seq_offsets[s], n_new, k.matrix().row(at + n_past));
      copy_rows(p.v.matrix(), seq_offsets[s], n_new, v.matrix().row(at + n_past));
      kv_offsets.push_back(at + n_past + n_new);
    }
    SATEMU_GPU_ASSIGN_OR_RETURN(attn, b.attention_prefill(cfg.attn, p.q, k, v, kv_offsets,
                                                          seq_offsets));
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(tensor out, finish_layer(b, cfg, w, x, attn));
  return extend_result{std::move(out), std::move(p.k), std::move(p.v)};
}

absl::StatusOr<tensor> decoder_layer_decode(backend& b, const decoder_config& cfg,
                                            const decoder_layer_weights& w,
                                            const_matrix_view x, kv_cache& cache,
                                            std::span<const std::int64_t> lengths) {
  SATEMU_GPU_RETURN_IF_ERROR(validate(cfg, w));
  if (x.cols != cfg.hidden || static_cast<std::int64_t>(lengths.size()) != x.rows)
    return absl::InvalidArgumentError(
        absl::StrCat("decoder layer: x is ", to_string(x), ", expected ", lengths.size(),
                     " rows (one per length) of ", cfg.hidden));
  std::vector<std::int64_t> slots(lengths.size());
  std::vector<std::int64_t> attended(lengths.size());
  for (std::size_t s = 0; s < lengths.size(); ++s) {
    slots[s] = static_cast<std::int64_t>(s);
    attended[s] = lengths[s] + 1;
  }
  SATEMU_GPU_ASSIGN_OR_RETURN(qkv p, project_qkv(b, cfg, w, x, lengths));
  SATEMU_GPU_RETURN_IF_ERROR(b.kv_store(cache, p.k, p.v, slots, lengths));
  SATEMU_GPU_ASSIGN_OR_RETURN(const tensor attn,
                              b.attention_decode(cfg.attn, p.q, cache, attended));
  return finish_layer(b, cfg, w, x, attn);
}

} // namespace satemu::gpu
