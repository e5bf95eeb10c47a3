/// satemu topology epochs: who can talk to whom at one instant, and the
/// shortest-delay routes through it.
///
/// A builder of worlds (CONVENTIONS.md, Shape): it takes positions and
/// rules and returns an immutable `topology_snapshot`; the topology service
/// of a run makes one per `update_interval` and every satellite reads it.
///
/// Nodes are numbered satellites first (0 .. S-1, in the constellation's
/// flat order), then ground points (S .. S+G-1). Links are undirected and
/// stored in both directions.
///
/// Rules (DESIGN.md, Space segment):
/// - ISLs come from candidate pairs (+Grid: the next satellite of the same
///   plane and the neighbour in the next plane, so every satellite has up to
///   two of each); a candidate is a link while its segment stays above
///   `min_line_of_sight_altitude_m` (80 km) and is at most `max_range_m`
///   long, and, for inter-plane links, while neither end is above
///   `inter_plane_max_latitude_deg` (geocentric latitude).
/// - Each ground point links to one serving satellite among those at or
///   above `min_elevation_deg`, chosen by the association policy; a change of
///   serving satellite between epochs is a handover. With several satellite
///   groups (e.g. one per shell, `snapshot_inputs::group_of`), it links to
///   one satellite of every group that has one in view (a terminal per
///   shell), each chosen and handed over on its own. Ties go to the
///   satellite ahead a moment later (`snapshot_inputs::position_soon`).
///   With `gsl_rules::all_in_view` it links to every satellite in view
///   instead, so that routes pick the uplink and downlink; the serving
///   satellite is still chosen (handovers, and what workloads call serving).
/// - Links shorter than `min_range_m` are not made, and a satellite or an
///   ISL that is down (an outage) has no links.
/// - Ground points are endpoints only: routes never pass through them.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/frames.hpp"

namespace satemu::runtime {

class walker_constellation;

enum class association_policy { highest_elevation, nearest, stay_until_lost };

struct isl_rules {
  /// Inter-plane links are off while either end is above this |latitude| [deg].
  double inter_plane_max_latitude_deg = 75;
  /// Lowest altitude the line of sight may pass at [m].
  double min_line_of_sight_altitude_m = 80e3;
  /// Longest link [m].
  double max_range_m = 5'000e3;
  /// Shortest link [m]: closer pairs are not linked (terminals cannot track
  /// them). Also bounds the kernel's lookahead from below.
  double min_range_m = 0;
};

struct gsl_rules {
  /// Lowest elevation a serving satellite may have [deg].
  double min_elevation_deg = 25;
  association_policy policy = association_policy::highest_elevation;
  /// Link to every satellite at or above the mask, not only the serving one.
  bool all_in_view = false;
};

/// A pair of satellites that may be linked.
struct isl_candidate {
  std::uint32_t a = 0;
  std::uint32_t b = 0;
  bool inter_plane = false;
};

/// +Grid candidates of a Walker constellation: (k, in-plane next) and
/// (k, inter-plane next) for every satellite k, each pair once.
std::vector<isl_candidate> plus_grid_candidates(const walker_constellation& c);

enum class link_kind : std::uint8_t { isl_intra_plane, isl_inter_plane, ground };

/// A change of serving satellite.
struct handover {
  std::uint32_t ground = 0; ///< ground index (0 .. G-1)
  std::uint32_t group = 0;  ///< satellite group of the link (0 with one group)
  std::int32_t from = -1;   ///< previous satellite, -1 = none
  std::int32_t to = -1;     ///< new satellite, -1 = none (lost)
};

/// The network at one instant. Immutable once built.
struct topology_snapshot {
  double t_s = 0;
  std::size_t satellites = 0;
  std::size_t grounds = 0;
  /// Earth-fixed positions [m], satellites then ground points.
  std::vector<vec3> position_m;
  /// Compressed rows: the links of node n are [offsets[n], offsets[n+1]).
  std::vector<std::uint32_t> offsets;
  std::vector<std::uint32_t> neighbour;
  std::vector<double> length_m;
  std::vector<link_kind> kind;
  /// Satellite groups a ground point links into (1 unless per-group links).
  std::size_t groups = 1;
  /// Per ground point and group (index g * groups + group): the serving
  /// satellite, -1 when none of the group is visible.
  std::vector<std::int32_t> serving;
  /// Serving changes against the previous snapshot.
  std::vector<handover> handovers;
  std::size_t isl_links = 0;

  std::size_t nodes() const { return satellites + grounds; }
  std::uint32_t ground_node(std::size_t g) const { return static_cast<std::uint32_t>(satellites + g); }
  /// Length of the link u-v [m], or nullopt when there is none.
  std::optional<double> link_length_m(std::uint32_t u, std::uint32_t v) const;
};

/// A ground point: where it is and its local horizon.
struct ground_point {
  std::string name;
  geodetic where;
  vec3 ecef_m;
  enu_frame horizon;
  static ground_point at(std::string name, const geodetic& g);
};

/// A point of a moving ground endpoint's track.
struct waypoint {
  double t_s = 0;
  geodetic where;
};

/// Where a track (waypoints in time order, at least one) is at `t_s`: at the
/// first point before it, at the last after it, and in between latitude,
/// longitude (the shorter way round) and altitude interpolated linearly.
geodetic along_waypoints(const std::vector<waypoint>& track, double t_s);
/// An upper bound of the Earth-centre radius (m) anywhere along a track, for
/// a lookahead: a segment that crosses the equator passes where the Earth is
/// widest, so its endpoints alone can be up to about 21 km short.
double max_radius_along(const std::vector<waypoint>& track);

/// What else an epoch depends on besides positions and rules. Empty vectors
/// mean "none": one group, nothing down.
struct snapshot_inputs {
  /// Group of every satellite (0 .. groups-1); empty = all in group 0.
  /// Borrowed: the caller keeps it alive while the snapshot is built.
  std::span<const std::uint16_t> group_of;
  std::size_t groups = 1;
  /// Per satellite: nonzero while it is down. A satellite whose position is
  /// not finite (a failed propagation) counts as down too.
  std::vector<std::uint8_t> sat_down;
  /// ISLs that are down, as (lower id, higher id), sorted.
  std::vector<std::pair<std::uint32_t, std::uint32_t>> isl_down;
  /// Earth-fixed position [m] of satellite k a moment later (the space
  /// segment gives 1 s). When set, two satellites that serve a ground point
  /// equally well to rounding (a Walker shell at time 0 is mirror-symmetric
  /// about the +-90 deg meridians) are told apart by where they are then:
  /// the rising one is taken, so the choice holds at the next epoch instead
  /// of handing over there. Unset: exact ties keep the lowest id.
  std::function<vec3(std::uint32_t)> position_soon;
};

/// Builds the snapshot for satellites at `sat_ecef_m`. `previous` (the last
/// epoch's snapshot, or null) drives stay-until-lost and handovers.
topology_snapshot build_snapshot(double t_s, std::vector<vec3> sat_ecef_m,
                                 const std::vector<isl_candidate>& candidates,
                                 const std::vector<ground_point>& grounds, const isl_rules& isl,
                                 const gsl_rules& gsl, const topology_snapshot* previous,
                                 const snapshot_inputs& inputs = {});

enum class route_metric { delay, hops };

/// Shortest routes from every node to one destination.
struct route_tree {
  static constexpr std::uint32_t none = 0xffffffffu;
  std::uint32_t destination = 0;
  /// Next node from n towards the destination; `none` if unreachable (and
  /// for the destination itself).
  std::vector<std::uint32_t> next;
  /// Path length from n [m] (propagation delay = length / c); +inf if unreachable.
  std::vector<double> length_m;
  /// Hops from n.
  std::vector<std::uint16_t> hops;
};

/// Dijkstra from `destination` over the snapshot's links; ties break towards
/// the lower node id, so the tree is the same on every run. Ground points
/// other than the destination are not expanded (no transit through them).
route_tree shortest_path_tree(const topology_snapshot& s, std::uint32_t destination,
                              route_metric metric = route_metric::delay);

/// Per-destination routes of one snapshot, kept for the epoch and computed
/// only as far as they are asked for: each destination's Dijkstra (the same
/// search as shortest_path_tree, same ties) stops once the node asked about
/// is settled and resumes from there for a later question. A settled node's
/// next hop is final, so the answers are shortest_path_tree's whatever the
/// order of the questions; a packet's path is settled before its sender is,
/// so routing a packet seldom needs the whole tree. Safe to share between
/// threads; a question about a settled node takes no lock.
class route_cache {
public:
  route_cache(std::shared_ptr<const topology_snapshot> s, route_metric metric);
  ~route_cache();
  route_cache(const route_cache&) = delete;
  route_cache& operator=(const route_cache&) = delete;

  /// shortest_path_tree(snapshot, destination).next[from].
  std::uint32_t next(std::uint32_t destination, std::uint32_t from) const;
  const topology_snapshot& snapshot() const { return *snapshot_; }

private:
  class search;
  search& search_to(std::uint32_t destination) const;

  std::shared_ptr<const topology_snapshot> snapshot_;
  route_metric metric_;
  /// One slot per destination; filled once, never replaced until destruction.
  mutable std::unique_ptr<std::atomic<search*>[]> searches_;
  std::size_t size_ = 0;
};

} // namespace satemu::runtime
