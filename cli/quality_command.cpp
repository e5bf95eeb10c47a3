#include "cli/quality_command.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "cli/flags.hpp"
#include "cli/json_file.hpp"
#include "cli/run_command.hpp"
#include "gpu/backend.hpp"
#include "gpu/gpu_worker.hpp"
#include "gpu/model.hpp"
#include "gpu/model_runner.hpp"
#include "nlohmann/json.hpp"
#include "runtime/output.hpp"
#include "runtime/rng.hpp"

namespace satemu::cli {

namespace {

constexpr const char* footer =
  "Runs the model twice per codec on the same token ids: once whole, once with the\n"
  "activations after each --split layer compressed and restored, as pipeline-split inference\n"
  "sends them between satellites. Per split: the restored activations' relative error and\n"
  "cosine similarity against those that reached the split (which carry the earlier splits'\n"
  "error), and the bytes sent against fp32. Per codec: the final logits' mean and largest\n"
  "KL divergence (nats, uncompressed || compressed) and the fraction of tokens whose top-1\n"
  "token agrees.\n"
  "\n"
  "Token ids are drawn uniformly from the vocabulary (seeded by --seed), not text; the\n"
  "weights are synthetic (seeded by --seed, as a scenario's compute.seed) unless --weights\n"
  "names a safetensors checkpoint of the model. Synthetic weights make a random model whose\n"
  "logits are nearly flat, so its top-1 agreement falls fast under coarse codecs; a trained\n"
  "checkpoint gives the figures that matter. The weights are held in fp32: the model must\n"
  "fit the memory available (llama-3.2-1b: 4.9 GB, about 18 s on two cores).\n"
  "\n"
  "Codecs: none, fp16, bf16, int8, int4 (per-token symmetric), topk:N (N largest per token).\n"
  "Exit codes: 0 done, 1 internal error, 2 bad flags, model, weights or memory.";

absl::Status bad(absl::string_view flag, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(flag, ": ", what));
}

} // namespace

CLI::App* add_quality_subcommand(CLI::App& app, quality_args& a) {
  auto* q = app.add_subcommand(
    "quality", "Measure what compressing a model's activations at split points costs: error "
               "per split, KL divergence and top-1 agreement of the final logits");
  q->add_option("--model", a.model,
                absl::StrCat("Model profile: ", absl::StrJoin(gpu::model_names(), ", ")))
    ->required();
  q->add_option("--weights", a.weights,
                "safetensors checkpoint of the model (default: synthetic weights)");
  q->add_option("--compression", a.compression,
                "Codecs to compare, comma-separated: none, fp16, bf16, int8, int4, topk:N")
    ->capture_default_str();
  q->add_option("--split", a.split,
                "Layers after which the activations are compressed, 0-based and comma-separated "
                "(default: the middle layer, L/2 - 1)")
    ->check(not_empty("a list of layers"));
  q->add_option("--tokens", a.tokens, "Tokens per sequence")
    ->capture_default_str()
    ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  q->add_option("--sequences", a.sequences,
                "Sequences, each of --tokens tokens (stacked into one batch; each attends to "
                "itself only)")
    ->capture_default_str()
    ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 20));
  q->add_option("--seed", a.seed, "Seed of the synthetic weights and of the token ids")
    ->capture_default_str()
    ->check(seed_number());
  q->add_option("--backend", a.backend, "Backend that runs the model: auto, cpu or cuda")
    ->capture_default_str();
  q->add_option("--threads", a.threads,
                "cpu backend: threads its kernels use (0 = one per core)")
    ->capture_default_str()
    ->check(CLI::Range(0, 1024));
  q->add_option("--json", a.json, "Also write the figures to this JSON file")
    ->check(not_empty("a file name"));
  q->footer(footer);
  return q;
}

int quality_command(const quality_args& a) {
  auto profile = gpu::find_model(a.model);
  if (!profile.ok())
    return report_error(bad("--model", profile.status().message()));
  const gpu::model_profile& p = *profile;
  std::vector<gpu::compression> codecs;
  for (absl::string_view text : absl::StrSplit(a.compression, ',')) {
    auto c = gpu::parse_compression(std::string_view(text.data(), text.size()));
    if (!c.ok())
      return report_error(bad("--compression", c.status().message()));
    for (const auto& seen : codecs)
      if (seen.k == c->k && seen.keep == c->keep)
        return report_error(
          bad("--compression", absl::StrCat(gpu::to_string(*c), " is given twice")));
    codecs.push_back(*c);
  }
  std::vector<int> splits;
  if (a.split.empty()) {
    splits.push_back(static_cast<int>(std::max<std::int64_t>(0, p.num_layers / 2 - 1)));
  } else {
    for (absl::string_view text : absl::StrSplit(a.split, ',')) {
      int l = 0;
      if (!absl::SimpleAtoi(text, &l) || l < 0 || l >= p.num_layers)
        return report_error(bad("--split", absl::StrCat("'", text, "' is not a layer of ", p.name,
                                                        " (0 to ", p.num_layers - 1, ")")));
      if (std::find(splits.begin(), splits.end(), l) != splits.end())
        return report_error(bad("--split", absl::StrCat("layer ", l, " is given twice")));
      splits.push_back(l);
    }
  }
  // Top-k sends 8 bytes per value kept (the value and its index): from half
  // the hidden size on, as many bytes as fp32 or more.
  for (const auto& c : codecs)
    if (c.k == gpu::compression::kind::topk && c.keep >= (p.hidden_size + 1) / 2) {
      const std::int64_t kept = std::min(c.keep, p.hidden_size);
      std::fprintf(stderr,
                   "satemu: warning: %s keeps %lld of the %lld values of each of %s's tokens: "
                   "at 8 bytes each (value and index) it sends %s fp32\n",
                   gpu::to_string(c).c_str(), static_cast<long long>(kept),
                   static_cast<long long>(p.hidden_size), p.name.c_str(),
                   2 * kept == p.hidden_size ? "as many bytes as" : "more bytes than");
    }
  if (a.tokens > p.max_context)
    return report_error(bad("--tokens", absl::StrCat(a.tokens, " is more than ", p.name,
                                                     "'s context of ", p.max_context)));
  // A file that cannot be written is found before the passes, not after.
  if (!a.json.empty())
    if (auto st = write_flag_file("--json", a.json, nullptr); !st.ok())
      return report_error(st);
  const std::uint64_t need = static_cast<std::uint64_t>(gpu::parameter_count(p)) * sizeof(float);
  if (const std::uint64_t available = runtime::available_memory_bytes(); need > available)
    return report_error(bad("--model", absl::StrCat(p.name, "'s weights take ", need / 1000000,
                                                    " MB in fp32, more than the ",
                                                    available / 1000000, " MB available")));

  if (a.backend == "auto")
    std::fprintf(stderr, "%s\n", gpu::resolve_auto_backend().line().c_str());
  auto b = gpu::make_backend(a.backend, runtime::threads_or_cores(a.threads));
  if (!b.ok())
    return report_error(b.status());
  std::fprintf(stderr, "making %s's weights (%s)...\n", p.name.c_str(),
               a.weights.empty() ? "synthetic" : a.weights.c_str());
  auto m = gpu::model_weights_of(p, a.weights, a.seed);
  if (!m.ok())
    return report_error(a.weights.empty()
                          ? m.status()
                          : absl::Status(m.status().code(),
                                         absl::StrCat("--weights: ", m.status().message())));

  // Token ids, uniform over the vocabulary.
  runtime::rng r(a.seed, 0, 1);
  std::vector<std::int32_t> ids;
  std::vector<std::int64_t> offsets{0};
  for (std::int64_t s = 0; s < a.sequences; ++s) {
    for (std::int64_t i = 0; i < a.tokens; ++i)
      ids.push_back(static_cast<std::int32_t>(r.below(static_cast<std::uint64_t>(p.vocab_size))));
    offsets.push_back(offsets.back() + a.tokens);
  }
  std::fprintf(stderr, "%lld sequence%s of %lld tokens on backend %s...\n",
               static_cast<long long>(a.sequences), a.sequences == 1 ? "" : "s",
               static_cast<long long>(a.tokens), std::string((*b)->name()).c_str());
  auto reference = gpu::forward_logits(**b, *m, ids, offsets);
  if (!reference.ok())
    return report_error(reference.status());

  nlohmann::json out;
  out["model"] = p.name;
  out["weights"] = a.weights.empty() ? "synthetic" : a.weights;
  out["seed"] = a.seed;
  out["tokens"] = a.tokens;
  out["sequences"] = a.sequences;
  out["backend"] = (*b)->name();
  std::printf("%-12s %6s %12s %12s %12s %8s\n", "compression", "split", "rel_error", "cosine",
              "wire_bytes", "of_fp32");
  std::vector<gpu::quality_report> reports;
  for (const auto& c : codecs) {
    auto q = gpu::compression_quality(**b, *m, ids, offsets, splits, c, &*reference);
    if (!q.ok())
      return report_error(q.status());
    nlohmann::json row;
    row["compression"] = gpu::to_string(c);
    for (const auto& s : q->splits) {
      std::printf("%-12s %6d %12.4g %12.8f %12lld %8.3f\n", gpu::to_string(c).c_str(),
                  s.after_layer, s.relative_error, s.cosine, static_cast<long long>(s.wire_bytes),
                  static_cast<double>(s.wire_bytes) / static_cast<double>(s.fp32_bytes));
      row["splits"].push_back({{"after_layer", s.after_layer},
                               {"relative_error", s.relative_error},
                               {"cosine", s.cosine},
                               {"wire_bytes", s.wire_bytes},
                               {"fp32_bytes", s.fp32_bytes}});
    }
    // Values beyond what a codec holds (fp16: +-65504) come back infinite.
    const bool finite = std::all_of(q->splits.begin(), q->splits.end(),
                                    [](const auto& s) {
                                      return std::isfinite(s.relative_error) &&
                                             std::isfinite(s.cosine);
                                    }) &&
                        std::isfinite(q->logits.mean_kl) && std::isfinite(q->logits.max_kl);
    if (!finite)
      std::fprintf(stderr,
                   "satemu: warning: %s: some figures are not finite (inf or nan; null in the "
                   "JSON): activations beyond the codec's range (fp16: +-65504) came back "
                   "infinite\n",
                   gpu::to_string(c).c_str());
    row["logits"] = {{"rows", q->logits.rows},
                     {"mean_kl", q->logits.mean_kl},
                     {"max_kl", q->logits.max_kl},
                     {"top1_agreement", q->logits.top1_agreement}};
    out["codecs"].push_back(row);
    reports.push_back(std::move(*q));
  }
  std::printf("\n%-12s %12s %12s %8s   (final logits, %lld token%s)\n", "compression",
              "mean_kl", "max_kl", "top1", static_cast<long long>(reference->rows()),
              reference->rows() == 1 ? "" : "s");
  for (std::size_t i = 0; i < codecs.size(); ++i)
    std::printf("%-12s %12.4g %12.4g %8.4f\n", gpu::to_string(codecs[i]).c_str(),
                reports[i].logits.mean_kl, reports[i].logits.max_kl,
                reports[i].logits.top1_agreement);
  if (!a.json.empty()) {
    const std::string text = json_text(out);
    if (auto st = write_flag_file("--json", a.json, &text); !st.ok())
      return report_error(st);
  }
  return exit_ok;
}

} // namespace satemu::cli
