/// @file model_runner.hpp
/// Whole models on a backend: a profile's weights (synthetic, or from a
/// safetensors file) turned into the layers of layers.hpp, a forward pass from
/// token ids to logits with an optional hook between layers, activation
/// compression round trips, and the end-to-end quality of a compression at
/// given split points (what pipeline-split inference pays for compressing the
/// activations it sends between satellites).
///
/// Supported architectures: `llama` and `mixtral` (pre-norm decoder, SwiGLU
/// MLP or Mixtral experts, no biases; Llama 3's RoPE frequency scaling),
/// `gemma3` (per-head q/k norms, sandwich norms, norm weights stored as an
/// offset from 1, GeGLU, embeddings scaled by sqrt(hidden), sliding-window
/// attention with its own RoPE base on the local layers), and `qwen2_moe`
/// (q/k/v biases, routing weights not renormalised, a shared expert scaled
/// by a sigmoid gate).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gpu/backend.hpp"
#include "gpu/layers.hpp"
#include "gpu/metrics.hpp"
#include "gpu/model.hpp"
#include "gpu/safetensors.hpp"

namespace satemu::gpu {

/// Every weight of a model, in the form the kernels take.
struct model_weights {
  model_profile profile;
  /// Layer 0's config: the shapes and constants every layer shares.
  decoder_config config;
  /// Each layer's own config (Gemma 3: the local layers' sliding window and
  /// RoPE base), one per entry of `layers`.
  std::vector<decoder_config> layer_configs;
  tensor embedding;  ///< [vocab, D]
  tensor final_norm; ///< [D]
  /// `lm_head.weight` [vocab, D]; empty when the profile ties it to the
  /// embedding, which is then held once (Gemma 3: 671 MB of fp32 not copied).
  tensor untied_lm_head;
  std::vector<decoder_layer_weights> layers;

  /// The LM head's weights `[vocab, D]`: the embedding itself when tied.
  const tensor& lm_head() const {
    return profile.tie_word_embeddings ? embedding : untied_lm_head;
  }
};

/// The config of layer `layer` of a profile (layers differ in their sliding
/// window and RoPE base); InvalidArgument for a layer the model does not have.
absl::StatusOr<decoder_config> decoder_config_of(const model_profile& p, int layer = 0);

/// Synthetic weights (weights.hpp) of the first `layers` layers (-1 = all).
absl::StatusOr<model_weights> synthetic_model(const model_profile& p, std::uint64_t seed = 0,
                                              int layers = -1);

/// Synthetic weights of layer `layer` alone (as synthetic_model makes it),
/// without the embedding and LM head, which for large vocabularies outweigh
/// a layer many times (llama-3.2-1b: 1 GiB of fp32 embedding, 243 MB per
/// layer). InvalidArgument when the layer does not exist.
absl::StatusOr<decoder_layer_weights> synthetic_layer(const model_profile& p, int layer,
                                                      std::uint64_t seed = 0);

/// Weights read from a safetensors file; every expected tensor is checked
/// (name, shape) first, with an error naming what is wrong.
absl::StatusOr<model_weights> load_model(const model_profile& p, const safetensors_file& file,
                                         int layers = -1);

/// The embedding rows of `tokens` `[T, D]`; InvalidArgument for a token
/// outside the vocabulary.
absl::StatusOr<tensor> embed(const model_weights& m, std::span<const std::int32_t> tokens);

/// Called after layer `layer` with the activations `[T, D]`; may change them.
using layer_hook = std::function<absl::Status(int layer, tensor& activations)>;

/// Logits `[T, vocab]` of a ragged batch of token sequences (backend.hpp's
/// `seq_offsets` over `tokens`): embedding, every layer (prefill), final
/// norm, LM head.
absl::StatusOr<tensor> forward_logits(backend& b, const model_weights& m,
                                      std::span<const std::int32_t> tokens,
                                      std::span<const std::int64_t> seq_offsets,
                                      const layer_hook& hook = {});

/// An activation compression, as sent between pipeline stages.
struct compression {
  enum class kind { none, int8, int4, topk, fp16, bf16 };
  kind k = kind::none;
  /// topk: entries kept per token.
  std::int64_t keep = 0;
};
/// "int8", "topk:64", ...; InvalidArgument listing the accepted forms.
absl::StatusOr<compression> parse_compression(std::string_view text);
std::string to_string(const compression& c);

/// x compressed and restored; `wire_bytes` (if given) gets the compressed size.
absl::StatusOr<tensor> compress_roundtrip(backend& b, const compression& c, const tensor& x,
                                          std::int64_t* wire_bytes = nullptr);

/// The cost of compressing the activations after each of `split_after`
/// layers (0-based layer indices, in any order; a repeated one counts once).
struct quality_report {
  /// Per split point, in layer order: relative error and cosine similarity of
  /// the restored activations against those that reached the split (which
  /// carry the earlier splits' error), and bytes sent against fp32.
  struct split {
    int after_layer = 0;
    double relative_error = 0;
    double cosine = 1;
    std::int64_t wire_bytes = 0;
    std::int64_t fp32_bytes = 0;
  };
  std::vector<split> splits;
  /// Final logits, compressed run against the uncompressed one.
  logits_comparison logits;
};
/// `reference_logits`, when given, are the uncompressed pass's logits
/// (forward_logits of the same inputs), computed once for several codecs.
absl::StatusOr<quality_report> compression_quality(backend& b, const model_weights& m,
                                                   std::span<const std::int32_t> tokens,
                                                   std::span<const std::int64_t> seq_offsets,
                                                   std::span<const int> split_after,
                                                   const compression& c,
                                                   const tensor* reference_logits = nullptr);

} // namespace satemu::gpu
