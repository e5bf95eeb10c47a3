// `satemu quality`: what compressing a model's activations at split points
// costs in accuracy (gpu::compression_quality), from the command line.
#pragma once

#include <cstdint>
#include <string>

namespace CLI {
class App;
} // namespace CLI

namespace satemu::cli {

struct quality_args {
  std::string model;
  /// Empty: synthetic weights seeded by `seed`.
  std::string weights;
  /// Comma-separated codecs (gpu::parse_compression).
  std::string compression = "fp16,bf16,int8,int4";
  /// Comma-separated layer indices; empty: the middle layer.
  std::string split;
  std::int64_t tokens = 64;
  std::int64_t sequences = 1;
  std::uint64_t seed = 0;
  std::string backend = "auto";
  int threads = 0;
  std::string json;
};

/// Adds the `quality` subcommand to `app`, filling `args`; returns it.
CLI::App* add_quality_subcommand(CLI::App& app, quality_args& args);

/// Prints one row per (codec, split) and one per codec for the logits; 0,
/// or 2 for bad flags, an unknown model, a bad weights file, or a model
/// larger than the memory available.
int quality_command(const quality_args& a);

} // namespace satemu::cli
