// Safetensors: half/bfloat16 conversions against exact references, write ->
// read round trips, every malformed-file case named in its error, and model
// loading that checks names and shapes.
#include "gpu/half.hpp"
#include "gpu/safetensors.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace satemu::gpu {
namespace {

namespace fs = std::filesystem;

model_profile get(std::string_view name) {
  auto p = find_model(name);
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : model_profile{};
}

// A unique scratch path under GoogleTest's temporary directory.
std::string scratch(const std::string& leaf) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return (fs::path(::testing::TempDir()) /
          (std::string("satemu_") + info->name() + "_" + leaf))
      .string();
}

// A file from a raw header text and data section.
std::string raw_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(n >> (8 * i));
  return out + header + data;
}

std::string encode(const std::vector<weight_tensor>& tensors, safetensors_dtype dtype,
                   const std::map<std::string, std::string>& metadata = {}) {
  std::ostringstream out;
  auto s = write_safetensors(out, tensors, dtype, metadata);
  EXPECT_TRUE(s.ok()) << s;
  return out.str();
}

// Expects `bytes` to be rejected with a message containing every `needle`.
void expect_rejected(const std::string& bytes, std::initializer_list<const char*> needles) {
  auto f = safetensors_file::parse(bytes, "test.safetensors");
  ASSERT_FALSE(f.ok()) << "accepted: " << bytes.substr(8);
  const std::string msg(f.status().message());
  EXPECT_NE(msg.find("test.safetensors"), std::string::npos) << msg;
  for (const char* n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "'" << n << "' not in: " << msg;
}

// ---- conversions ----------------------------------------------------------

// binary16 value computed independently in double.
double f16_reference(std::uint16_t h) {
  const int sign = (h >> 15) ? -1 : 1;
  const int exp = (h >> 10) & 0x1f;
  const int mant = h & 0x3ff;
  if (exp == 0)
    return sign * std::ldexp(mant, -24);
  if (exp == 31)
    return mant ? std::nan("") : sign * INFINITY;
  return sign * std::ldexp(1024 + mant, exp - 25);
}

TEST(Safetensors, HalfToFloatIsExactForAllBitPatterns) {
  for (std::uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = fp16_bits_to_float(static_cast<std::uint16_t>(h));
    const double ref = f16_reference(static_cast<std::uint16_t>(h));
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(f)))) << h;
      continue;
    }
    ASSERT_EQ(static_cast<double>(f), ref) << h;
    EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
    // Every half survives the trip back (+0 and -0 included).
    ASSERT_EQ(float_to_fp16_bits(f), h) << h;
  }
}

TEST(Safetensors, FloatToHalfRoundsToNearestEven) {
  EXPECT_EQ(float_to_fp16_bits(1.0f), 0x3c00);
  EXPECT_EQ(float_to_fp16_bits(-2.0f), 0xc000);
  EXPECT_EQ(float_to_fp16_bits(65504.0f), 0x7bff);  // largest half
  EXPECT_EQ(float_to_fp16_bits(65519.0f), 0x7bff);  // below the midpoint
  EXPECT_EQ(float_to_fp16_bits(65520.0f), 0x7c00);  // the tie rounds to even: infinity
  EXPECT_EQ(float_to_fp16_bits(1e10f), 0x7c00);
  EXPECT_EQ(float_to_fp16_bits(-INFINITY), 0xfc00);
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -14)), 0x0400); // smallest normal
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -24)), 0x0001); // smallest subnormal
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.0f, -25)), 0x0000); // tie to even: zero
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(float_to_fp16_bits(std::ldexp(3.0f, -25)), 0x0002); // 1.5 ulp: tie to even
  EXPECT_EQ(float_to_fp16_bits(1.0f + std::ldexp(1.0f, -11)), 0x3c00); // tie, even stays
  EXPECT_EQ(float_to_fp16_bits(1.0f + std::ldexp(3.0f, -11)), 0x3c02); // tie, odd rounds up
  EXPECT_EQ(float_to_fp16_bits(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(fp16_bits_to_float(float_to_fp16_bits(NAN))));

  // Against a brute-force nearest-value search over a sweep of floats.
  // (From 2^-25 up to 65520, where rounding to infinity begins.)
  for (std::uint32_t bits = 0x33000000u; bits < 0x477ff000u; bits += 0x1357u) {
    const float x = std::bit_cast<float>(bits);
    const std::uint16_t h = float_to_fp16_bits(x);
    const double err = std::abs(fp16_bits_to_float(h) - static_cast<double>(x));
    for (int d : {-1, 1}) {
      const auto n = static_cast<std::uint16_t>(h + d);
      if (n > 0x7bff)
        continue;
      EXPECT_LE(err, std::abs(fp16_bits_to_float(n) - static_cast<double>(x))) << x;
    }
  }
}

TEST(Safetensors, Bfloat16Conversions) {
  EXPECT_EQ(float_to_bf16_bits(1.0f), 0x3f80);
  EXPECT_EQ(bf16_bits_to_float(0x3f80), 1.0f);
  EXPECT_EQ(bf16_bits_to_float(0xc2f7), -123.5f);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even (1) wins.
  EXPECT_EQ(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8)), 0x3f80);
  EXPECT_EQ(float_to_bf16_bits(1.0f + std::ldexp(3.0f, -8)), 0x3f82);
  EXPECT_EQ(float_to_bf16_bits(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3f81);
  EXPECT_EQ(float_to_bf16_bits(INFINITY), 0x7f80);
  EXPECT_EQ(float_to_bf16_bits(3.4e38f), 0x7f80); // rounds past the largest finite
  EXPECT_TRUE(std::isnan(bf16_bits_to_float(float_to_bf16_bits(NAN))));
  for (std::uint32_t b = 0; b <= 0xffff; ++b) {
    const float f = bf16_bits_to_float(static_cast<std::uint16_t>(b));
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bf16_bits(f), b);
    }
  }
}

// ---- round trips ----------------------------------------------------------

std::vector<weight_tensor> sample_tensors() {
  weight_tensor a{"a.weight", {3, 4}, {}};
  for (int i = 0; i < 12; ++i)
    a.data.push_back(0.37f * static_cast<float>(i) - 1.9f);
  weight_tensor b{"b.bias", {5}, {1.0f, -0.5f, 0.25f, 1e-3f, 3e4f}};
  weight_tensor c{"scalar", {}, {42.0f}};
  weight_tensor d{"empty", {0, 7}, {}};
  return {a, b, c, d};
}

TEST(Safetensors, RoundTripF32IsExact) {
  const auto tensors = sample_tensors();
  const std::string bytes = encode(tensors, safetensors_dtype::f32, {{"format", "pt"}});
  // Header padded to 8 bytes, as the reference writer does.
  EXPECT_EQ((bytes.size() - 8 - (12 + 5 + 1) * 4) % 8, 0u);
  auto f = safetensors_file::parse(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->metadata().at("format"), "pt");
  ASSERT_EQ(f->entries().size(), 4u);
  for (const auto& t : tensors) {
    auto r = f->read(t.name);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->shape, t.shape);
    EXPECT_EQ(r->data, t.data) << t.name;
    EXPECT_EQ(f->find(t.name)->dtype, safetensors_dtype::f32);
  }
  // Independent check of the header with a JSON parser.
  const std::uint64_t n = static_cast<unsigned char>(bytes[0]) |
                          static_cast<std::uint64_t>(static_cast<unsigned char>(bytes[1])) << 8;
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["a.weight"]["dtype"], "F32");
  EXPECT_EQ(header["a.weight"]["shape"], nlohmann::json::array({3, 4}));
  EXPECT_EQ(header["a.weight"]["data_offsets"], nlohmann::json::array({0, 48}));
  EXPECT_EQ(header["b.bias"]["data_offsets"], nlohmann::json::array({48, 68}));
  float first;
  std::memcpy(&first, bytes.data() + 8 + n, 4); // little-endian host
  EXPECT_EQ(first, tensors[0].data[0]);
}

TEST(Safetensors, RoundTripHalfAndBfloat16) {
  const auto tensors = sample_tensors();
  for (auto dtype : {safetensors_dtype::f16, safetensors_dtype::bf16}) {
    auto f = safetensors_file::parse(encode(tensors, dtype));
    ASSERT_TRUE(f.ok()) << f.status();
    const double rel = dtype == safetensors_dtype::f16 ? std::ldexp(1.0, -11) : std::ldexp(1.0, -8);
    for (const auto& t : tensors) {
      EXPECT_EQ(f->find(t.name)->dtype, dtype);
      auto r = f->read(t.name);
      ASSERT_TRUE(r.ok()) << r.status();
      ASSERT_EQ(r->data.size(), t.data.size());
      for (std::size_t i = 0; i < t.data.size(); ++i) {
        EXPECT_NEAR(r->data[i], t.data[i], rel * std::abs(t.data[i]) + 1e-7) << t.name << i;
        // Exactly the rounding of the conversion function.
        const float expect = dtype == safetensors_dtype::f16
                                 ? fp16_bits_to_float(float_to_fp16_bits(t.data[i]))
                                 : bf16_bits_to_float(float_to_bf16_bits(t.data[i]));
        EXPECT_EQ(r->data[i], expect);
      }
    }
  }
}

TEST(Safetensors, WriterRejectsBadTensors) {
  std::ostringstream out;
  auto t = sample_tensors();
  t.push_back(t[0]);
  auto s = write_safetensors(out, t, safetensors_dtype::f32);
  EXPECT_NE(s.message().find("duplicate tensor name 'a.weight'"), std::string::npos) << s;
  weight_tensor bad{"x", {2, 3}, {1, 2, 3}};
  s = write_safetensors(out, {bad}, safetensors_dtype::f32);
  EXPECT_NE(s.message().find("holds 3 values"), std::string::npos) << s;
  weight_tensor meta{"__metadata__", {1}, {1}};
  EXPECT_FALSE(write_safetensors(out, {meta}, safetensors_dtype::f32).ok());
}

// ---- malformed files ------------------------------------------------------

TEST(Safetensors, RejectsMalformedFiles) {
  expect_rejected("abc", {"too short", "3 bytes"});
  expect_rejected(raw_file("{}", "") .substr(0, 8) + std::string(1, '{'), {"header length 2"});
  {
    std::string f = raw_file("{}", "");
    f[0] = static_cast<char>(0xe8); // 1000
    f[1] = 0x03;
    expect_rejected(f, {"header length 1000", "runs past the end"});
  }
  expect_rejected(raw_file("{\"a\": {\"dtype\": ", ""), {"malformed JSON"});
  expect_rejected(raw_file("[1, 2]", ""), {"malformed JSON", "expected an object"});
  expect_rejected(raw_file(R"({"a": {"dtype": "I8", "shape": [2], "data_offsets": [0, 2]}})",
                           std::string(2, '\0')),
                  {"tensor 'a'", "unsupported dtype 'I8'"});
  expect_rejected(raw_file(R"({"a": {"shape": [2], "data_offsets": [0, 8]}})",
                           std::string(8, '\0')),
                  {"tensor 'a'", "no \"dtype\""});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})",
                           std::string(8, '\0')),
                  {"tensor 'a'", "shape", "not a non-negative integer"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})",
                           std::string(8, '\0')),
                  {"tensor 'a'", "data_offsets [0, 16]", "out of range", "8 bytes"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})",
                           std::string(8, '\0')),
                  {"tensor 'a'", "span 8 bytes", "shape [3] of F32 needs 12"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})",
                           std::string(8, '\0')),
                  {"end before they begin"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0]}})",
                           std::string(8, '\0')),
                  {"expected [begin, end]"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F16", "shape": [4], "data_offsets": [4, 12]}})",
                           std::string(12, '\0')),
                  {"'a' [0, 8]", "'b' [4, 12]", "overlap"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                           std::string(8, '\0')),
                  {"gap of 4 unused bytes before tensor 'a'"});
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                           std::string(8, '\0')),
                  {"4 trailing bytes"});
  expect_rejected(raw_file(R"({"__metadata__": {"n": 3}})", ""), {"__metadata__", "'n'"});
  // A name or value from the header is shown by its start, not whole.
  const std::string long_name(5000, 'w');
  const std::string clipped_name = "tensor '" + long_name.substr(0, 60) + "...' (5000 bytes)";
  expect_rejected(raw_file("{\"" + long_name + "\": {\"dtype\": \"F32\", \"shape\": [2]}}", ""),
                  {clipped_name.c_str(), "no \"data_offsets\""});
  const std::string long_dtype = std::string(200, 'Q');
  const std::string clipped_dtype = "unsupported dtype '" + long_dtype.substr(0, 60) + "...'";
  expect_rejected(raw_file(R"({"a": {"dtype": ")" + long_dtype +
                               R"(", "shape": [2], "data_offsets": [0, 8]}})",
                           std::string(8, '\0')),
                  {"tensor 'a'", clipped_dtype.c_str()});
  std::string long_list = "[[1";
  for (int i = 0; i < 1000; ++i) long_list += ",1";
  long_list += "]]";
  const std::string held = "\"shape\" holds " + long_list.substr(1, 60) + "..., not a";
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": )" + long_list +
                               R"(, "data_offsets": [0, 8]}})",
                           std::string(8, '\0')),
                  {held.c_str()});
  const std::string long_number = std::string(5000, '1');
  expect_rejected(raw_file(R"({"a": {"dtype": "F32", "shape": [)" + long_number + "]}}", ""),
                  {"malformed JSON header: [json.exception", "number overflow", "111..."});
  auto f = safetensors_file::parse(
      raw_file(R"({"a": {"dtype": "F32", "shape": [)" + long_number + "]}}", ""), "t");
  EXPECT_LT(f.status().message().size(), 400u) << f.status();
}

TEST(Safetensors, TruncatedDataIsNamed) {
  std::string bytes = encode(sample_tensors(), safetensors_dtype::f32);
  bytes.resize(bytes.size() - 3);
  expect_rejected(bytes, {"out of range", "truncated"});
}

TEST(Safetensors, FilesOnDisk) {
  const std::string path = scratch("t.safetensors");
  ASSERT_TRUE(write_safetensors_file(path, sample_tensors(), safetensors_dtype::bf16).ok());
  EXPECT_FALSE(fs::exists(path + ".partial"));
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->origin(), path);
  auto b = f->read("b.bias");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->data[1], -0.5f);
  auto missing = f->read("nope");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing tensor 'nope'"), std::string::npos);

  // Truncated on disk: the header check catches it at open.
  fs::resize_file(path, fs::file_size(path) - 2);
  auto t = safetensors_file::open(path);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("truncated"), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status();

  auto none = safetensors_file::open(scratch("does-not-exist"));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  {
    std::ofstream(scratch("short")) << "abc";
  }
  auto s = safetensors_file::open(scratch("short"));
  EXPECT_NE(s.status().message().find("too short"), std::string::npos) << s.status();
  // A corrupt length inside a large (sparse) file is refused before allocating.
  {
    std::ofstream big(scratch("big"), std::ios::binary);
    big << raw_file("", "").substr(0, 8);
  }
  {
    std::fstream big(scratch("big"), std::ios::binary | std::ios::in | std::ios::out);
    const std::uint64_t len = 150'000'000;
    for (int i = 0; i < 8; ++i)
      big.put(static_cast<char>(len >> (8 * i)));
  }
  fs::resize_file(scratch("big"), 200'000'000);
  auto big = safetensors_file::open(scratch("big"));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("header length 150000000 exceeds the format's limit"),
            std::string::npos)
      << big.status();
  fs::remove(path);
  fs::remove(scratch("short"));
  fs::remove(scratch("big"));
}

// ---- models ---------------------------------------------------------------

std::vector<weight_tensor> synthetic_model(const model_profile& p) {
  auto all = synthesize_globals(p);
  for (int l = 0; l < p.num_layers; ++l) {
    auto layer = synthesize_layer(p, l);
    EXPECT_TRUE(layer.ok());
    all.insert(all.end(), layer->begin(), layer->end());
  }
  return all;
}

TEST(Safetensors, ExportedSyntheticModelLoadsBack) {
  for (const char* name : {"tiny", "tiny-qwen-moe"}) {
    const auto p = get(name);
    const std::string path = scratch(std::string(name) + ".safetensors");
    ASSERT_TRUE(export_synthetic_model(path, p, 0, safetensors_dtype::f32).ok());
    auto f = safetensors_file::open(path);
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->metadata().at("satemu.model"), name);
    EXPECT_EQ(f->metadata().at("format"), "pt");
    EXPECT_TRUE(check_model_file(*f, p).ok()) << check_model_file(*f, p);
    auto loaded = load_model_weights(*f, p);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    const auto expected = synthetic_model(p);
    ASSERT_EQ(loaded->size(), expected.size());
    for (const auto& e : expected) {
      const weight_tensor* got = find_tensor(*loaded, e.name);
      ASSERT_NE(got, nullptr) << e.name;
      EXPECT_EQ(got->shape, e.shape);
      EXPECT_EQ(got->data, e.data) << e.name;
    }
    auto layer1 = load_layer_weights(*f, p, 1);
    ASSERT_TRUE(layer1.ok());
    EXPECT_EQ(layer1->size(), layer_tensor_specs(p, 1).size());
    EXPECT_FALSE(load_layer_weights(*f, p, 2).ok());
    fs::remove(path);
  }
}

TEST(Safetensors, Bf16ExportLoadsAsRoundedSyntheticWeights) {
  const auto p = get("tiny-gemma");
  const std::string path = scratch("g.safetensors");
  ASSERT_TRUE(export_synthetic_model(path, p, 3, safetensors_dtype::bf16).ok());
  auto f = safetensors_file::open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  auto layer = load_layer_weights(*f, p, 0);
  ASSERT_TRUE(layer.ok()) << layer.status();
  auto expected = synthesize_layer(p, 0, 3);
  ASSERT_TRUE(expected.ok());
  for (std::size_t i = 0; i < expected->size(); ++i)
    for (std::size_t k = 0; k < (*expected)[i].data.size(); ++k)
      ASSERT_EQ((*layer)[i].data[k], bf16_bits_to_float(float_to_bf16_bits((*expected)[i].data[k])));
  fs::remove(path);
}

TEST(Safetensors, MissingTensorAndWrongShapeAreNamed) {
  const auto p = get("tiny");
  auto tensors = synthetic_model(p);
  const std::string dropped = "model.layers.1.mlp.up_proj.weight";
  std::erase_if(tensors, [&](const weight_tensor& t) { return t.name == dropped; });
  for (auto& t : tensors)
    if (t.name == "model.layers.0.mlp.gate_proj.weight")
      t.shape = {64, 128}; // transposed: expected [128, 64]
  auto f = safetensors_file::parse(encode(tensors, safetensors_dtype::f16), "tiny.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();

  auto s = check_model_file(*f, p);
  ASSERT_FALSE(s.ok());
  const std::string msg(s.message());
  EXPECT_NE(msg.find("model 'tiny'"), std::string::npos) << msg;
  // With the shape it should have, for whoever converts a checkpoint.
  EXPECT_NE(msg.find("missing tensor '" + dropped + "' ["), std::string::npos) << msg;
  EXPECT_NE(msg.find("tensor 'model.layers.0.mlp.gate_proj.weight' has the wrong shape: "
                     "expected [128, 64], found [64, 128]"),
            std::string::npos)
      << msg;
  EXPECT_FALSE(load_model_weights(*f, p).ok());

  auto l1 = load_layer_weights(*f, p, 1);
  ASSERT_FALSE(l1.ok());
  EXPECT_NE(l1.status().message().find("missing tensor '" + dropped + "'"), std::string::npos)
      << l1.status();
  EXPECT_NE(l1.status().message().find("tiny.safetensors"), std::string::npos) << l1.status();
  auto l0 = load_layer_weights(*f, p, 0);
  ASSERT_FALSE(l0.ok());
  EXPECT_NE(l0.status().message().find("expected [128, 64], found [64, 128]"), std::string::npos)
      << l0.status();
  EXPECT_TRUE(load_global_weights(*f, p).ok());

  // A model the file was not made for: every mismatch counted, the list capped.
  auto other = check_model_file(*f, get("tiny-moe"));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.message().find("more"), std::string::npos) << other;
}

TEST(Safetensors, ExtraTensorsPassButNotALayerTheModelLacks) {
  const auto p = get("tiny");
  auto tensors = synthetic_model(p);
  tensors.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {4}, {1, 2, 3, 4}});
  auto f = safetensors_file::parse(encode(tensors, safetensors_dtype::f32), "extra.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(check_model_file(*f, p).ok());
  // A layer past the model's last: a deeper checkpoint of the same widths.
  tensors.push_back({"model.layers.2.input_layernorm.weight", {2}, {1, 1}});
  f = safetensors_file::parse(encode(tensors, safetensors_dtype::f32), "deeper.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  auto s = check_model_file(*f, p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("it holds layer 2 but the model has 2 layers (0..1)"),
            std::string::npos)
    << s;
  // So is one whose number does not fit 64 bits.
  tensors.back().name = "model.layers.99999999999999999999.input_layernorm.weight";
  f = safetensors_file::parse(encode(tensors, safetensors_dtype::f32), "huge.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  s = check_model_file(*f, p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("it holds layer 99999999999999999999 but"), std::string::npos) << s;
  // A parameter the model's layers lack (a Qwen2-style q bias under a
  // Llama profile) would be dropped without a word: refused, named.
  tensors.pop_back();
  tensors.push_back({"model.layers.0.self_attn.q_proj.bias", {64}, std::vector<float>(64, 1)});
  f = safetensors_file::parse(encode(tensors, safetensors_dtype::f32), "bias.safetensors");
  ASSERT_TRUE(f.ok()) << f.status();
  s = check_model_file(*f, p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("tensor 'model.layers.0.self_attn.q_proj.bias' is no parameter of "
                             "the model's layers (it would be dropped)"),
            std::string::npos)
    << s;
}

TEST(Safetensors, ANonFiniteWeightIsRefusedNamingIt) {
  // The reader reads what the file holds; a model's weights must be finite.
  const auto p = get("tiny");
  const std::string name = "model.layers.1.mlp.up_proj.weight";
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(),
                          std::numeric_limits<float>::infinity(), 1e5f}) {
    auto tensors = synthetic_model(p);
    for (auto& t : tensors)
      if (t.name == name)
        t.data[4] = bad;
    // In fp16 a finite fp32 value past 65504 is an infinity too.
    for (auto dtype : {safetensors_dtype::f32, safetensors_dtype::f16}) {
      auto f = safetensors_file::parse(encode(tensors, dtype), "bad.safetensors");
      ASSERT_TRUE(f.ok()) << f.status();
      EXPECT_TRUE(f->read(name).ok());
      EXPECT_TRUE(load_layer_weights(*f, p, 0).ok());
      auto l = load_layer_weights(*f, p, 1);
      if (std::isfinite(bad) && dtype == safetensors_dtype::f32) {
        EXPECT_TRUE(l.ok()) << l.status();
        continue;
      }
      ASSERT_FALSE(l.ok()) << bad;
      EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(l.status().message().find("bad.safetensors: tensor '" + name + "' holds "),
                std::string::npos)
        << l.status();
      EXPECT_NE(l.status().message().find(" at element 4"), std::string::npos) << l.status();
    }
  }
}

} // namespace
} // namespace satemu::gpu
