// Envelope costs: Cap'n Proto encode + decode of a mesh payload, and the CAF
// binary round trip used when an envelope crosses processes.
//
// Reference points (TOOLCHAIN.md, same class of machine): Cap'n Proto encode +
// decode of 256 B ~4-5 M msg/s per core; 64 KiB ~10-12 GB/s when the first
// segment fits the message.

#include <cstdint>
#include <vector>

#include <benchmark/benchmark.h>

#include "bench/bench_main.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "protocol/envelope.hpp"
#include "protocol/mesh.hpp"

namespace {

using namespace satemu::protocol;

void BM_Envelope_EncodeDecode(benchmark::State& state) {
  const auto body_bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> body(body_bytes);
  fill_mesh_pattern(1, body);
  mesh_message m{1, 2, 0, 0, body_bytes};
  std::size_t flat_bytes = 0;
  for (auto _ : state) {
    ++m.id;
    auto p = encode_mesh(m, body);
    auto v = view_mesh(*p);
    if (!v.ok()) {
      state.SkipWithError("decode failed");
      break;
    }
    // Read the header and touch both ends of the body.
    benchmark::DoNotOptimize(v->header.id);
    if (!v->body.empty()) {
      benchmark::DoNotOptimize(v->body.front());
      benchmark::DoNotOptimize(v->body.back());
    }
    flat_bytes = p->size_bytes();
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations()
                          * static_cast<std::int64_t>(body_bytes));
  state.counters["flat_bytes"] = static_cast<double>(flat_bytes);
}
BENCHMARK(BM_Envelope_EncodeDecode)->Arg(256)->Arg(65536);

void BM_Envelope_CafSerialize(benchmark::State& state) {
  const auto body_bytes = static_cast<std::size_t>(state.range(0));
  envelope e;
  e.src = 1;
  e.dst = 2;
  e.seq = 3;
  e.k = kind::mesh;
  e.body = encode_mesh({1, 2, 0, 3, body_bytes});
  std::vector<char> buf;
  buf.reserve(e.wire_size() + 64);
  for (auto _ : state) {
    buf.clear();
    caf::binary_serializer sink{nullptr, buf};
    if (sink(e)) {
      state.SkipWithError("serialize failed");
      break;
    }
    envelope out;
    caf::binary_deserializer source{nullptr, buf};
    if (source(out)) {
      state.SkipWithError("deserialize failed");
      break;
    }
    benchmark::DoNotOptimize(out.body->data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations()
                          * static_cast<std::int64_t>(e.wire_size()));
  state.counters["caf_bytes"] = static_cast<double>(buf.size());
}
BENCHMARK(BM_Envelope_CafSerialize)->Arg(256)->Arg(65536);

} // namespace

int main(int argc, char** argv) { return satemu::bench::run_benchmarks(argc, argv); }
