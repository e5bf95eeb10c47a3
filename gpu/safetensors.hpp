/// satemu safetensors I/O: read model weights from, and write them to, the
/// safetensors format (https://github.com/huggingface/safetensors).
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON (an
/// object mapping tensor names to {"dtype", "shape", "data_offsets": [begin,
/// end]}, offsets relative to the data section, plus an optional
/// "__metadata__" object of strings), then the data section. Tensors are
/// row-major, little-endian; they must cover the data section exactly, without
/// overlaps or gaps (as the format specifies).
///
/// Opening a file reads and checks only the header; tensor data is read on
/// demand and converted to fp32. Supported dtypes: F32, F16, BF16.
/// Sharded checkpoints (model.safetensors.index.json) are not read: open each
/// shard on its own.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gpu/model.hpp"
#include "gpu/weights.hpp"

namespace satemu::gpu {

/// Element types this reader converts to fp32, and this writer produces.
enum class safetensors_dtype { f32, f16, bf16 };

/// "F32", "F16", "BF16" (the spelling in the header).
std::string_view to_string(safetensors_dtype d);
/// Bytes per element: 4 or 2.
std::int64_t dtype_size(safetensors_dtype d);
/// The dtype spelled `s` in a header; InvalidArgument for any other.
absl::StatusOr<safetensors_dtype> parse_safetensors_dtype(std::string_view s);

// F16 and BF16 data convert with gpu/half.hpp (IEEE round to nearest even).

/// One tensor's header entry.
struct safetensors_entry {
  std::string name;
  safetensors_dtype dtype = safetensors_dtype::f32;
  std::vector<std::int64_t> shape;
  /// Byte range in the data section: [begin, end).
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// A checked safetensors header, with access to its tensors' data.
class safetensors_file {
public:
  /// Reads and checks the header of the file at `path`. Errors name the file
  /// and the problem: too short, header length beyond the file, malformed
  /// JSON, an unsupported dtype, a bad shape, data_offsets out of range or not
  /// matching shape x dtype size, overlapping tensors, gaps or trailing bytes.
  static absl::StatusOr<safetensors_file> open(const std::string& path);
  /// The same checks on a whole file held in memory; `origin` names it in errors.
  static absl::StatusOr<safetensors_file> parse(std::string bytes,
                                                std::string origin = "<memory>");

  /// Where the file came from (its path, or the origin given to parse).
  const std::string& origin() const { return origin_; }
  /// The "__metadata__" object (empty when absent).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  /// Every tensor, sorted by name.
  const std::vector<safetensors_entry>& entries() const { return entries_; }
  /// The entry named `name`, or nullptr.
  const safetensors_entry* find(std::string_view name) const;

  /// The tensor `name` converted to fp32; NotFound when absent, DataLoss when
  /// the file changed underneath (shorter than its header promised).
  absl::StatusOr<weight_tensor> read(std::string_view name) const;
  /// As read(name), and InvalidArgument when its shape is not `expected`
  /// (the message gives both).
  absl::StatusOr<weight_tensor> read(std::string_view name,
                                     const std::vector<std::int64_t>& expected) const;

private:
  safetensors_file() = default;
  static absl::StatusOr<safetensors_file> from_header(std::string_view header,
                                                      std::uint64_t data_size,
                                                      std::string origin);
  absl::Status read_bytes(std::uint64_t offset, std::uint64_t size, char* out) const;

  std::string origin_;
  /// The file for open(); null for parse().
  std::string path_;
  /// The whole file for parse().
  std::shared_ptr<const std::string> bytes_;
  std::uint64_t data_start_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<safetensors_entry> entries_;
};

/// What a writer needs to know of a tensor before its data: name and shape.
struct safetensors_layout {
  std::string name;
  std::vector<std::int64_t> shape;
};

/// Produces the data of tensor `index` of the layout when the writer reaches
/// it (so a whole model never has to sit in memory).
using tensor_producer = std::function<absl::StatusOr<weight_tensor>(std::size_t index)>;

/// Writes a safetensors stream: the header for `layout` (tensors stored in
/// that order, names unique and not "__metadata__", header padded with spaces
/// to a multiple of 8 bytes), then each tensor's data from `produce`, converted
/// to `dtype`. Fails when a produced tensor's name or shape differs from the
/// layout, or the stream fails.
absl::Status write_safetensors(std::ostream& out, const std::vector<safetensors_layout>& layout,
                               const tensor_producer& produce, safetensors_dtype dtype,
                               const std::map<std::string, std::string>& metadata = {});

/// write_safetensors of tensors held in memory.
absl::Status write_safetensors(std::ostream& out, const std::vector<weight_tensor>& tensors,
                               safetensors_dtype dtype,
                               const std::map<std::string, std::string>& metadata = {});

/// The file at `path`, written through `path + ".partial"` and renamed once
/// complete, so a failed write never leaves a file that looks whole.
absl::Status write_safetensors_file(const std::string& path,
                                    const std::vector<weight_tensor>& tensors,
                                    safetensors_dtype dtype,
                                    const std::map<std::string, std::string>& metadata = {});

/// Writes the synthetic weights of `p` (seed `base_seed`) to `path`, one
/// tensor at a time, in model_tensor_specs order; metadata records the model
/// name and seed.
absl::Status export_synthetic_model(const std::string& path, const model_profile& p,
                                    std::uint64_t base_seed, safetensors_dtype dtype);

/// Checks that `file` holds every tensor `p` expects (model_tensor_specs) with
/// the expected shape, without reading data. Extra tensors are allowed (such
/// as `rotary_emb.inv_freq`), except those of a layer `p` lacks
/// (`model.layers.N.` with N >= num_layers). The error lists every missing
/// tensor and wrong shape (the first 20, then a count).
absl::Status check_model_file(const safetensors_file& file, const model_profile& p);

/// Layer `layer` of `p` from `file`, in layer_tensor_specs order; errors for a
/// missing tensor, a wrong shape or a NaN or infinite weight name the tensor,
/// the file and the model.
absl::StatusOr<std::vector<weight_tensor>> load_layer_weights(const safetensors_file& file,
                                                              const model_profile& p, int layer);
/// The embedding, final norm and LM head, in global_tensor_specs order.
absl::StatusOr<std::vector<weight_tensor>> load_global_weights(const safetensors_file& file,
                                                               const model_profile& p);
/// check_model_file, then every tensor in model_tensor_specs order (for models
/// that fit in memory as fp32).
absl::StatusOr<std::vector<weight_tensor>> load_model_weights(const safetensors_file& file,
                                                              const model_profile& p);

} // namespace satemu::gpu
