// SkyMemory building blocks: chained hashes, the LRU store, prompts,
// layouts on a shell, prefill timing.
#include "actors/kvcache.hpp"

#include <algorithm>
#include <tuple>

#include "gpu/gpu_worker.hpp"

namespace satemu::actors::skymemory {

namespace {
constexpr std::uint64_t root_hash = 0x5eed'cafe'f00d'b10cULL;
} // namespace

std::vector<std::uint64_t> block_hashes(std::span<const std::uint32_t> tokens,
                                        std::uint32_t block_tokens, std::uint32_t owner) {
  std::vector<std::uint64_t> out;
  if (block_tokens == 0)
    return out;
  std::uint64_t parent = runtime::hash_combine(root_hash, owner);
  for (std::size_t b = 0; (b + 1) * block_tokens <= tokens.size(); ++b) {
    std::uint64_t h = runtime::hash_combine(parent, block_tokens);
    for (std::size_t i = b * block_tokens; i < (b + 1) * block_tokens; ++i)
      h = runtime::hash_combine(h, tokens[i]);
    out.push_back(h);
    parent = h;
  }
  return out;
}

lru_store::put_result lru_store::put(const stored_chunk& c) {
  put_result r;
  if (c.bytes > capacity_)
    return r;
  if (auto it = index_.find(c.hash); it != index_.end()) {
    used_ -= it->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
  }
  while (used_ + c.bytes > capacity_ && !lru_.empty()) {
    r.evicted.push_back(lru_.front());
    used_ -= lru_.front().bytes;
    index_.erase(lru_.front().hash);
    lru_.pop_front();
  }
  lru_.push_back(c);
  index_[c.hash] = std::prev(lru_.end());
  used_ += c.bytes;
  r.stored = true;
  return r;
}

const stored_chunk* lru_store::get(std::uint64_t hash) {
  auto it = index_.find(hash);
  if (it == index_.end())
    return nullptr;
  lru_.splice(lru_.end(), lru_, it->second);
  return &*it->second;
}

std::vector<stored_chunk> lru_store::take_owner(std::uint32_t owner) {
  std::vector<stored_chunk> out;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->owner == owner) {
      out.push_back(*it);
      used_ -= it->bytes;
      index_.erase(it->hash);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::vector<std::uint64_t> lru_store::order() const {
  std::vector<std::uint64_t> out;
  out.reserve(lru_.size());
  for (const auto& c : lru_)
    out.push_back(c.hash);
  return out;
}

prompt make_prompt(const prompt_spec& spec, std::uint64_t seed, runtime::rng& r) {
  prompt p;
  p.header = spec.headers > 1 ? static_cast<std::uint32_t>(r.next() % spec.headers) : 0;
  p.tokens.reserve(spec.prompt_tokens);
  auto header = runtime::rng::from_state(runtime::hash_combine(runtime::hash_combine(seed, 0x4eade7), p.header));
  const auto shared = std::min(spec.shared_tokens, spec.prompt_tokens);
  for (std::uint32_t i = 0; i < shared; ++i)
    p.tokens.push_back(static_cast<std::uint32_t>(header.next() % spec.vocab));
  for (std::uint32_t i = shared; i < spec.prompt_tokens; ++i)
    p.tokens.push_back(static_cast<std::uint32_t>(r.next() % spec.vocab));
  return p;
}

absl::StatusOr<layout_tracker> layout_tracker::make(int planes, int sats_per_plane,
                                                    double altitude_m, strategy s, int servers,
                                                    bool in_plane, int phasing) {
  layout_tracker t;
  t.in_plane_ = in_plane;
  t.phasing_ = phasing;
  t.g_.planes = in_plane ? 1 : planes;
  t.g_.sats_per_plane = sats_per_plane;
  t.g_.altitude_m = altitude_m;
  t.g_.center_plane_index = 0;
  t.g_.center_satellite_index = 0;
  t.s_ = s;
  t.servers_ = servers;
  if (auto b = make_layout(t.g_, s, servers); !b.ok())
    return b.status();
  return t;
}

namespace {

// How many times a move from plane `from` by `planes` (in (-P/2, P/2])
// crosses the seam forwards (last plane to the first): -1, 0 or 1.
int seam_crossings(int from, int planes, int ring) {
  const int to = from + planes;
  return to >= ring ? 1 : to < 0 ? -1 : 0;
}

} // namespace

std::vector<std::uint32_t> layout_tracker::layout_around(std::uint32_t centre) const {
  grid g = g_;
  const int n = g.sats_per_plane;
  const int plane = static_cast<int>(centre) / n;
  g.center_plane_index = in_plane_ ? 0 : plane;
  g.center_satellite_index = static_cast<int>(centre) % n;
  // make() checked the server count against the grid, which does not change.
  const auto offsets = *make_layout(g, s_, servers_);
  std::vector<std::uint32_t> out;
  out.reserve(offsets.size());
  for (auto o : offsets) {
    if (!in_plane_)
      o.satellite += phasing_ * seam_crossings(plane, o.plane, g.planes);
    const auto c = cell_of(g, o);
    out.push_back(static_cast<std::uint32_t>((in_plane_ ? plane : c.plane) * n + c.satellite));
  }
  return out;
}

offset layout_tracker::offset_from(std::uint32_t centre, std::uint32_t sat) const {
  const int n = g_.sats_per_plane;
  const int from_plane = static_cast<int>(centre) / n;
  const int planes = in_plane_ ? 1 << 20 : g_.planes;
  const int dp = ring_offset(from_plane, static_cast<int>(sat) / n, planes);
  const int shift = in_plane_ ? 0 : phasing_ * seam_crossings(from_plane, dp, planes);
  return {dp, ring_offset(static_cast<int>(centre) % n + shift, static_cast<int>(sat) % n, n)};
}

void layout_tracker::reset(std::uint32_t centre) {
  centre_ = centre;
  slots_ = layout_around(centre);
}

std::vector<layout_tracker::move> layout_tracker::recentre(std::uint32_t centre) {
  std::vector<move> moves;
  if (!placed()) {
    reset(centre);
    return moves;
  }
  if (centre == centre_)
    return moves;
  centre_ = centre;
  if (s_ == strategy::hop)
    return moves;
  const auto target = layout_around(centre);
  std::vector<std::uint32_t> sorted_target = target, sorted_slots = slots_;
  std::sort(sorted_target.begin(), sorted_target.end());
  std::sort(sorted_slots.begin(), sorted_slots.end());
  std::vector<std::size_t> leaving; // slot positions
  for (std::size_t i = 0; i < slots_.size(); ++i)
    if (!std::binary_search(sorted_target.begin(), sorted_target.end(), slots_[i]))
      leaving.push_back(i);
  std::vector<std::uint32_t> entering;
  for (auto sat : target)
    if (!std::binary_search(sorted_slots.begin(), sorted_slots.end(), sat))
      entering.push_back(sat);
  auto by_offset = [&](std::uint32_t a, std::uint32_t b) {
    const auto oa = offset_from(centre, a), ob = offset_from(centre, b);
    return std::tie(oa.plane, oa.satellite, a) < std::tie(ob.plane, ob.satellite, b);
  };
  std::sort(leaving.begin(), leaving.end(),
            [&](std::size_t a, std::size_t b) { return by_offset(slots_[a], slots_[b]); });
  std::sort(entering.begin(), entering.end(), by_offset);
  // Both sets have the same size: the old and new layouts have `servers`
  // distinct satellites each.
  for (std::size_t i = 0; i < leaving.size() && i < entering.size(); ++i) {
    moves.push_back({slots_[leaving[i]], entering[i]});
    slots_[leaving[i]] = entering[i];
  }
  return moves;
}

std::uint64_t kv_block_bytes(const gpu::model_profile& m, std::uint32_t block_tokens) {
  return static_cast<std::uint64_t>(gpu::kv_bytes_per_token(m, 2)) * block_tokens;
}

runtime::duration prefill_time(const gpu::model_profile& m, const gpu::hardware_profile& hw,
                               std::int64_t new_tokens, std::int64_t past_tokens) {
  if (new_tokens <= 0)
    return runtime::duration::zero();
  // What compute.mode: real charges for the same prefill: each layer as one
  // request (gpu_worker.hpp), then the LM head.
  constexpr auto fp16 = gpu::compute_precision::fp16;
  const double bpe = gpu::element_bytes(fp16);
  runtime::duration total = runtime::duration::zero();
  for (int l = 0; l < m.num_layers; ++l)
    total = total.plus_or_max(
      gpu::modeled_duration(hw, fp16, gpu::layer_cost(m, l, new_tokens, past_tokens, bpe)));
  return total.plus_or_max(gpu::modeled_duration(hw, fp16, gpu::lm_head_cost(m, bpe)));
}

runtime::duration decode_time(const gpu::model_profile& m, const gpu::hardware_profile& hw,
                              std::int64_t context, std::int64_t output_tokens) {
  // Step k (1 .. output_tokens - 1) runs the k-th output token against the
  // prompt and the k - 1 output tokens before it.
  runtime::duration total = runtime::duration::zero();
  for (std::int64_t k = 1; k < output_tokens && total < runtime::duration::max(); ++k)
    total = total.plus_or_max(prefill_time(m, hw, 1, context + k - 1));
  return total;
}

} // namespace satemu::actors::skymemory
