/// Fuzz target: safetensors files (gpu/safetensors.hpp). A file the reader
/// accepts must read in full, every tensor with its header's shape; written
/// back as fp32 (lossless from every dtype read) it must parse again and
/// read to the same bits.
#include <algorithm>
#include <bit>
#include <sstream>

#include "gpu/safetensors.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace satemu::gpu;

std::vector<weight_tensor> read_all(const safetensors_file& f) {
  std::vector<weight_tensor> tensors;
  for (const safetensors_entry& e : f.entries()) {
    auto t = f.read(e.name);
    SATEMU_FUZZ_CHECK(t.ok(), "tensor '" + e.name + "' of an accepted file does not read: "
                                  + std::string(t.status().message()));
    SATEMU_FUZZ_CHECK(t->shape == e.shape
                          && t->elements() == static_cast<std::int64_t>(t->data.size()),
                      "tensor '" + e.name + "' reads with another shape");
    tensors.push_back(*std::move(t));
  }
  return tensors;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](float x, float y) {
    return std::bit_cast<std::uint32_t>(x) == std::bit_cast<std::uint32_t>(y);
  });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto f = safetensors_file::parse(std::string(satemu::fuzz::text_of(data, size)), "fuzz");
  if (!f.ok()) return 0;
  const std::vector<weight_tensor> tensors = read_all(*f);

  std::ostringstream out;
  const absl::Status written =
      write_safetensors(out, tensors, safetensors_dtype::f32, f->metadata());
  SATEMU_FUZZ_CHECK(written.ok(), "an accepted file does not write back: "
                                      + std::string(written.message()));
  auto again = safetensors_file::parse(out.str(), "written");
  SATEMU_FUZZ_CHECK(again.ok(), "the written file does not parse: "
                                    + std::string(again.status().message()));
  SATEMU_FUZZ_CHECK(again->metadata() == f->metadata(), "the metadata changed");
  const std::vector<weight_tensor> back = read_all(*again);
  SATEMU_FUZZ_CHECK(back.size() == tensors.size(), "tensors were lost");
  for (std::size_t i = 0; i < back.size(); ++i) {
    SATEMU_FUZZ_CHECK(back[i].name == tensors[i].name && back[i].shape == tensors[i].shape,
                      "tensor '" + tensors[i].name + "' changed name or shape");
    SATEMU_FUZZ_CHECK(same_bits(back[i].data, tensors[i].data),
                      "tensor '" + tensors[i].name + "' changed its values");
  }
  return 0;
}
