#include "gpu/safetensors.hpp"

#include "gpu/half.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string_view>
#include <system_error>

#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/files.hpp"
#include "runtime/suggest.hpp"

namespace satemu::gpu {

namespace {

using nlohmann::json;

std::string shape_string(const std::vector<std::int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::uint64_t load_le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = (v << 8) | p[i];
  return v;
}

// Element count of `shape`, or -1 when it overflows int64.
std::int64_t checked_elements(const std::vector<std::int64_t>& shape) {
  std::int64_t n = 1;
  for (auto d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      return -1;
  return n;
}

absl::Status header_error(const std::string& origin, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("safetensors ", origin, ": ", what));
}

// The reference implementation's limit: a larger header is a corrupt length,
// not a model, and must not make us allocate gigabytes.
constexpr std::uint64_t max_header_bytes = 100'000'000;

absl::Status check_header_length(const std::string& origin, std::uint64_t header_len,
                                 std::uint64_t file_size) {
  if (header_len > file_size - 8)
    return header_error(origin, absl::StrCat("header length ", header_len,
                                             " runs past the end of the file (", file_size,
                                             " bytes): truncated or not a safetensors file"));
  if (header_len > max_header_bytes)
    return header_error(origin, absl::StrCat("header length ", header_len,
                                             " exceeds the format's limit of ", max_header_bytes,
                                             " bytes: corrupt length"));
  return absl::OkStatus();
}

void convert_to_float(safetensors_dtype dtype, const unsigned char* in, std::size_t n,
                      float* out) {
  switch (dtype) {
    case safetensors_dtype::f32:
      for (std::size_t i = 0; i < n; ++i) {
        const unsigned char* b = in + 4 * i;
        const std::uint32_t bits = std::uint32_t{b[0]} | std::uint32_t{b[1]} << 8 |
                                   std::uint32_t{b[2]} << 16 | std::uint32_t{b[3]} << 24;
        out[i] = std::bit_cast<float>(bits);
      }
      return;
    case safetensors_dtype::f16:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = fp16_bits_to_float(
            static_cast<std::uint16_t>(in[2 * i] | (in[2 * i + 1] << 8)));
      return;
    case safetensors_dtype::bf16:
      for (std::size_t i = 0; i < n; ++i)
        out[i] = bf16_bits_to_float(
            static_cast<std::uint16_t>(in[2 * i] | (in[2 * i + 1] << 8)));
      return;
  }
}

void convert_from_float(safetensors_dtype dtype, const float* in, std::size_t n,
                        unsigned char* out) {
  switch (dtype) {
    case safetensors_dtype::f32:
      for (std::size_t i = 0; i < n; ++i) {
        const auto bits = std::bit_cast<std::uint32_t>(in[i]);
        for (int k = 0; k < 4; ++k)
          out[4 * i + k] = static_cast<unsigned char>(bits >> (8 * k));
      }
      return;
    case safetensors_dtype::f16:
    case safetensors_dtype::bf16:
      for (std::size_t i = 0; i < n; ++i) {
        const std::uint16_t bits = dtype == safetensors_dtype::f16 ? float_to_fp16_bits(in[i])
                                                                   : float_to_bf16_bits(in[i]);
        out[2 * i] = static_cast<unsigned char>(bits);
        out[2 * i + 1] = static_cast<unsigned char>(bits >> 8);
      }
      return;
  }
}

// Reads a non-negative integer array of a header entry; errors name it as
// `tensor` says ("tensor 'name'").
absl::StatusOr<std::vector<std::int64_t>> int_array(const json& v, const std::string& origin,
                                                    const std::string& tensor, const char* key) {
  if (!v.is_array())
    return header_error(origin, absl::StrCat(tensor, ": \"", key,
                                             "\" is not an array"));
  std::vector<std::int64_t> out;
  for (const auto& x : v) {
    if (!x.is_number_integer() || (!x.is_number_unsigned() && x.get<std::int64_t>() < 0))
      return header_error(origin, absl::StrCat(tensor, ": \"", key,
                                               "\" holds ", runtime::clipped(x.dump()),
                                               ", not a non-negative integer"));
    const auto u = x.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return header_error(origin, absl::StrCat(tensor, ": \"", key, "\" value ", u,
                                               " is too large"));
    out.push_back(static_cast<std::int64_t>(u));
  }
  return out;
}

} // namespace

// --- dtypes ----------------------------------------------------------------

std::string_view to_string(safetensors_dtype d) {
  switch (d) {
    case safetensors_dtype::f32: return "F32";
    case safetensors_dtype::f16: return "F16";
    case safetensors_dtype::bf16: return "BF16";
  }
  return "?";
}

std::int64_t dtype_size(safetensors_dtype d) {
  return d == safetensors_dtype::f32 ? 4 : 2;
}

absl::StatusOr<safetensors_dtype> parse_safetensors_dtype(std::string_view s) {
  if (s == "F32")
    return safetensors_dtype::f32;
  if (s == "F16")
    return safetensors_dtype::f16;
  if (s == "BF16")
    return safetensors_dtype::bf16;
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported dtype ", runtime::in_quotes(s), " (supported: F32, F16, BF16)"));
}

// --- reading ---------------------------------------------------------------

absl::StatusOr<safetensors_file> safetensors_file::open(const std::string& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec)
    return absl::NotFoundError(absl::StrCat("safetensors ", path, ": cannot open (",
                                            runtime::open_failure(path, ec.value()), ")"));
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("safetensors ", path, ": cannot open for reading (",
                                            runtime::open_failure(path, errno), ")"));
  if (size < 8)
    return header_error(path, absl::StrCat("file too short: ", size,
                                           " bytes, less than the 8-byte header length"));
  unsigned char len_bytes[8];
  in.read(reinterpret_cast<char*>(len_bytes), 8);
  const std::uint64_t header_len = load_le64(len_bytes);
  if (auto s = check_header_length(path, header_len, size); !s.ok())
    return s;
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  if (static_cast<std::uint64_t>(in.gcount()) != header_len)
    return absl::DataLossError(absl::StrCat("safetensors ", path, ": short read of the header"));
  auto file = from_header(header, size - 8 - header_len, path);
  if (!file.ok())
    return file.status();
  file->path_ = path;
  file->data_start_ = 8 + header_len;
  return file;
}

absl::StatusOr<safetensors_file> safetensors_file::parse(std::string bytes, std::string origin) {
  const std::uint64_t size = bytes.size();
  if (size < 8)
    return header_error(origin, absl::StrCat("file too short: ", size,
                                             " bytes, less than the 8-byte header length"));
  const std::uint64_t header_len =
      load_le64(reinterpret_cast<const unsigned char*>(bytes.data()));
  if (auto s = check_header_length(origin, header_len, size); !s.ok())
    return s;
  auto file = from_header(std::string_view(bytes).substr(8, header_len), size - 8 - header_len,
                          origin);
  if (!file.ok())
    return file.status();
  file->data_start_ = 8 + header_len;
  file->bytes_ = std::make_shared<const std::string>(std::move(bytes));
  return file;
}

absl::StatusOr<safetensors_file> safetensors_file::from_header(std::string_view header,
                                                               std::uint64_t data_size,
                                                               std::string origin) {
  json doc;
  try {
    doc = json::parse(header.begin(), header.end());
  } catch (const json::exception& e) {
    // nlohmann's message quotes the token it read: a number or a string
    // may be as long as the header.
    return header_error(origin,
                        absl::StrCat("malformed JSON header: ", runtime::clipped(e.what(), 300)));
  }
  if (!doc.is_object())
    return header_error(origin, absl::StrCat("malformed JSON header: expected an object, got ",
                                             doc.type_name()));

  safetensors_file file;
  file.origin_ = std::move(origin);
  const std::string& where = file.origin_;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object())
        return header_error(where, "\"__metadata__\" is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          return header_error(where, absl::StrCat("\"__metadata__\" value of ",
                                                  runtime::in_quotes(m.key()), " is not a string"));
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tensor = "tensor " + runtime::in_quotes(name);
    if (!v.is_object())
      return header_error(where, absl::StrCat(tensor, ": entry is not an object"));
    for (const char* key : {"dtype", "shape", "data_offsets"})
      if (!v.contains(key))
        return header_error(where, absl::StrCat(tensor, ": no \"", key, "\""));
    if (!v["dtype"].is_string())
      return header_error(where, absl::StrCat(tensor, ": \"dtype\" is not a string"));
    auto dtype = parse_safetensors_dtype(v["dtype"].get<std::string>());
    if (!dtype.ok())
      return header_error(where, absl::StrCat(tensor, ": ", dtype.status().message()));
    auto shape = int_array(v["shape"], where, tensor, "shape");
    if (!shape.ok())
      return shape.status();
    auto offsets = int_array(v["data_offsets"], where, tensor, "data_offsets");
    if (!offsets.ok())
      return offsets.status();
    if (offsets->size() != 2)
      return header_error(where, absl::StrCat(tensor, ": data_offsets has ",
                                              offsets->size(), " values, expected [begin, end]"));
    safetensors_entry e;
    e.name = name;
    e.dtype = *dtype;
    e.shape = std::move(*shape);
    e.begin = static_cast<std::uint64_t>((*offsets)[0]);
    e.end = static_cast<std::uint64_t>((*offsets)[1]);
    const std::string range = absl::StrCat("[", e.begin, ", ", e.end, "]");
    if (e.begin > e.end)
      return header_error(where, absl::StrCat(tensor, ": data_offsets ", range,
                                              " end before they begin"));
    if (e.end > data_size)
      return header_error(where, absl::StrCat(tensor, ": data_offsets ", range,
                                              " out of range: the data section has ", data_size,
                                              " bytes (file truncated?)"));
    const std::int64_t elements = checked_elements(e.shape);
    if (elements < 0 || elements > std::numeric_limits<std::int64_t>::max() / 4)
      return header_error(where, absl::StrCat(tensor, ": shape ",
                                              shape_string(e.shape), " is too large"));
    const auto need = static_cast<std::uint64_t>(elements * dtype_size(e.dtype));
    if (e.end - e.begin != need)
      return header_error(where, absl::StrCat(tensor, ": data_offsets ", range,
                                              " span ", e.end - e.begin, " bytes but shape ",
                                              shape_string(e.shape), " of ",
                                              std::string(to_string(e.dtype)),
                                              " needs ", need));
    file.entries_.push_back(std::move(e));
  }

  // The data section must be covered exactly once, in offset order.
  std::vector<const safetensors_entry*> by_offset;
  for (const auto& e : file.entries_)
    by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  std::uint64_t covered = 0;
  const safetensors_entry* last = nullptr;
  for (const auto* e : by_offset) {
    if (e->begin < covered)
      return header_error(where, absl::StrCat("tensors ", runtime::in_quotes(last->name), " [",
                                              last->begin, ", ", last->end, "] and ",
                                              runtime::in_quotes(e->name), " [", e->begin, ", ",
                                              e->end, "] overlap"));
    if (e->begin > covered)
      return header_error(where, absl::StrCat("gap of ", e->begin - covered,
                                              " unused bytes before tensor ",
                                              runtime::in_quotes(e->name), " in the data section"));
    covered = e->end;
    if (!last || e->end >= last->end)
      last = e;
  }
  if (covered != data_size)
    return header_error(where, absl::StrCat(data_size - covered,
                                            " trailing bytes after the last tensor in the data "
                                            "section (",
                                            data_size, " bytes, tensors cover ", covered, ")"));
  // nlohmann's default object is a sorted map, so entries_ is sorted by name.
  return file;
}

const safetensors_entry* safetensors_file::find(std::string_view name) const {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), name,
                             [](const safetensors_entry& e, std::string_view n) {
                               return e.name < n;
                             });
  return it != entries_.end() && it->name == name ? &*it : nullptr;
}

absl::Status safetensors_file::read_bytes(std::uint64_t offset, std::uint64_t size,
                                          char* out) const {
  if (size == 0) // an empty tensor (whose buffer may be null)
    return absl::OkStatus();
  if (bytes_) {
    std::memcpy(out, bytes_->data() + data_start_ + offset, size);
    return absl::OkStatus();
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in)
    return absl::NotFoundError(absl::StrCat("safetensors ", path_, ": cannot reopen"));
  in.seekg(static_cast<std::streamoff>(data_start_ + offset));
  in.read(out, static_cast<std::streamsize>(size));
  if (static_cast<std::uint64_t>(in.gcount()) != size)
    return absl::DataLossError(absl::StrCat("safetensors ", path_,
                                            ": file shorter than its header says (changed "
                                            "since it was opened?)"));
  return absl::OkStatus();
}

absl::StatusOr<weight_tensor> safetensors_file::read(std::string_view name) const {
  const safetensors_entry* e = find(name);
  if (!e)
    return absl::NotFoundError(absl::StrCat("safetensors ", origin_, ": missing tensor '", std::string(name),
                                            "'"));
  const std::uint64_t size = e->end - e->begin;
  std::vector<unsigned char> raw(size);
  if (auto s = read_bytes(e->begin, size, reinterpret_cast<char*>(raw.data())); !s.ok())
    return s;
  weight_tensor t;
  t.name = e->name;
  t.shape = e->shape;
  t.data.resize(static_cast<std::size_t>(size / dtype_size(e->dtype)));
  convert_to_float(e->dtype, raw.data(), t.data.size(), t.data.data());
  return t;
}

absl::StatusOr<weight_tensor> safetensors_file::read(
    std::string_view name, const std::vector<std::int64_t>& expected) const {
  const safetensors_entry* e = find(name);
  if (e && e->shape != expected)
    return absl::InvalidArgumentError(absl::StrCat(
        "safetensors ", origin_, ": tensor '", std::string(name), "' has the wrong shape: expected ",
        shape_string(expected), ", found ", shape_string(e->shape)));
  return read(name);
}

// --- writing ---------------------------------------------------------------

absl::Status write_safetensors(std::ostream& out, const std::vector<safetensors_layout>& layout,
                               const tensor_producer& produce, safetensors_dtype dtype,
                               const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty())
    header["__metadata__"] = metadata;
  const auto elem = static_cast<std::uint64_t>(dtype_size(dtype));
  std::uint64_t offset = 0;
  for (const auto& t : layout) {
    if (t.name == "__metadata__")
      return absl::InvalidArgumentError("a tensor cannot be named \"__metadata__\"");
    if (header.contains(t.name))
      return absl::InvalidArgumentError(absl::StrCat("duplicate tensor name '", t.name, "'"));
    const std::int64_t n = checked_elements(t.shape);
    if (n < 0 || std::any_of(t.shape.begin(), t.shape.end(), [](auto d) { return d < 0; }))
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t.name, "': bad shape ",
                                                     shape_string(t.shape)));
    const std::uint64_t size = static_cast<std::uint64_t>(n) * elem;
    header[t.name] = {{"dtype", std::string(to_string(dtype))},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i)
    len[i] = static_cast<unsigned char>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));

  std::vector<unsigned char> buf;
  for (std::size_t i = 0; i < layout.size(); ++i) {
    auto t = produce(i);
    if (!t.ok())
      return t.status();
    if (t->name != layout[i].name || t->shape != layout[i].shape)
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor ", i, " produced as '", t->name, "' ", shape_string(t->shape),
          ", the header promised '", layout[i].name, "' ", shape_string(layout[i].shape)));
    if (static_cast<std::int64_t>(t->data.size()) != checked_elements(t->shape))
      return absl::InvalidArgumentError(absl::StrCat("tensor '", t->name, "' holds ",
                                                     t->data.size(), " values, its shape ",
                                                     shape_string(t->shape), " needs ",
                                                     checked_elements(t->shape)));
    buf.resize(t->data.size() * elem);
    convert_from_float(dtype, t->data.data(), t->data.size(), buf.data());
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (!out)
      return absl::DataLossError(absl::StrCat("write failed at tensor '", t->name, "'"));
  }
  out.flush();
  if (!out)
    return absl::DataLossError("write failed");
  return absl::OkStatus();
}

absl::Status write_safetensors(std::ostream& out, const std::vector<weight_tensor>& tensors,
                               safetensors_dtype dtype,
                               const std::map<std::string, std::string>& metadata) {
  std::vector<safetensors_layout> layout;
  for (const auto& t : tensors)
    layout.push_back({t.name, t.shape});
  return write_safetensors(
      out, layout, [&](std::size_t i) -> absl::StatusOr<weight_tensor> { return tensors[i]; },
      dtype, metadata);
}

absl::Status write_safetensors_file(const std::string& path,
                                    const std::vector<weight_tensor>& tensors,
                                    safetensors_dtype dtype,
                                    const std::map<std::string, std::string>& metadata) {
  return runtime::write_file_atomically(
      path, [&](std::ostream& out) { return write_safetensors(out, tensors, dtype, metadata); });
}

absl::Status export_synthetic_model(const std::string& path, const model_profile& p,
                                    std::uint64_t base_seed, safetensors_dtype dtype) {
  if (auto s = validate_model(p); !s.ok())
    return s;
  const std::vector<tensor_spec> specs = model_tensor_specs(p);
  std::vector<safetensors_layout> layout;
  for (const auto& s : specs)
    layout.push_back({s.name, s.shape});
  // "format": "pt" lets Hugging Face loaders accept the file.
  const std::map<std::string, std::string> metadata{
      {"format", "pt"}, {"satemu.model", p.name}, {"satemu.seed", std::to_string(base_seed)}};
  return runtime::write_file_atomically(path, [&](std::ostream& out) {
    return write_safetensors(
        out, layout,
        [&](std::size_t i) -> absl::StatusOr<weight_tensor> {
          return synthesize_tensor(p, specs[i], base_seed);
        },
        dtype, metadata);
  });
}

// --- models ----------------------------------------------------------------

namespace {

/// The digits N of a tensor named "model.layers.N.<...>"; empty for other names.
std::string_view layer_digits(std::string_view name) {
  constexpr std::string_view prefix = "model.layers.";
  if (!name.starts_with(prefix))
    return {};
  const auto rest = name.substr(prefix.size());
  const auto digits = rest.substr(0, rest.find('.'));
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return {};
  return digits;
}

/// N of a tensor named "model.layers.N.<...>" (one past 64 bits as the
/// largest number: a layer no model has); none for other names.
std::optional<std::int64_t> layer_of(std::string_view name) {
  const auto digits = layer_digits(name);
  if (digits.empty())
    return std::nullopt;
  std::int64_t layer = 0;
  if (!absl::SimpleAtoi(absl::string_view(digits.data(), digits.size()), &layer))
    return std::numeric_limits<std::int64_t>::max();
  return layer;
}

} // namespace

absl::Status check_model_file(const safetensors_file& file, const model_profile& p) {
  constexpr std::size_t max_listed = 20;
  std::vector<std::string> problems;
  std::size_t count = 0;
  const auto specs = model_tensor_specs(p);
  for (const auto& spec : specs) {
    const safetensors_entry* e = file.find(spec.name);
    std::string problem;
    if (!e)
      problem = absl::StrCat("missing tensor '", spec.name, "' ", shape_string(spec.shape));
    else if (e->shape != spec.shape)
      problem = absl::StrCat("tensor '", spec.name, "' has the wrong shape: expected ",
                             shape_string(spec.shape), ", found ", shape_string(e->shape));
    if (problem.empty())
      continue;
    if (++count <= max_listed)
      problems.push_back(std::move(problem));
  }
  // Tensors of layers the model lacks: a checkpoint of a deeper model with
  // the same widths would otherwise pass as this one, its last layers dropped.
  std::int64_t deepest = -1;
  std::string_view deepest_digits;
  for (const auto& e : file.entries())
    if (const auto layer = layer_of(e.name); layer && *layer > deepest) {
      deepest = *layer;
      deepest_digits = layer_digits(e.name);
    }
  if (deepest >= p.num_layers && ++count <= max_listed)
    problems.push_back(absl::StrCat("it holds layer ", std::string(deepest_digits),
                                    " but the model has ",
                                    p.num_layers, " layers (0..", p.num_layers - 1,
                                    "): a checkpoint of another model?"));
  // A parameter the model's layers lack (a q_proj.bias under a Llama
  // profile) would be dropped and the layer compute something else. RoPE's
  // inv_freq buffer, which some checkpoints store, is recomputed.
  std::set<std::string_view> expected;
  for (const auto& spec : specs)
    expected.insert(spec.name);
  for (const auto& e : file.entries()) {
    const std::string_view name = e.name;
    const auto layer = layer_of(name);
    // (A layer the model lacks is counted above.)
    if (!layer || *layer >= p.num_layers || expected.contains(name) ||
        name.ends_with(".rotary_emb.inv_freq"))
      continue;
    if (++count <= max_listed)
      problems.push_back(absl::StrCat("tensor ", runtime::in_quotes(name),
                                      " is no parameter of the model's layers (it would be "
                                      "dropped)"));
  }
  if (count == 0)
    return absl::OkStatus();
  std::string msg = absl::StrCat("safetensors ", file.origin(), " does not fit model '", p.name,
                                 "': ", absl::StrJoin(problems, "; "));
  if (count > max_listed)
    absl::StrAppend(&msg, "; and ", count - max_listed, " more");
  return absl::InvalidArgumentError(msg);
}

namespace {

absl::StatusOr<std::vector<weight_tensor>> load_specs(const safetensors_file& file,
                                                      const model_profile& p,
                                                      const std::vector<tensor_spec>& specs) {
  std::vector<weight_tensor> out;
  out.reserve(specs.size());
  for (const auto& spec : specs) {
    auto t = file.read(spec.name, spec.shape);
    if (!t.ok())
      return absl::Status(t.status().code(), absl::StrCat(t.status().message(), " (model '",
                                                          p.name, "' expects it with shape ",
                                                          shape_string(spec.shape), ")"));
    // A NaN or an infinity in a weight makes every result meaningless.
    for (std::size_t i = 0; i < t->data.size(); ++i)
      if (!std::isfinite(t->data[i]))
        return absl::InvalidArgumentError(absl::StrCat("safetensors ", file.origin(),
                                                       ": tensor '", spec.name, "' holds ",
                                                       t->data[i], " at element ", i));
    out.push_back(*std::move(t));
  }
  return out;
}

} // namespace

absl::StatusOr<std::vector<weight_tensor>> load_layer_weights(const safetensors_file& file,
                                                              const model_profile& p, int layer) {
  if (layer < 0 || layer >= p.num_layers)
    return absl::InvalidArgumentError(absl::StrCat("model '", p.name, "' has no layer ", layer,
                                                   " (it has ", p.num_layers, ")"));
  return load_specs(file, p, layer_tensor_specs(p, layer));
}

absl::StatusOr<std::vector<weight_tensor>> load_global_weights(const safetensors_file& file,
                                                               const model_profile& p) {
  return load_specs(file, p, global_tensor_specs(p));
}

absl::StatusOr<std::vector<weight_tensor>> load_model_weights(const safetensors_file& file,
                                                              const model_profile& p) {
  if (auto s = check_model_file(file, p); !s.ok())
    return s;
  return load_specs(file, p, model_tensor_specs(p));
}

} // namespace satemu::gpu
