/// satemu SkyMemory analytic model: where a prompt's KV-cache chunks live on a
/// torus of satellites, and how long fetching them back takes.
///
/// The closed-form model of SkyMemory (Sandholm et al., arXiv 2505.14427),
/// as pure functions (no actors, no emulation):
///
/// - The constellation is a torus grid of M planes with N satellites each,
///   at altitude h. The user sits under a centre satellite. Neighbours in a
///   plane are the chord 2(Re+h)sin(pi/N) apart, neighbouring planes
///   2(Re+h)sin(pi/M), Re = 6371 km. Offsets from the centre wrap around
///   both axes and take the shorter way (`ring_offset`).
/// - The KV cache of kv bytes is cut into n = ceil(kv / chunk) chunks; chunk
///   i goes to server i mod S of a layout of S servers, so the first n mod S
///   servers of the layout hold one chunk more.
/// - Layouts (`strategy`): `rotation` fills a square box centred on the
///   user's satellite plane by plane, `hop` takes satellites breadth-first
///   over the ISLs from the centre satellite, `hop_rotation` takes them
///   breadth-first but only inside the box (`make_layout`).
/// - Distances: `hop` counts the ISL path from the centre satellite,
///   |plane offset| x plane spacing + |satellite offset| x in-plane spacing;
///   `rotation` and `hop_rotation` the ground user's slant distance
///   sqrt((plane offset x plane spacing)^2 + (satellite offset x in-plane
///   spacing)^2 + h^2). Each offset goes with the spacing along its own
///   axis: plane offsets with the inter-plane chord (M), satellite offsets
///   with the in-plane chord (N). On a square grid the two are equal.
/// - Server j answers after distance_j / c + chunk_time x chunks_j, with the
///   paper's c = 2.998e8 m/s; fetches run in parallel, so the fetch time is
///   the largest of these (`evaluate`).
///
/// Coordinates here are 0-based cell indices (plane index, satellite index);
/// scenario files and reports number planes and satellites from 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/time.hpp"

namespace satemu::actors::skymemory {

/// How chunks are laid out on satellites.
enum class strategy {
  rotation,     ///< a box centred on the user's satellite, plane by plane
  hop,          ///< breadth-first over the ISLs from the centre satellite
  hop_rotation, ///< breadth-first, confined to the box
};

/// "rotation", "hop", "hop_rotation".
std::string to_string(strategy s);
/// The strategy named `name`, or nullopt.
std::optional<strategy> parse_strategy(std::string_view name);
/// Every strategy, in declaration order.
const std::vector<strategy>& all_strategies();

/// The satellite grid and where the user is.
struct grid {
  int planes = 15;         ///< M, >= 1
  int sats_per_plane = 15; ///< N, >= 1
  /// 0-based plane index of the satellite above the user.
  int center_plane_index = 7;
  /// 0-based satellite index (within its plane) of the satellite above the user.
  int center_satellite_index = 7;
  double altitude_m = 1'920'000;
};

/// Distance between neighbouring satellites of a plane: 2(Re+h)sin(pi/N) [m].
double in_plane_spacing_m(const grid& g);
/// Distance between neighbouring planes: 2(Re+h)sin(pi/M) [m].
double inter_plane_spacing_m(const grid& g);

/// Signed offset from index `from` to index `to` on a ring of `n`, the
/// shorter way round: in (-n/2, n/2] (a tie, n/2 on an even ring, is +n/2).
int ring_offset(int from, int to, int n);

/// Offset of a satellite from the centre satellite, the shorter way round.
struct offset {
  int plane = 0;     ///< plane offset
  int satellite = 0; ///< satellite offset within the plane
  bool operator==(const offset&) const = default;
};

/// The box of the box strategies: every satellite whose plane offset is in
/// `plane_offsets` and whose satellite offset is in `satellite_offsets`.
///
/// The requested side is ceil(sqrt(S)). A box centred on the user needs an
/// odd side, so the half-width is r = floor(side / 2) and an even side grows
/// by one (S = 16: 5x5, of which the first 16 cells are used). Where 2r+1
/// exceeds the ring along an axis, the box is clipped to that ring's N (or
/// M) distinct offsets; while the clipped box has fewer than S cells, r grows
/// by one. No satellite is ever used twice; S > N x M is an error.
struct box {
  int side = 0;        ///< requested side, ceil(sqrt(S))
  int half_width = 0;  ///< r after growing
  std::vector<int> plane_offsets;     ///< ascending
  std::vector<int> satellite_offsets; ///< ascending
  /// Cells in the box.
  std::size_t cells() const { return plane_offsets.size() * satellite_offsets.size(); }
};

/// The box for `servers` servers. InvalidArgument when the grid has fewer
/// than `servers` satellites or `servers` < 1.
absl::StatusOr<box> make_box(const grid& g, int servers);

/// The `servers` satellites of a layout, in layout order (server j holds
/// chunks j, j+S, j+2S, ...), as offsets from the centre satellite:
/// - rotation: the box's cells by ascending plane offset, then ascending
///   satellite offset; the first S.
/// - hop: breadth-first from the centre satellite over the torus, the four
///   ISL neighbours of a satellite taken in the order previous plane, next
///   satellite, next plane, previous satellite; the first S reached.
/// - hop_rotation: the same breadth-first order, visiting only box cells.
/// InvalidArgument as make_box.
absl::StatusOr<std::vector<offset>> make_layout(const grid& g, strategy s, int servers);

/// 0-based (plane index, satellite index) of the satellite at `o`.
offset cell_of(const grid& g, offset o);

/// Distance over which server `o` serves the user under `s` [m]: the ISL
/// path for hop, the user's slant distance for the box strategies.
double distance_m(const grid& g, strategy s, offset o);

/// n = ceil(kv_bytes / chunk_bytes); chunk_bytes > 0.
std::uint64_t chunk_count(std::uint64_t kv_bytes, std::uint64_t chunk_bytes);

/// Chunks held by each of `servers` servers when n chunks are dealt out
/// round robin: floor(n/S), plus one for the first n mod S servers.
std::vector<std::uint64_t> chunks_per_server(std::uint64_t chunks, int servers);

/// One point of the model.
struct params {
  grid g;
  std::uint64_t kv_bytes = 21ull << 20;
  std::uint64_t chunk_bytes = 12'288;
  int servers = 81;
  /// Processing time per chunk at a server.
  runtime::duration chunk_time = runtime::milliseconds(20);
};

/// One server of a layout.
struct server_figures {
  offset at;            ///< offset from the centre satellite
  offset cell;          ///< 0-based (plane index, satellite index)
  double distance_m = 0;
  std::uint64_t chunks = 0;
  std::uint64_t bytes = 0; ///< the last chunk may be shorter than chunk_bytes
  double time_s = 0;       ///< distance / c + chunk_time x chunks
};

/// The model's answer for one strategy.
struct fetch_result {
  strategy s = strategy::rotation;
  std::uint64_t chunks = 0;             ///< n
  std::vector<server_figures> servers;  ///< in layout order
  /// Over the servers that hold at least one chunk (all of them when n >= S);
  /// the standard deviation is the population one.
  double fetch_s = 0, min_s = 0, mean_s = 0, std_s = 0;
  /// Box strategies: the box's extent in planes and satellites; hop: 0.
  int box_planes = 0, box_satellites = 0;
  /// Box strategies: what moves when the constellation advances one slot.
  /// Satellites move towards higher satellite indices, so a server whose
  /// satellite moves to a cell outside the layout (the box's column at its
  /// highest satellite offset, and in a box only partly filled the last
  /// cell of each row) migrates its chunks to a satellite entering the
  /// layout. 0 for hop (its layout stays on its satellites) and for a box
  /// that spans the whole plane.
  std::uint64_t migration_chunks = 0, migration_bytes = 0;
};

/// Evaluates the model at `p` for strategy `s`. InvalidArgument as make_box,
/// or when kv_bytes or chunk_bytes is 0.
absl::StatusOr<fetch_result> evaluate(const params& p, strategy s);

} // namespace satemu::actors::skymemory
