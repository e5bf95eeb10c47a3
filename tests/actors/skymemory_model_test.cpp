// Tests of the SkyMemory analytic model against figures worked out by hand
// from the model's formulas (the arithmetic is spelled out next to each
// number), and of its layout orders, wrap-around, chunk dealing, box growth
// and migration counts.
#include "actors/skymemory_model.hpp"

#include <cmath>
#include <numbers>
#include <set>
#include <utility>

#include <gtest/gtest.h>

namespace {

using namespace satemu::actors::skymemory;
using satemu::runtime::milliseconds;

// 5x5 grid at 550 km, user under the middle satellite (3, 3) numbered from 1.
grid grid_5x5() {
  grid g;
  g.planes = 5;
  g.sats_per_plane = 5;
  g.center_plane_index = 2;
  g.center_satellite_index = 2;
  g.altitude_m = 550e3;
  return g;
}

// 12 chunks: 11,500 bytes in 1,000-byte chunks (the last one 500 bytes),
// 10 ms each.
params small_point(int servers) {
  params p;
  p.g = grid_5x5();
  p.kv_bytes = 11'500;
  p.chunk_bytes = 1'000;
  p.servers = servers;
  p.chunk_time = milliseconds(10);
  return p;
}

// Spacing on the 5x5 grid: 2 (6371 + 550) km sin(180 deg / 5)
//   = 13842 km x 0.58778525229 = 8136.12346223 km, in both directions.
constexpr double d_5x5_m = 8'136'123.462232;
// Slant distances with h = 550 km:
//   centre  h                          =   550.000000 km
//   edge    sqrt(d^2 + h^2)            =  8154.692207 km
//   corner  sqrt(2 d^2 + h^2)          = 11519.353714 km
constexpr double centre_m = 550'000.0, edge_m = 8'154'692.207109, corner_m = 11'519'353.713876;
// Over c = 2.998e8 m/s: 1.834556 ms, 27.200441 ms, 38.423461 ms.
constexpr double centre_s = 0.001834556371, edge_s = 0.027200440984, corner_s = 0.038423461354;

std::vector<std::pair<int, int>> pairs(const std::vector<offset>& v) {
  std::vector<std::pair<int, int>> out;
  for (const auto& o : v)
    out.emplace_back(o.plane, o.satellite);
  return out;
}

TEST(skymemory_model, spacings_are_the_chords_of_each_ring) {
  const grid g = grid_5x5();
  EXPECT_NEAR(in_plane_spacing_m(g), d_5x5_m, 1e-3);
  EXPECT_NEAR(inter_plane_spacing_m(g), d_5x5_m, 1e-3);
  // 3 planes of 12: planes 2 (6921 km) sin(60 deg) = 11987.52 km apart,
  // satellites 2 (6921 km) sin(15 deg) = 3582.57 km apart.
  grid h = g;
  h.planes = 3;
  h.sats_per_plane = 12;
  EXPECT_NEAR(inter_plane_spacing_m(h), 2 * 6'921e3 * std::sqrt(3.0) / 2, 1e-3);
  EXPECT_NEAR(inter_plane_spacing_m(h), 11'987'523.6, 1.0);
  EXPECT_NEAR(in_plane_spacing_m(h), 3'582'573.2, 1.0);
}

TEST(skymemory_model, each_offset_goes_with_the_spacing_of_its_axis) {
  // 3 planes of 12 satellites: one plane over is 11987.52 km, one satellite
  // over 3582.57 km. Hop: ISL path lengths add up.
  grid g = grid_5x5();
  g.planes = 3;
  g.sats_per_plane = 12;
  g.center_plane_index = 1;
  g.center_satellite_index = 5;
  const double across = 11'987'523.6, along = 3'582'573.2;
  EXPECT_NEAR(distance_m(g, strategy::hop, {1, 0}), across, 1.0);
  EXPECT_NEAR(distance_m(g, strategy::hop, {0, 1}), along, 1.0);
  EXPECT_NEAR(distance_m(g, strategy::hop, {-1, -2}), across + 2 * along, 2.0);
  // Slant: sqrt(11987.52^2 + (2 x 3582.57)^2 + 550^2) km = 13976.50 km.
  EXPECT_NEAR(distance_m(g, strategy::rotation, {1, 2}), 13'976'499.8, 1.0);
  EXPECT_NEAR(distance_m(g, strategy::hop_rotation, {-1, -2}), 13'976'499.8, 1.0);
  // Swapping the axes would give sqrt(3582.57^2 + (2 x 11987.52)^2 + 550^2).
  EXPECT_GT(std::abs(distance_m(g, strategy::rotation, {2, 1}) - 13'976'499.8), 1e6);
  // The user is h below the centre satellite; hop has no altitude term.
  EXPECT_DOUBLE_EQ(distance_m(g, strategy::rotation, {0, 0}), 550e3);
  EXPECT_DOUBLE_EQ(distance_m(g, strategy::hop, {0, 0}), 0.0);
}

TEST(skymemory_model, offsets_wrap_the_shorter_way) {
  EXPECT_EQ(ring_offset(0, 4, 5), -1);
  EXPECT_EQ(ring_offset(0, 3, 5), -2);
  EXPECT_EQ(ring_offset(0, 2, 5), 2);
  EXPECT_EQ(ring_offset(4, 0, 5), 1);
  EXPECT_EQ(ring_offset(7, 7, 15), 0);
  EXPECT_EQ(ring_offset(7, 0, 15), -7);
  EXPECT_EQ(ring_offset(7, 14, 15), 7);
  EXPECT_EQ(ring_offset(0, 14, 15), -1);
  // A tie on an even ring goes the positive way.
  EXPECT_EQ(ring_offset(0, 2, 4), 2);
  EXPECT_EQ(ring_offset(3, 1, 4), 2);
  EXPECT_EQ(ring_offset(0, 0, 1), 0);

  // A user under the corner satellite (1, 1) of a 5x5 grid: the box wraps
  // to planes 5, 1, 2 and satellites 5, 1, 2 (numbered from 1).
  grid g = grid_5x5();
  g.center_plane_index = 0;
  g.center_satellite_index = 0;
  auto l = make_layout(g, strategy::rotation, 9);
  ASSERT_TRUE(l.ok()) << l.status();
  EXPECT_EQ(cell_of(g, (*l)[0]), (offset{4, 4}));
  EXPECT_EQ(cell_of(g, (*l)[1]), (offset{4, 0}));
  EXPECT_EQ(cell_of(g, (*l)[2]), (offset{4, 1}));
  EXPECT_EQ(cell_of(g, (*l)[8]), (offset{1, 1}));
  // The far corner (5, 5) is one plane and one satellite away, not four.
  EXPECT_NEAR(distance_m(g, strategy::hop, {ring_offset(0, 4, 5), ring_offset(0, 4, 5)}),
              2 * d_5x5_m, 1e-3);
  // Hop from a corner centre reaches (5, 1) first: the previous plane wraps.
  auto h = make_layout(g, strategy::hop, 3);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(cell_of(g, (*h)[1]), (offset{4, 0}));
  EXPECT_EQ(cell_of(g, (*h)[2]), (offset{0, 1}));
}

TEST(skymemory_model, rotation_fills_the_box_plane_by_plane) {
  auto l = make_layout(grid_5x5(), strategy::rotation, 9);
  ASSERT_TRUE(l.ok()) << l.status();
  const std::vector<std::pair<int, int>> want{{-1, -1}, {-1, 0}, {-1, 1}, {0, -1}, {0, 0},
                                              {0, 1},   {1, -1}, {1, 0},  {1, 1}};
  EXPECT_EQ(pairs(*l), want);
  // S = 8 takes the first 8 cells of the same 3x3 box.
  auto l8 = make_layout(grid_5x5(), strategy::rotation, 8);
  ASSERT_TRUE(l8.ok());
  EXPECT_EQ(pairs(*l8), (std::vector<std::pair<int, int>>(want.begin(), want.begin() + 8)));
}

TEST(skymemory_model, hop_goes_breadth_first_in_neighbour_order) {
  // From the centre: previous plane, next satellite, next plane, previous
  // satellite; then the same around (-1, 0), which adds (-2, 0), (-1, 1),
  // (-1, -1); then around (0, 1), which adds (0, 2).
  auto l = make_layout(grid_5x5(), strategy::hop, 9);
  ASSERT_TRUE(l.ok()) << l.status();
  const std::vector<std::pair<int, int>> want{{0, 0},  {-1, 0}, {0, 1},   {1, 0}, {0, -1},
                                              {-2, 0}, {-1, 1}, {-1, -1}, {0, 2}};
  EXPECT_EQ(pairs(*l), want);
  // All 25 satellites, each once.
  auto all = make_layout(grid_5x5(), strategy::hop, 25);
  ASSERT_TRUE(all.ok());
  std::set<std::pair<int, int>> distinct;
  for (const auto& o : *all)
    distinct.insert({o.plane, o.satellite});
  EXPECT_EQ(distinct.size(), 25u);
}

TEST(skymemory_model, hop_rotation_stays_inside_the_box) {
  // As hop, but (-2, 0) and (0, 2) are outside the 3x3 box: around (-1, 0)
  // come (-1, 1) and (-1, -1), around (0, 1) its next plane (1, 1), around
  // (1, 0) its previous satellite (1, -1).
  auto l = make_layout(grid_5x5(), strategy::hop_rotation, 9);
  ASSERT_TRUE(l.ok()) << l.status();
  const std::vector<std::pair<int, int>> want{{0, 0},  {-1, 0},  {0, 1}, {1, 0}, {0, -1},
                                              {-1, 1}, {-1, -1}, {1, 1}, {1, -1}};
  EXPECT_EQ(pairs(*l), want);
}

TEST(skymemory_model, chunks_are_dealt_round_robin) {
  EXPECT_EQ(chunk_count(11'500, 1'000), 12u);
  EXPECT_EQ(chunk_count(12'000, 1'000), 12u);
  EXPECT_EQ(chunk_count(1, 1'000), 1u);
  // 21 MiB / 12,288 B = 22,020,096 / 12,288 = 1792 exactly; 1 MiB needs 86.
  EXPECT_EQ(chunk_count(21ull << 20, 12'288), 1792u);
  EXPECT_EQ(chunk_count(1ull << 20, 12'288), 86u);
  // 12 chunks on 9 servers: 12 mod 9 = 3, so servers 0-2 hold 2, the rest 1.
  EXPECT_EQ(chunks_per_server(12, 9),
            (std::vector<std::uint64_t>{2, 2, 2, 1, 1, 1, 1, 1, 1}));
  // 1792 on 81: 22 each and 1792 - 81 x 22 = 10 servers with 23.
  const auto big = chunks_per_server(1792, 81);
  EXPECT_EQ(big[0], 23u);
  EXPECT_EQ(big[9], 23u);
  EXPECT_EQ(big[10], 22u);
  EXPECT_EQ(big[80], 22u);
  // Fewer chunks than servers: the last servers hold none.
  EXPECT_EQ(chunks_per_server(2, 4), (std::vector<std::uint64_t>{1, 1, 0, 0}));
}

TEST(skymemory_model, rotation_fetch_time_by_hand) {
  // Layout (-1,-1) (-1,0) (-1,1) (0,-1) (0,0) (0,1) (1,-1) (1,0) (1,1) with
  // 2,2,2,1,1,1,1,1,1 chunks of 10 ms:
  //   server 0 corner 2 chunks: 38.423461 + 20 = 58.423461 ms   <- the fetch time
  //   server 1 edge   2 chunks: 27.200441 + 20 = 47.200441 ms
  //   server 2 corner 2 chunks: 58.423461 ms
  //   server 3 edge 37.200441, server 4 centre 11.834556 (the minimum),
  //   server 5 edge 37.200441, server 6 corner 48.423461, server 7 edge
  //   37.200441, server 8 corner 48.423461 ms.
  auto r = evaluate(small_point(9), strategy::rotation);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->chunks, 12u);
  const double t[9] = {corner_s + 0.020, edge_s + 0.020, corner_s + 0.020,
                       edge_s + 0.010,   centre_s + 0.010, edge_s + 0.010,
                       corner_s + 0.010, edge_s + 0.010,   corner_s + 0.010};
  for (int j = 0; j < 9; ++j)
    EXPECT_NEAR(r->servers[j].time_s, t[j], 1e-9) << "server " << j;
  EXPECT_NEAR(r->servers[0].distance_m, corner_m, 1e-3);
  EXPECT_NEAR(r->servers[1].distance_m, edge_m, 1e-3);
  EXPECT_NEAR(r->servers[4].distance_m, centre_m, 1e-3);
  EXPECT_NEAR(r->fetch_s, 0.058423461354, 1e-9);
  EXPECT_NEAR(r->min_s, 0.011834556371, 1e-9);
  // Mean: (3 x 38.423461 + ... ) / 9: 4 corners, 4 edges, 1 centre plus
  // 12 x 10 ms of processing = (4 x 38.423461 + 4 x 27.200441 + 1.834557
  // + 120) / 9 = 42.703352 ms; population standard deviation 13.431453 ms.
  EXPECT_NEAR(r->mean_s, (4 * corner_s + 4 * edge_s + centre_s + 0.120) / 9, 1e-9);
  EXPECT_NEAR(r->mean_s, 0.042703351747, 1e-9);
  EXPECT_NEAR(r->std_s, 0.013431453219, 1e-9);
  EXPECT_EQ(r->box_planes, 3);
  EXPECT_EQ(r->box_satellites, 3);
}

TEST(skymemory_model, hop_fetch_time_by_hand) {
  // Hop distances along the ISLs: 0, d, d, d, d, 2d, 2d, 2d, 2d with
  // d = 8136.123462 km, i.e. 0, 27.138504, ..., 54.277008 ms, plus
  // 20, 20, 20, 10, ... ms of processing. The fetch time is the farthest
  // one-chunk server: 54.277008 + 10 = 64.277008 ms; the minimum the
  // centre: 0 + 20 ms.
  auto r = evaluate(small_point(9), strategy::hop);
  ASSERT_TRUE(r.ok()) << r.status();
  const double one = d_5x5_m / 2.998e8; // 27.138504 ms
  EXPECT_NEAR(one, 0.027138503877, 1e-11);
  EXPECT_NEAR(r->servers[0].time_s, 0.020, 1e-12);
  EXPECT_NEAR(r->servers[1].time_s, one + 0.020, 1e-9);
  EXPECT_NEAR(r->servers[3].time_s, one + 0.010, 1e-9);
  EXPECT_NEAR(r->servers[8].time_s, 2 * one + 0.010, 1e-9);
  EXPECT_NEAR(r->fetch_s, 0.064277007753, 1e-9);
  EXPECT_NEAR(r->min_s, 0.020, 1e-12);
  EXPECT_EQ(r->box_planes, 0);
  EXPECT_EQ(r->migration_chunks, 0u);
}

TEST(skymemory_model, hop_rotation_fetch_time_by_hand) {
  // Order (0,0) (-1,0) (0,1) (1,0) (0,-1) (-1,1) (-1,-1) (1,1) (1,-1): the
  // three 2-chunk servers are the centre and two edges, the four corners
  // hold one chunk. Fetch = max(edge + 20 ms, corner + 10 ms)
  //   = max(47.200441, 48.423461) = 48.423461 ms; the minimum is the centre,
  //   1.834556 + 20 = 21.834556 ms.
  auto r = evaluate(small_point(9), strategy::hop_rotation);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->servers[0].time_s, centre_s + 0.020, 1e-9);
  EXPECT_NEAR(r->servers[1].time_s, edge_s + 0.020, 1e-9);
  EXPECT_NEAR(r->servers[5].time_s, corner_s + 0.010, 1e-9);
  EXPECT_NEAR(r->fetch_s, 0.048423461354, 1e-9);
  EXPECT_NEAR(r->min_s, centre_s + 0.020, 1e-9);
}

TEST(skymemory_model, migration_moves_the_leaving_column) {
  // Rotation, 3x3 box: the column at satellite offset +1 leaves, i.e.
  // servers 2, 5, 8 with 2 + 1 + 1 = 4 chunks. Server 2 holds chunks 2 and
  // 11, and chunk 11 is the 500-byte tail: 1500 + 1000 + 1000 = 3500 bytes.
  auto r = evaluate(small_point(9), strategy::rotation);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->migration_chunks, 4u);
  EXPECT_EQ(r->migration_bytes, 3'500u);
  EXPECT_EQ(r->servers[2].bytes, 1'500u);
  // Hop rotation: the +1 column is servers 2 (0,1), 5 (-1,1), 7 (1,1), with
  // 2 + 1 + 1 = 4 chunks of 1000 bytes (the tail is on server 2 here too,
  // as 11 mod 9 = 2): 3500 bytes.
  auto h = evaluate(small_point(9), strategy::hop_rotation);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->migration_chunks, 4u);
  EXPECT_EQ(h->migration_bytes, 3'500u);
  // A box spanning the whole plane loses no column: 25 servers on 5x5.
  auto full = evaluate(small_point(25), strategy::rotation);
  ASSERT_TRUE(full.ok());
  EXPECT_EQ(full->box_satellites, 5);
  EXPECT_EQ(full->migration_chunks, 0u);
  // A box only partly filled: 7 servers in the 3x3 box, (-1,-1..1),
  // (0,-1..1), (1,-1). Server 6 at (1,-1) leaves too, as (1,0) is no
  // server: servers 2, 5 and 6 with 2 + 1 + 1 chunks of 1000 bytes (the
  // tail, chunk 11, is on server 4).
  auto part = evaluate(small_point(7), strategy::rotation);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ(part->migration_chunks, 4u);
  EXPECT_EQ(part->migration_bytes, 4'000u);
  // The paper's point: 81 servers in a 9x9 box on 15x15, 1792 chunks, the
  // first 10 servers with 23. The leaving column (+4) holds rotation servers
  // 8, 17, ..., 80: server 8 has 23 chunks, the other eight 22: 199 chunks.
  params paper;
  auto pr = evaluate(paper, strategy::rotation);
  ASSERT_TRUE(pr.ok());
  EXPECT_EQ(pr->migration_chunks, 23u + 8 * 22u);
  EXPECT_EQ(pr->migration_bytes, (23u + 8 * 22u) * 12'288u);
}

TEST(skymemory_model, even_side_grows_the_box_to_stay_centred) {
  // S = 16: side 4 cannot be centred, so the box is 5x5 (half-width 2) and
  // its first 16 cells are used: planes -2, -1, 0 (15 cells) and (1, -2).
  grid g;
  auto b = make_box(g, 16);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->side, 4);
  EXPECT_EQ(b->half_width, 2);
  EXPECT_EQ(b->cells(), 25u);
  auto l = make_layout(g, strategy::rotation, 16);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->front(), (offset{-2, -2}));
  EXPECT_EQ((*l)[14], (offset{0, 2}));
  EXPECT_EQ(l->back(), (offset{1, -2}));
  // Hop rotation inside the same 5x5 box: the first 16 breadth-first cells,
  // none with an offset beyond 2.
  auto h = make_layout(g, strategy::hop_rotation, 16);
  ASSERT_TRUE(h.ok());
  for (const auto& o : *h) {
    EXPECT_LE(std::abs(o.plane), 2);
    EXPECT_LE(std::abs(o.satellite), 2);
  }
  // Odd sides stay as they are: 9 -> 3, 81 -> 9, and 10 -> side 4 -> 5.
  EXPECT_EQ(make_box(g, 9)->half_width, 1);
  EXPECT_EQ(make_box(g, 81)->half_width, 4);
  EXPECT_EQ(make_box(g, 10)->half_width, 2);
}

TEST(skymemory_model, clipped_box_grows_and_never_reuses_a_satellite) {
  // 3 planes of 15, S = 25: side 5 would need 5 planes; clipped to the 3
  // planes it has 15 cells, half-width 3 gives 3x7 = 21, half-width 4 gives
  // 3x9 = 27 >= 25. Planes -1, 0 fill 18 servers, plane +1 the other 7.
  grid g;
  g.planes = 3;
  g.center_plane_index = 1;
  auto b = make_box(g, 25);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->half_width, 4);
  EXPECT_EQ(b->plane_offsets, (std::vector<int>{-1, 0, 1}));
  EXPECT_EQ(b->satellite_offsets.size(), 9u);
  for (auto s : {strategy::rotation, strategy::hop_rotation, strategy::hop}) {
    auto l = make_layout(g, s, 25);
    ASSERT_TRUE(l.ok());
    std::set<std::pair<int, int>> cells;
    for (const auto& o : *l) {
      const auto c = cell_of(g, o);
      cells.insert({c.plane, c.satellite});
    }
    EXPECT_EQ(cells.size(), 25u) << to_string(s);
  }
  auto l = make_layout(g, strategy::rotation, 25);
  EXPECT_EQ(l->back(), (offset{1, 2}));
  // An even ring clipped: 4 planes hold offsets -1, 0, 1, 2 (2 is the tie).
  grid e;
  e.planes = 4;
  e.sats_per_plane = 4;
  e.center_plane_index = 0;
  e.center_satellite_index = 0;
  auto eb = make_box(e, 16);
  ASSERT_TRUE(eb.ok());
  EXPECT_EQ(eb->plane_offsets, (std::vector<int>{-1, 0, 1, 2}));
  EXPECT_EQ(eb->cells(), 16u);
  // More servers than satellites is an error naming the key and the grid.
  for (auto s : {strategy::rotation, strategy::hop, strategy::hop_rotation}) {
    auto bad = make_layout(e, s, 17);
    ASSERT_FALSE(bad.ok()) << to_string(s);
    EXPECT_NE(bad.status().message().find("workload.servers"), std::string::npos);
    EXPECT_NE(bad.status().message().find("4x4"), std::string::npos) << bad.status();
  }
}

TEST(skymemory_model, servers_without_chunks_are_not_fetched_from) {
  // 2 chunks on 9 servers (rotation): only servers 0 and 1, corner and
  // edge, each with one chunk: fetch = corner + 10 ms, min = edge + 10 ms.
  params p = small_point(9);
  p.kv_bytes = 2'000;
  auto r = evaluate(p, strategy::rotation);
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->fetch_s, corner_s + 0.010, 1e-9);
  EXPECT_NEAR(r->min_s, edge_s + 0.010, 1e-9);
  EXPECT_NEAR(r->mean_s, (corner_s + edge_s) / 2 + 0.010, 1e-9);
  EXPECT_NEAR(r->std_s, (corner_s - edge_s) / 2, 1e-9);
}

TEST(skymemory_model, strategy_names_round_trip) {
  for (auto s : all_strategies())
    EXPECT_EQ(parse_strategy(to_string(s)), s);
  EXPECT_FALSE(parse_strategy("rotate").has_value());
}

} // namespace
