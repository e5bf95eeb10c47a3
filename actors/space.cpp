#include "actors/space.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "absl/strings/strip.h"
#include "protocol/bytes.hpp"
#include "protocol/flow.hpp"
#include "protocol/ping.hpp"
#include "runtime/constants.hpp"
#include "runtime/rng.hpp"
#include "runtime/schema.hpp"

namespace satemu::actors {

using runtime::duration;
using runtime::key_spec;
using runtime::vtime;

namespace {

/// Most planes, and most satellites per plane, of a Walker shell: their
/// product still fits an int.
constexpr std::int64_t max_walker_side = 32768;

struct space_counters {
  runtime::counter_id hops, drops_queue, drops_loss, drops_no_route, drops_outage, malformed;
};

/// The counters of messages the network drops, in space_counters' order.
constexpr const char* drop_counter_names[] = {"space.drops_queue_full", "space.drops_loss",
                                              "space.drops_no_route", "space.drops_outage",
                                              "space.malformed"};

const space_counters& space_ids() {
  static const space_counters c{
    runtime::register_counter("space.hops"),
    runtime::register_counter(drop_counter_names[0]),
    runtime::register_counter(drop_counter_names[1]),
    runtime::register_counter(drop_counter_names[2]),
    runtime::register_counter(drop_counter_names[3]),
    runtime::register_counter(drop_counter_names[4]),
  };
  return c;
}

std::int64_t ceil_ns(double seconds) {
  return static_cast<std::int64_t>(std::ceil(seconds * 1e9));
}

} // namespace

void register_space_sections() {
  static std::once_flag once;
  std::call_once(once, [] {
    runtime::register_section(
      key_spec::map(
        "constellation", "Satellites and inter-satellite links",
        {
          key_spec::list_of_maps(
            "shells", "Walker-delta shells (at most 1,000,000 satellites a shell; an equatorial "
                      "shell has one plane)",
            {
              key_spec::integer("planes", "", "Orbital planes")
                .mandatory()
                .at_least(1)
                .at_most(max_walker_side),
              key_spec::integer("sats_per_plane", "", "Satellites per plane")
                .mandatory()
                .at_least(1)
                .at_most(max_walker_side),
              key_spec::dist("altitude", "", "Altitude above the equatorial radius")
                .mandatory()
                .at_least(100e3)
                .at_most(runtime::max_scenario_altitude_m),
              key_spec::ang("inclination", "", "Inclination").mandatory().at_least(0).at_most(180),
              key_spec::integer("phasing", "0", "Walker phasing factor F, in [0, planes-1]")
                .at_least(0)
                .at_most(max_walker_side - 1),
            }),
          key_spec::map(
            "tle", "Satellites from a TLE file instead of shells (SGP4)",
            {
              key_spec::text("file", "", "TLE file (2- or 3-line sets), relative to the current "
                                         "directory")
                .mandatory()
                .names_input_file(),
              key_spec::text("start", "''",
                             "UTC instant of emulated time 0, e.g. 2026-02-24T12:00:00Z; empty = "
                             "the latest epoch in the file"),
              key_spec::ang("inclination_tolerance", "0.5deg",
                            "Satellites whose inclinations differ by more are in different shells")
                .above(0),
              key_spec::dist("altitude_tolerance", "25km",
                             "Satellites whose altitudes differ by more are in different shells")
                .above(0),
              key_spec::ang("raan_tolerance", "2deg",
                            "Satellites whose ascending nodes differ by more are in different planes")
                .above(0),
            })
            .optional_section(),
          key_spec::map(
            "isl", "Inter-satellite links (+Grid: two intra-plane, two inter-plane neighbours)",
            {
              key_spec::choice("topology", {"plus_grid"}, "plus_grid", "ISL pattern"),
              key_spec::rate("rate", "10Gbps", "Rate of each ISL").at_least(1),
              key_spec::dist("max_range", "5000km", "Longest ISL").above(0),
              key_spec::dist("min_range", "0km",
                             "Shortest ISL; closer pairs are not linked. With a TLE constellation "
                             "this also sets the kernel's window (keep it well above 0)")
                .at_least(0),
              key_spec::dist("min_altitude", "80km",
                             "Lowest altitude the line of sight may pass at")
                .at_least(0),
              key_spec::ang("polar_limit", "75deg",
                            "Inter-plane links are off while an end is above this latitude")
                .at_least(0)
                .at_most(90),
            }),
          key_spec::dur("update_interval", "100ms", "Topology epoch length").at_least(1e6),
          key_spec::dur("hop_delay", "10us", "Processing delay per hop").above(0),
          key_spec::size("queue", "1MiB", "Queue capacity of each directed link").above(0),
          key_spec::real("loss", "0", "Probability that a hop loses a message")
            .at_least(0)
            .at_most(1),
          key_spec::choice("routing", {"delay", "hops"}, "delay",
                           "Shortest propagation delay, or fewest hops"),
          key_spec::list_of_maps(
            "outages", "Scheduled outages of satellites or ISLs",
            {
              key_spec::integer("satellite", "", "Satellite id that goes down")
                .at_least(0)
                .at_most(std::numeric_limits<std::uint32_t>::max()),
              key_spec::list("link", runtime::value_type::integer,
                             "The two satellite ids of an ISL that goes down"),
              key_spec::dur("from", "0s", "Start of the outage").at_least(0),
              key_spec::dur("to", "", "End of the outage (exclusive)").mandatory().above(0),
            }),
          key_spec::map(
            "record", "Topology recording (positions.csv, links.csv, constellation.czml)",
            {
              key_spec::dur("interval", "0s",
                            "Record the epoch at every multiple of this emulated time; 0 = off")
                .at_least(0),
              key_spec::boolean("czml", "false",
                                "Also write constellation.czml (Cesium) from the records"),
              key_spec::text("path_from", "''", "Ground endpoint whose route the CZML shows"),
              key_spec::text("path_to", "''", "... to this ground endpoint"),
            }),
        })
        .optional_section());
    runtime::register_section(
      key_spec::map(
        "ground", "Ground stations and users",
        {
          key_spec::list_of_maps(
            "stations", "Fixed ground endpoints",
            {
              key_spec::text("name", "", "Unique name (no comma, quote, tab or line break)").mandatory(),
              key_spec::real("lat", "", "Geodetic latitude [deg]").mandatory().at_least(-90).at_most(90),
              key_spec::real("lon", "", "Longitude [deg], east positive")
                .mandatory()
                .at_least(-180)
                .at_most(360),
              key_spec::dist("alt", "0m", "Height above the WGS-84 ellipsoid")
                .at_least(-500)
                .at_most(runtime::max_scenario_altitude_m),
            }),
          key_spec::list_of_maps(
            "users", "Ground users: fixed, or moving along waypoints",
            {
              key_spec::text("name", "", "Unique name among stations and users (no comma, quote, tab or line break)").mandatory(),
              key_spec::real("lat", "", "Geodetic latitude [deg] at the start")
                .mandatory()
                .at_least(-90)
                .at_most(90),
              key_spec::real("lon", "", "Longitude [deg] at the start").mandatory().at_least(-180).at_most(360),
              key_spec::dist("alt", "0m", "Height above the WGS-84 ellipsoid")
                .at_least(-500)
                .at_most(runtime::max_scenario_altitude_m),
              key_spec::list_of_maps(
                "waypoints", "Later points of the track, in time order (linear in lat/lon/alt)",
                {
                  key_spec::dur("at", "", "Emulated time of the point").mandatory().above(0),
                  key_spec::real("lat", "", "Latitude [deg]").mandatory().at_least(-90).at_most(90),
                  key_spec::real("lon", "", "Longitude [deg]").mandatory().at_least(-180).at_most(360),
                  key_spec::dist("alt", "0m", "Height")
                    .at_least(-500)
                    .at_most(runtime::max_scenario_altitude_m),
                }),
            }),
          key_spec::map(
            "gsl", "Ground-satellite links",
            {
              key_spec::ang("min_elevation", "25deg", "Lowest elevation of a serving satellite")
                .at_least(0)
                .at_most(90),
              key_spec::rate("rate", "1Gbps", "Rate of each ground link").at_least(1),
              key_spec::choice("policy", {"highest_elevation", "nearest", "stay_until_lost"},
                               "highest_elevation", "How a ground endpoint picks its satellite"),
              key_spec::boolean("per_shell", "false",
                                "Link to one satellite of every shell in view (a terminal per "
                                "shell) instead of one satellite in all"),
              key_spec::choice("links", {"serving", "all_in_view"}, "serving",
                               "serving: an endpoint links to its serving satellite only, and "
                               "every route goes up and down through it; all_in_view: to every "
                               "satellite at or above min_elevation, and each route takes the "
                               "uplink and downlink that make it shortest (the serving satellite, "
                               "for handovers and SkyMemory's layout, is still chosen by "
                               "policy)"),
            }),
        })
        .optional_section());
  });
}

namespace {

absl::StatusOr<runtime::ground_point> read_ground(const runtime::scenario& s, const std::string& p,
                                                  std::set<std::string>& names) {
  auto name = s.get_string(p + "name");
  // Names are columns of the CSV outputs, written as they are.
  if (name.find_first_not_of(' ') == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat(
      p + "name", ": a ground endpoint needs a name", name.empty() ? "" : " (not only spaces)"));
  if (const auto bad = name.find_first_of(",\"\n\r\t"); bad != std::string::npos)
    return absl::InvalidArgumentError(
      absl::StrCat(p + "name", ": '", absl::CEscape(name),
                   "' holds a comma, quote, tab or line break, which would break the CSV outputs"));
  if (!names.insert(name).second)
    return absl::InvalidArgumentError(
      absl::StrCat(p + "name", ": ground endpoint name '", name, "' is used twice"));
  return runtime::ground_point::at(
    std::move(name), {s.get_real(p + "lat"), s.get_real(p + "lon"), s.get_distance(p + "alt").m});
}

} // namespace

absl::StatusOr<space_config> space_config_from(const runtime::scenario& s) {
  if (!s.has("constellation"))
    return absl::InvalidArgumentError("constellation: this workload needs a constellation section");
  space_config c;
  const auto n = s.list_size("constellation.shells");
  const bool tle = s.has("constellation.tle");
  if (n == 0 && !tle)
    return absl::InvalidArgumentError(
      "constellation.shells: give at least one shell, or constellation.tle");
  if (n > 0 && tle)
    return absl::InvalidArgumentError(
      "constellation.tle: give either shells or a TLE file, not both");
  for (std::size_t i = 0; i < n; ++i) {
    const auto p = absl::StrCat("constellation.shells.", i, ".");
    runtime::walker_shell sh;
    sh.planes = static_cast<int>(s.get_int(p + "planes"));
    sh.sats_per_plane = static_cast<int>(s.get_int(p + "sats_per_plane"));
    sh.altitude_m = s.get_distance(p + "altitude").m;
    sh.inclination_deg = s.get_angle(p + "inclination").deg;
    sh.phasing = static_cast<int>(s.get_int(p + "phasing"));
    if (auto st = runtime::validate(sh); !st.ok())
      return absl::InvalidArgumentError(
        absl::StrCat(absl::StripSuffix(p, "."), ": ", st.message()));
    c.shells.push_back(sh);
  }
  if (tle) {
    c.tle_file = s.get_string("constellation.tle.file");
    if (const auto start = s.get_string("constellation.tle.start"); !start.empty()) {
      auto t = runtime::parse_utc(start);
      if (!t.ok())
        return absl::InvalidArgumentError(
          absl::StrCat("constellation.tle.start: ", t.status().message()));
      c.tle_start_unix_ns = *t;
    }
    c.tle_grouping.inclination_tolerance_deg = s.get_angle("constellation.tle.inclination_tolerance").deg;
    c.tle_grouping.altitude_tolerance_m = s.get_distance("constellation.tle.altitude_tolerance").m;
    c.tle_grouping.raan_tolerance_deg = s.get_angle("constellation.tle.raan_tolerance").deg;
  }
  c.isl.max_range_m = s.get_distance("constellation.isl.max_range").m;
  c.isl.min_range_m = s.get_distance("constellation.isl.min_range").m;
  if (c.isl.min_range_m >= c.isl.max_range_m)
    return absl::InvalidArgumentError(
      "constellation.isl.min_range: must be below constellation.isl.max_range");
  c.isl.min_line_of_sight_altitude_m = s.get_distance("constellation.isl.min_altitude").m;
  c.isl.inter_plane_max_latitude_deg = s.get_angle("constellation.isl.polar_limit").deg;
  c.isl_rate_bps = s.get_data_rate("constellation.isl.rate").bps;
  c.update_interval = s.get_duration("constellation.update_interval");
  c.hop_delay = s.get_duration("constellation.hop_delay");
  c.queue_bytes = s.get_data_size("constellation.queue").bytes;
  c.loss = s.get_real("constellation.loss");
  c.metric = s.get_string("constellation.routing") == "hops" ? runtime::route_metric::hops
                                                             : runtime::route_metric::delay;
  for (std::size_t i = 0; i < s.list_size("constellation.outages"); ++i) {
    const auto p = absl::StrCat("constellation.outages.", i, ".");
    outage o;
    o.key = absl::StrCat("constellation.outages.", i);
    o.from = s.get_duration(p + "from");
    o.to = s.get_duration(p + "to");
    if (o.to <= o.from)
      return absl::InvalidArgumentError(absl::StrCat(p, "to: must be after ", p, "from"));
    const bool sat = s.has(p + "satellite");
    const auto link = s.list_size(p + "link");
    if (sat == (link > 0))
      return absl::InvalidArgumentError(
        absl::StrCat(o.key, ": give either a satellite or a link (two satellite ids)"));
    o.key = p + (sat ? "satellite" : "link");
    if (sat) {
      o.a = static_cast<std::uint32_t>(s.get_int(p + "satellite"));
    } else {
      if (link != 2)
        return absl::InvalidArgumentError(absl::StrCat(p, "link: needs exactly two satellite ids"));
      const auto x = s.get_int(p + "link.0"), y = s.get_int(p + "link.1");
      constexpr std::int64_t most = std::numeric_limits<std::uint32_t>::max();
      if (x < 0 || y < 0 || x == y || x > most || y > most)
        return absl::InvalidArgumentError(absl::StrCat(
          p, "link: needs two different satellite ids in [0, ", most, "], got ", x, " and ", y));
      o.a = static_cast<std::uint32_t>(x);
      o.b = static_cast<std::uint32_t>(y);
    }
    c.outages.push_back(std::move(o));
  }
  c.record.interval = s.get_duration("constellation.record.interval");
  c.record.czml = s.get_bool("constellation.record.czml");
  c.record.path_from = s.get_string("constellation.record.path_from");
  c.record.path_to = s.get_string("constellation.record.path_to");
  if (c.record.czml && c.record.interval <= duration::zero())
    return absl::InvalidArgumentError(
      "constellation.record.czml: needs constellation.record.interval above 0 (the sampling)");
  if (c.record.path_from.empty() != c.record.path_to.empty())
    return absl::InvalidArgumentError(
      "constellation.record.path_to: give both path_from and path_to, or neither");
  if (!c.record.path_from.empty() && !c.record.czml)
    return absl::InvalidArgumentError(
      "constellation.record.path_from: the route is drawn in the CZML file only: it needs "
      "constellation.record.czml: true");
  if (!c.record.path_from.empty() && c.record.path_from == c.record.path_to)
    return absl::InvalidArgumentError(
      "constellation.record.path_to: the same endpoint as path_from; a route needs two");
  if (s.has("ground")) {
    c.gsl.min_elevation_deg = s.get_angle("ground.gsl.min_elevation").deg;
    const auto policy = s.get_string("ground.gsl.policy");
    c.gsl.policy = policy == "nearest"           ? runtime::association_policy::nearest
                   : policy == "stay_until_lost" ? runtime::association_policy::stay_until_lost
                                                 : runtime::association_policy::highest_elevation;
    c.gsl_rate_bps = s.get_data_rate("ground.gsl.rate").bps;
    c.gsl_per_shell = s.get_bool("ground.gsl.per_shell");
    c.gsl.all_in_view = s.get_string("ground.gsl.links") == "all_in_view";
    std::set<std::string> names;
    for (std::size_t i = 0; i < s.list_size("ground.stations"); ++i) {
      auto g = read_ground(s, absl::StrCat("ground.stations.", i, "."), names);
      if (!g.ok())
        return g.status();
      c.grounds.push_back(std::move(*g));
      c.tracks.emplace_back();
    }
    c.stations = c.grounds.size();
    for (std::size_t i = 0; i < s.list_size("ground.users"); ++i) {
      const auto p = absl::StrCat("ground.users.", i, ".");
      auto g = read_ground(s, p, names);
      if (!g.ok())
        return g.status();
      std::vector<runtime::waypoint> track;
      const auto w = s.list_size(p + "waypoints");
      if (w > 0)
        track.push_back({0.0, g->where});
      for (std::size_t j = 0; j < w; ++j) {
        const auto q = absl::StrCat(p, "waypoints.", j, ".");
        runtime::waypoint wp{s.get_duration(q + "at").seconds(),
                             {s.get_real(q + "lat"), s.get_real(q + "lon"), s.get_distance(q + "alt").m}};
        if (wp.t_s <= track.back().t_s)
          return absl::InvalidArgumentError(
            absl::StrCat(q, "at: waypoints must be in increasing time order"));
        track.push_back(wp);
      }
      c.grounds.push_back(std::move(*g));
      c.tracks.push_back(std::move(track));
    }
  }
  if (!c.record.path_from.empty()) {
    for (const auto& [key, name] : {std::pair{"constellation.record.path_from", c.record.path_from},
                                    std::pair{"constellation.record.path_to", c.record.path_to}})
      if (!find_ground(c, name))
        return absl::InvalidArgumentError(
          absl::StrCat(key, ": no ground endpoint named '", name, "'"));
  }
  c.real_time = s.get_string("clock.mode") == "realtime";
  return c;
}

/// What the network records for positions.csv, links.csv and the CZML file.
struct space_network::recorder {
  struct sample {
    double t_s;
    std::vector<runtime::vec3> position_m;
    /// (a, b, kind), a < b.
    std::vector<std::tuple<std::uint32_t, std::uint32_t, runtime::link_kind>> links;
    /// Nodes of the recorded route, path_from first; empty when none.
    std::vector<std::uint32_t> path;
  };
  std::vector<sample> samples;
};

space_network::~space_network() = default;

space_network::space_network(space_config cfg, std::optional<runtime::walker_constellation> walker,
                             std::optional<runtime::tle_constellation> tle)
  : cfg_(std::move(cfg)), walker_(std::move(walker)), tle_(std::move(tle)),
    recorder_(std::make_unique<recorder>()) {
  // The shortest distance a link can ever span bounds the lookahead. A
  // ground link is at least (lowest satellite radius - highest ground
  // radius). An ISL is at least `min_range`; for Walker shells also at least
  // the closed forms: the in-plane chord, and the minimum of the inter-plane
  // form over the arguments of latitude where such a link can be up (both
  // ends within the polar limit; sampled finely, with a margin). Planes
  // converge towards the poles, so near-polar shells' neighbours come
  // closest where their links are off.
  double ground_r = 0;
  for (std::size_t g = 0; g < cfg_.grounds.size(); ++g) {
    ground_r = std::max(ground_r, runtime::norm(cfg_.grounds[g].ecef_m));
    if (!cfg_.tracks[g].empty())
      ground_r = std::max(ground_r, runtime::max_radius_along(cfg_.tracks[g]));
  }
  double isl_floor = std::numeric_limits<double>::infinity();
  double gsl_floor = std::numeric_limits<double>::infinity();
  if (walker_) {
    satellites_ = walker_->size();
    candidates_ = runtime::plus_grid_candidates(*walker_);
    groups_ = walker_->shells().size();
    group_of_.resize(satellites_);
    for (std::size_t k = 0; k < satellites_; ++k)
      group_of_[k] = static_cast<std::uint16_t>((*walker_)[k].shell);
    for (const auto& sh : cfg_.shells) {
      gsl_floor = std::min(gsl_floor, runtime::wgs84_equatorial_radius_m + sh.altitude_m - ground_r);
      double closest = std::numeric_limits<double>::infinity();
      if (sh.sats_per_plane > 1)
        closest = runtime::in_plane_neighbour_distance_m(sh);
      if (sh.planes > 1) {
        // sin(latitude) = sin(inclination) sin(u) on a circular orbit; the
        // limit is widened by a sample's step for the samples to cover it.
        const double sin_i = std::sin(sh.inclination_deg * runtime::radians_per_degree);
        const double limit_deg = cfg_.isl.inter_plane_max_latitude_deg + 0.02;
        const double offset = runtime::inter_plane_phase_offset_rad(sh);
        auto up = [&](double u) {
          return std::abs(std::asin(std::clamp(sin_i * std::sin(u), -1.0, 1.0))) <=
                 limit_deg * runtime::radians_per_degree;
        };
        double m = std::numeric_limits<double>::infinity();
        for (int i = 0; i < 36'000; ++i) {
          const double u = i * runtime::two_pi / 36'000;
          if (up(u) && up(u + offset))
            m = std::min(m, runtime::inter_plane_neighbour_distance_m(sh, u));
        }
        closest = std::min(closest, m * 0.999);
      }
      closest_neighbours_m_.push_back(closest);
      isl_floor = std::min(isl_floor, closest);
    }
    isl_floor = std::max(isl_floor, cfg_.isl.min_range_m);
  } else {
    satellites_ = tle_->size();
    candidates_ = tle_->candidates();
    groups_ = tle_->groups();
    group_of_ = tle_->group_of();
    // A satellite below the floor is down (runtime/tle_constellation.hpp).
    gsl_floor = tle_->floor_radius_m() - ground_r;
    isl_floor = cfg_.isl.min_range_m;
  }
  if (!cfg_.gsl_per_shell) {
    groups_ = 1;
    group_of_.clear();
  }
  const double shortest = std::max(0.0, std::min(isl_floor, cfg_.grounds.empty() ? isl_floor : gsl_floor));
  lookahead_ = cfg_.hop_delay +
               duration::from_ns(static_cast<std::int64_t>(
                 std::floor(shortest / runtime::speed_of_light_m_per_s * 1e9)));
  kept_epochs_ = 8 + static_cast<std::size_t>(lookahead_.ns() / cfg_.update_interval.ns());
}

absl::StatusOr<std::shared_ptr<space_network>> space_network::make(space_config cfg) {
  std::optional<runtime::walker_constellation> walker;
  std::optional<runtime::tle_constellation> tle;
  if (!cfg.tle_file.empty()) {
    auto sets = runtime::load_tle_file(cfg.tle_file);
    if (!sets.ok())
      return absl::Status(sets.status().code(),
                          absl::StrCat("constellation.tle.file: ", sets.status().message()));
    const auto start = cfg.tle_start_unix_ns.value_or(runtime::tle_constellation::latest_epoch_unix_ns(*sets));
    auto t = runtime::tle_constellation::make(std::move(*sets), start, cfg.tle_grouping);
    if (!t.ok())
      return absl::InvalidArgumentError(absl::StrCat("constellation.tle.file: ", t.status().message()));
    tle = std::move(*t);
  } else {
    auto c = runtime::walker_constellation::make(cfg.shells);
    if (!c.ok())
      return absl::InvalidArgumentError(absl::StrCat("constellation.shells: ", c.status().message()));
    walker = std::move(*c);
  }
  const std::size_t sats = walker ? walker->size() : tle->size();
  for (const auto& o : cfg.outages)
    for (auto id : {std::optional<std::uint32_t>(o.a), o.b})
      if (id && *id >= sats)
        return absl::InvalidArgumentError(absl::StrCat(
          o.key, ": satellite ", *id, " does not exist (the constellation has ", sats, ", ids 0..",
          sats - 1, ")"));
  auto net = std::shared_ptr<space_network>(
    new space_network(std::move(cfg), std::move(walker), std::move(tle)));
  // A link outage must name a pair +Grid may link, or it would change nothing.
  for (const auto& o : net->cfg_.outages) {
    if (!o.b)
      continue;
    const auto lo = std::min(o.a, *o.b), hi = std::max(o.a, *o.b);
    if (std::none_of(net->candidates_.begin(), net->candidates_.end(),
                     [&](const runtime::isl_candidate& c) {
                       return std::min(c.a, c.b) == lo && std::max(c.a, c.b) == hi;
                     }))
      return absl::InvalidArgumentError(absl::StrCat(
        o.key, ": satellites ", o.a, " and ", *o.b, " have no ISL between them (+Grid links a "
        "satellite to the next of its plane and to one of the next plane)"));
  }
  return net;
}

std::vector<runtime::vec3> space_network::positions(double t_s) const {
  return walker_ ? walker_->ecef_all(t_s, 0.0) : tle_->ecef_all(t_s);
}

std::vector<runtime::ground_point> space_network::grounds_at(double t_s) const {
  auto out = cfg_.grounds;
  for (std::size_t g = 0; g < out.size(); ++g)
    if (!cfg_.tracks[g].empty())
      out[g] = runtime::ground_point::at(out[g].name, runtime::along_waypoints(cfg_.tracks[g], t_s));
  return out;
}

runtime::snapshot_inputs space_network::inputs_at(std::int64_t k) const {
  runtime::snapshot_inputs in;
  in.group_of = group_of_;
  in.groups = groups_;
  // An outage counts for every epoch it overlaps.
  const std::int64_t from = (cfg_.update_interval * k).ns();
  const std::int64_t to = from + cfg_.update_interval.ns();
  for (const auto& o : cfg_.outages) {
    if (o.to.ns() <= from || o.from.ns() >= to)
      continue;
    if (o.b) {
      in.isl_down.emplace_back(std::min(o.a, *o.b), std::max(o.a, *o.b));
    } else {
      in.sat_down.resize(satellites_, 0);
      in.sat_down[o.a] = 1;
    }
  }
  std::sort(in.isl_down.begin(), in.isl_down.end());
  const double soon_s = (cfg_.update_interval * k).seconds() + 1.0;
  in.position_soon = [this, soon_s](std::uint32_t sat) {
    return walker_ ? walker_->ecef_at(sat, soon_s, 0.0) : tle_->ecef_at(sat, soon_s);
  };
  return in;
}

std::optional<std::int64_t> space_network::goes_down(std::size_t from, std::size_t to,
                                                     std::int64_t begin_ns,
                                                     std::int64_t end_ns) const {
  std::optional<std::int64_t> first;
  for (const auto& o : cfg_.outages) {
    const bool hit = o.b ? (o.a == from && *o.b == to) || (o.a == to && *o.b == from)
                         : o.a == from || o.a == to;
    if (hit && o.from.ns() <= end_ns && o.to.ns() > begin_ns)
      first = std::min(first.value_or(end_ns), std::max(o.from.ns(), begin_ns));
  }
  return first;
}

bool space_network::satellite_down(std::size_t k, vtime t) const {
  // No ISL links a satellite to itself: only k's own outages count.
  return goes_down(k, k, t.ns(), t.ns()).has_value();
}

std::optional<std::int64_t> space_network::start_unix_ns() const {
  if (tle_)
    return tle_->start_unix_ns();
  return std::nullopt;
}

std::vector<std::string> space_network::tle_rejected() const {
  return tle_ ? tle_->rejected() : std::vector<std::string>{};
}

std::vector<std::string> space_network::geometry_warnings() const {
  std::vector<std::string> out;
  // The README's bound on a hop's error: range rates of some 25 km/s at most.
  if (const auto s = cfg_.update_interval.seconds(); s > 10)
    out.push_back(absl::StrCat(
      "constellation.update_interval: ", runtime::to_string(cfg_.update_interval),
      " holds the topology that long: satellites move some ", std::lround(7.6 * s),
      " km between epochs, links, routes and handovers lag by as much, and a hop's delay may be "
      "off by up to ",
      runtime::to_string(runtime::duration::from_ns(static_cast<std::int64_t>(s * 25e3))),
      " (1s or less is usual)"));
  // Every epoch a window can reach is kept: the lookahead's worth.
  if (const auto spanned = lookahead_.ns() / cfg_.update_interval.ns(); spanned > 1000)
    out.push_back(absl::StrCat(
      "constellation.hop_delay: ", runtime::to_string(cfg_.hop_delay), " makes windows (",
      runtime::to_string(lookahead_), ") that span ", spanned, " topology epochs of ",
      runtime::to_string(cfg_.update_interval),
      ", and the network keeps every epoch a window can reach in memory at once (each with "
      "its links and routes): a shorter hop_delay or a longer update_interval takes far less"));
  for (std::size_t i = 0; i < closest_neighbours_m_.size(); ++i)
    if (const auto m = closest_neighbours_m_[i]; m < 10e3 && cfg_.isl.min_range_m < 10e3)
      out.push_back(absl::StrCat(
        "constellation.shells.", i, ": +Grid neighbours come within ",
        absl::StrFormat("%.3f", m / 1e3), " km of each other, so every window is only about ",
        runtime::to_string(lookahead_), " long (hop_delay plus that distance over c) and the run "
        "takes many windows; planes that share an orbit plane or cross close by do this "
        "(constellation.isl.min_range above 10km leaves such links out)"));
  // Linear between waypoints, so a user covers at least the chord.
  for (std::size_t g = cfg_.stations; g < cfg_.grounds.size(); ++g) {
    const auto& track = cfg_.tracks[g];
    for (std::size_t j = 1; j < track.size(); ++j) {
      const double chord = runtime::norm(runtime::geodetic_to_ecef(track[j].where) -
                                         runtime::geodetic_to_ecef(track[j - 1].where));
      const double speed = chord / (track[j].t_s - track[j - 1].t_s);
      if (speed > 8e3) {
        out.push_back(absl::StrCat(
          "ground.users.", g - cfg_.stations, ".waypoints.", j - 1, ": the user moves at ",
          absl::StrFormat("%.4g", speed / 1e3), " km/s or more from the point before, faster "
          "than a satellite in orbit"));
        break;
      }
    }
  }
  return out;
}

std::vector<std::string> space_network::tle_warnings() const {
  std::vector<std::string> out;
  if (!tle_)
    return out;
  const auto& rejected = tle_->rejected();
  if (!rejected.empty())
    out.push_back(absl::StrCat("constellation.tle.file: ", rejected.size(), " of ",
                               rejected.size() + tle_->size(),
                               " element sets left out (listed in metrics.tle_rejected); first: ",
                               rejected.front()));
  // Two sets of one object (files joined together) make two satellites.
  std::map<int, int> seen;
  std::size_t twice = 0;
  int first = -1;
  for (std::size_t k = 0; k < tle_->size(); ++k)
    if (++seen[tle_->element_set(k).catalog_number] == 2) {
      ++twice;
      if (first < 0)
        first = tle_->element_set(k).catalog_number;
    }
  if (twice > 0)
    out.push_back(absl::StrCat("constellation.tle.file: ", twice,
                               twice == 1 ? " catalog number has" : " catalog numbers have",
                               " more than one element set (first: ", first,
                               "); each set is a satellite of its own"));
  // A snapshot holds some sets weeks old: the median set is what counts.
  constexpr double far_days = 14;
  std::vector<double> days(tle_->size());
  for (std::size_t k = 0; k < tle_->size(); ++k)
    days[k] =
      std::abs(static_cast<double>(tle_->start_unix_ns() - tle_->element_set(k).epoch_unix_ns())) /
      86400e9;
  // Single sets far from the start, or decaying: named, counted.
  constexpr double old_days = 7, low_perigee_m = 200e3;
  std::size_t old = 0, farthest = 0, low = 0, lowest = 0;
  auto perigee_m = [&](std::size_t k) {
    return tle_->mean_perigee_radius_m(k) - runtime::wgs84_equatorial_radius_m;
  };
  for (std::size_t k = 0; k < tle_->size(); ++k) {
    if (days[k] > old_days) {
      ++old;
      if (days[k] > days[farthest])
        farthest = k;
    }
    if (perigee_m(k) < low_perigee_m) {
      ++low;
      if (perigee_m(k) < perigee_m(lowest))
        lowest = k;
    }
  }
  const double farthest_days = days[farthest];
  std::nth_element(days.begin(), days.begin() + days.size() / 2, days.end());
  if (const double median = days[days.size() / 2]; median > far_days)
    out.push_back(absl::StrFormat(
      "constellation.tle.start: %s is %.0f days from the median epoch of the sets; SGP4's error "
      "grows by kilometres a day, so positions that far out are rough (start near the sets' "
      "epochs, or use a newer file)",
      runtime::format_utc(tle_->start_unix_ns()), median));
  else if (old > 0)
    out.push_back(absl::StrFormat(
      "constellation.tle.file: %d element %s more than %.0f days from the start (farthest: %s, "
      "%.1f days): %s positions are rough (SGP4's error grows by kilometres a day)",
      old, old == 1 ? "set is" : "sets are", old_days, tle_->element_set(farthest).label(),
      farthest_days, old == 1 ? "its" : "their"));
  if (low > 0)
    out.push_back(absl::StrFormat(
      "constellation.tle.file: %d element %s a mean perigee below %.0f km (lowest: %s, %.0f km): "
      "decaying, %s kept while above the floor of %.0f km up, which also shortens the run's "
      "windows (lookahead); leave such sets out of the file to keep them out of the run",
      low, low == 1 ? "set has" : "sets have", low_perigee_m / 1e3,
      tle_->element_set(lowest).label(), perigee_m(lowest) / 1e3,
      low == 1 ? "it is" : "they are",
      (tle_->floor_radius_m() - runtime::wgs84_equatorial_radius_m) / 1e3));
  return out;
}

void space_network::build_next_locked() {
  const std::int64_t k = recent_.empty() ? 0 : recent_.back()->index + 1;
  const double t_s = (cfg_.update_interval * k).seconds();
  const runtime::topology_snapshot* prev = recent_.empty() ? nullptr : recent_.back()->snapshot.get();
  auto snap = std::make_shared<const runtime::topology_snapshot>(
    runtime::build_snapshot(t_s, positions(t_s), candidates_, grounds_at(t_s), cfg_.isl, cfg_.gsl,
                            prev, inputs_at(k)));
  for (const auto& h : snap->handovers)
    handovers_.push_back({(cfg_.update_interval * k).ns(), h});
  auto ep = std::make_shared<space_epoch>();
  ep->index = k;
  ep->routes = std::make_unique<runtime::route_cache>(snap, cfg_.metric);
  ep->snapshot = std::move(snap);
  record_locked(*ep);
  std::erase_if(built_, [](const auto& e) { return e.expired(); });
  built_.push_back(ep);
  recent_.push_back(std::move(ep));
  if (recent_.size() > kept_epochs_)
    recent_.pop_front();
}

std::size_t space_network::epochs_alive() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<std::size_t>(
      std::count_if(built_.begin(), built_.end(), [](const auto& e) { return !e.expired(); }));
}

void space_network::record_locked(const space_epoch& ep) {
  const auto every = cfg_.record.interval.ns();
  if (every <= 0)
    return;
  // Record the first epoch at or after each multiple of the interval.
  const std::int64_t t0 = (cfg_.update_interval * ep.index).ns();
  const std::int64_t next_mark = recorder_->samples.empty()
                                   ? 0
                                   : (static_cast<std::int64_t>(std::llround(
                                        recorder_->samples.back().t_s * 1e9)) / every + 1) * every;
  if (t0 < next_mark)
    return;
  const auto& snap = *ep.snapshot;
  recorder::sample smp;
  smp.t_s = snap.t_s;
  smp.position_m = snap.position_m;
  for (std::uint32_t u = 0; u < snap.nodes(); ++u)
    for (auto i = snap.offsets[u]; i < snap.offsets[u + 1]; ++i)
      if (u < snap.neighbour[i])
        smp.links.emplace_back(u, snap.neighbour[i], snap.kind[i]);
  if (!cfg_.record.path_from.empty()) {
    // space_config_from checked that both endpoints exist.
    const auto from = snap.ground_node(*find_ground(cfg_, cfg_.record.path_from));
    const auto to = snap.ground_node(*find_ground(cfg_, cfg_.record.path_to));
    const auto& routes = *ep.routes;
    if (routes.next(to, from) != runtime::route_tree::none) {
      for (auto v = from; v != to; v = routes.next(to, v))
        smp.path.push_back(v);
      smp.path.push_back(to);
    }
  }
  recorder_->samples.push_back(std::move(smp));
}

std::string space_network::node_name(std::size_t node) const {
  if (node >= satellites_)
    return cfg_.grounds[node - satellites_].name;
  return absl::StrCat("sat", node);
}

std::map<std::string, std::string> space_network::recorded_files() const {
  std::lock_guard<std::mutex> lock(mu_);
  const auto& samples = recorder_->samples;
  if (samples.empty())
    return {};
  std::string pos = "time_s,node,name,x_km,y_km,z_km\n";
  std::string links = "time_s,a,b,kind,length_km\n";
  static constexpr const char* kind_name[] = {"isl_intra_plane", "isl_inter_plane", "ground"};
  // Records are topology epochs, whose times are multiples of the update
  // interval: as many decimals as it needs (milliseconds at least).
  int decimals = 3;
  for (std::int64_t unit = 1'000'000; decimals < 9 && cfg_.update_interval.ns() % unit != 0;
       unit /= 10)
    ++decimals;
  for (const auto& smp : samples) {
    for (std::size_t n = 0; n < smp.position_m.size(); ++n) {
      const auto& r = smp.position_m[n];
      absl::StrAppendFormat(&pos, "%.*f,%u,%s,%.3f,%.3f,%.3f\n", decimals, smp.t_s, n,
                            node_name(n), r.x * 1e-3, r.y * 1e-3, r.z * 1e-3);
    }
    for (const auto& [a, b, kind] : smp.links)
      absl::StrAppendFormat(&links, "%.*f,%u,%u,%s,%.3f\n", decimals, smp.t_s, a, b,
                            kind_name[static_cast<int>(kind)],
                            runtime::distance(smp.position_m[a], smp.position_m[b]) * 1e-3);
  }
  std::map<std::string, std::string> out{{"positions.csv", std::move(pos)},
                                         {"links.csv", std::move(links)}};
  if (!cfg_.record.czml)
    return out;

  // CZML (Cesium): satellites and ground endpoints as sampled Earth-fixed
  // positions, links and the recorded route as polylines between them that
  // exist while the records show them. Walker constellations have no
  // calendar date: their time 0 is shown as J2000 (2000-01-01T12:00:00Z).
  const std::int64_t t0_ns = tle_ ? tle_->start_unix_ns() : 946'728'000'000'000'000;
  const double step = cfg_.record.interval.seconds();
  auto iso = [&](double t_s) { return runtime::format_utc(t0_ns + std::llround(t_s * 1e9)); };
  auto span = [&](double a, double b) { return absl::StrCat(iso(a), "/", iso(b)); };
  const double end_s = samples.back().t_s + step;
  nlohmann::json doc = nlohmann::json::array();
  doc.push_back({{"id", "document"},
                 {"name", "satemu constellation"},
                 {"version", "1.0"},
                 {"clock",
                  {{"interval", span(0, end_s)},
                   {"currentTime", iso(0)},
                   {"multiplier", 10},
                   {"range", "LOOP_STOP"},
                   {"step", "SYSTEM_CLOCK_MULTIPLIER"}}}});
  const std::size_t nodes = samples.front().position_m.size();
  for (std::size_t n = 0; n < nodes; ++n) {
    nlohmann::json cart = nlohmann::json::array();
    for (const auto& smp : samples) {
      const auto& r = smp.position_m[n];
      if (!std::isfinite(r.x))
        continue;
      cart.push_back(smp.t_s);
      cart.push_back(r.x);
      cart.push_back(r.y);
      cart.push_back(r.z);
    }
    const bool ground = n >= satellites_;
    nlohmann::json pkt = {
      {"id", node_name(n)},
      {"name", node_name(n)},
      {"availability", span(0, end_s)},
      {"position",
       {{"epoch", iso(0)},
        {"referenceFrame", "FIXED"},
        {"interpolationAlgorithm", "LAGRANGE"},
        {"interpolationDegree", ground ? 1 : 5},
        {"cartesian", std::move(cart)}}},
      {"point",
       {{"pixelSize", ground ? 8 : 3},
        {"color", {{"rgba", ground ? nlohmann::json{255, 200, 0, 255} : nlohmann::json{255, 255, 255, 220}}}}}}};
    if (ground)
      pkt["label"] = {{"text", node_name(n)}, {"scale", 0.5}, {"pixelOffset", {{"cartesian2", {0, -12}}}}};
    doc.push_back(std::move(pkt));
  }
  // Each link: the records it appears in, merged into intervals.
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::size_t>> seen;
  for (std::size_t i = 0; i < samples.size(); ++i)
    for (const auto& [a, b, kind] : samples[i].links)
      seen[{a, b}].push_back(i);
  auto sample_end = [&](std::size_t i) { return i + 1 < samples.size() ? samples[i + 1].t_s : end_s; };
  for (const auto& [ab, idx] : seen) {
    nlohmann::json avail = nlohmann::json::array();
    for (std::size_t i = 0; i < idx.size();) {
      std::size_t j = i;
      while (j + 1 < idx.size() && idx[j + 1] == idx[j] + 1)
        ++j;
      avail.push_back(span(samples[idx[i]].t_s, sample_end(idx[j])));
      i = j + 1;
    }
    const bool ground = ab.second >= satellites_;
    doc.push_back(
      {{"id", absl::StrCat("link/", node_name(ab.first), "-", node_name(ab.second))},
       {"availability", std::move(avail)},
       {"polyline",
        {{"positions",
          {{"references", {node_name(ab.first) + "#position", node_name(ab.second) + "#position"}}}},
         {"width", 1},
         {"arcType", "NONE"},
         {"material",
          {{"solidColor",
            {{"color", {{"rgba", ground ? nlohmann::json{255, 200, 0, 160} : nlohmann::json{0, 180, 255, 90}}}}}}}}}}});
  }
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (samples[i].path.size() < 2)
      continue;
    nlohmann::json refs = nlohmann::json::array();
    for (auto v : samples[i].path)
      refs.push_back(node_name(v) + "#position");
    doc.push_back({{"id", absl::StrCat("path/", i)},
                   {"name", absl::StrCat(cfg_.record.path_from, " -> ", cfg_.record.path_to)},
                   {"availability", span(samples[i].t_s, sample_end(i))},
                   {"polyline",
                    {{"positions", {{"references", std::move(refs)}}},
                     {"width", 4},
                     {"arcType", "NONE"},
                     {"material", {{"solidColor", {{"color", {{"rgba", {255, 40, 40, 255}}}}}}}}}}});
  }
  out["constellation.czml"] = doc.dump(1, ' ', false, nlohmann::json::error_handler_t::replace);
  return out;
}

std::shared_ptr<const space_epoch> space_network::at(vtime t) {
  const std::int64_t k = t.ns() / cfg_.update_interval.ns();
  std::lock_guard<std::mutex> lock(mu_);
  while (recent_.empty() || recent_.back()->index < k)
    build_next_locked();
  for (const auto& ep : recent_)
    if (ep->index == k)
      return ep;
  if (cfg_.real_time && k < recent_.front()->index) {
    ++stale_lookups_;
    return recent_.front();
  }
  std::fprintf(stderr, "satemu: internal error: topology epoch %lld requested after it was dropped\n",
               static_cast<long long>(k));
  std::abort();
}

std::uint64_t space_network::stale_lookups() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stale_lookups_;
}

std::vector<handover_record> space_network::handovers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return handovers_;
}

std::int64_t space_network::epochs_built() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recent_.empty() ? 0 : recent_.back()->index + 1;
}

void space_network::build_through(std::int64_t count) {
  std::lock_guard<std::mutex> lock(mu_);
  while (recent_.empty() ? count > 0 : recent_.back()->index + 1 < count)
    build_next_locked();
}

std::vector<std::uint32_t> space_network::plane_of() const {
  if (tle_)
    return tle_->plane_of();
  std::vector<std::uint32_t> out(satellites_);
  std::vector<std::uint32_t> first_plane;
  std::uint32_t planes = 0;
  for (const auto& sh : walker_->shells()) {
    first_plane.push_back(planes);
    planes += static_cast<std::uint32_t>(sh.planes);
  }
  for (std::size_t k = 0; k < satellites_; ++k) {
    const auto& s = (*walker_)[k];
    out[k] = first_plane[static_cast<std::size_t>(s.shell)] + static_cast<std::uint32_t>(s.plane);
  }
  return out;
}

void space_node::save_results(protocol::byte_writer& w) const {
  w.u64(next_ping_);
  w.u64(samples_.size());
  for (const auto& s : samples_) {
    w.u32(s.target);
    w.u64(s.seq);
    w.i64(s.sent_ns);
    w.i64(s.rtt_ns);
    w.i64(s.forward_ns);
    w.u16(s.hops_forward);
    w.u16(s.hops_back);
    w.u8(s.path_changed ? 1 : 0);
  }
  w.u64(flow_sent_.size());
  for (auto n : flow_sent_)
    w.u64(n);
  w.u64(flow_samples_.size());
  for (const auto& s : flow_samples_) {
    w.u32(s.flow);
    w.u64(s.seq);
    w.i64(s.sent_ns);
    w.i64(s.delay_ns);
    w.u16(s.hops);
    w.u32(s.wire_bytes);
    w.u8(s.path_changed ? 1 : 0);
  }
}

void space_node::load_results(protocol::byte_reader& r) {
  next_ping_ = r.u64("pings sent");
  samples_.resize(r.count("ping samples", 41));
  for (auto& s : samples_) {
    s.target = r.u32("ping target");
    s.seq = r.u64("ping sequence");
    s.sent_ns = r.i64("ping send time");
    s.rtt_ns = r.i64("ping rtt");
    s.forward_ns = r.i64("ping forward time");
    s.hops_forward = r.u16("ping hops");
    s.hops_back = r.u16("ping hops");
    s.path_changed = r.u8("ping path change") != 0;
  }
  const auto flows = r.count("flows", 8);
  if (r.ok() && flows != flow_sent_.size())
    r.fail("flow count differs from the scenario's");
  for (auto& n : flow_sent_)
    n = r.u64("flow packets sent");
  flow_samples_.resize(r.count("flow samples", 35));
  for (auto& s : flow_samples_) {
    s.flow = r.u32("flow id");
    s.seq = r.u64("flow sequence");
    s.sent_ns = r.i64("flow send time");
    s.delay_ns = r.i64("flow delay");
    s.hops = r.u16("flow hops");
    s.wire_bytes = r.u32("flow wire bytes");
    s.path_changed = r.u8("flow path change") != 0;
  }
}

space_node::space_node(std::shared_ptr<space_network> net, ping_plan plan,
                       std::vector<flow_plan> flows)
  : net_(std::move(net)), plan_(std::move(plan)), flows_(std::move(flows)),
    flow_sent_(flows_.size(), 0), flow_last_route_(flows_.size(), 0) {
  const space_counters& c = space_ids();
  declare_counters({c.hops, c.drops_queue, c.drops_loss, c.drops_no_route, c.drops_outage,
                    c.malformed});
}

// Timer tags: 0 = the ping round, 1 + i = the next packet of flow i.
void space_node::on_start() {
  if (!plan_.targets.empty())
    schedule(plan_.start, 0);
  for (std::size_t i = 0; i < flows_.size(); ++i)
    if (flows_[i].start < flows_[i].stop)
      schedule(flows_[i].start, 1 + i);
}

void space_node::send_flow_packet(std::size_t i) {
  const auto& f = flows_[i];
  protocol::flow_packet m;
  m.flow = f.flow;
  m.seq = flow_sent_[i]++;
  m.origin = id();
  m.target = f.target;
  m.sent_ns = now().ns();
  // As for pings: against the flow's previous packet sent, whatever order
  // the packets arrive in.
  const std::uint64_t route = route_hash(epoch(), f.target);
  m.path_changed = flow_last_route_[i] != 0 && flow_last_route_[i] != route;
  flow_last_route_[i] = route;
  // The plan's size is the size on the wire (flows_workload::make): filler
  // = size less the header and the encoded fields, in whole words.
  m.body_bytes = f.size_bytes - protocol::flow_overhead_bytes();
  auto body = protocol::encode_flow(m);
  if (auto h = plan_hop(f.target, body.size_bytes() + protocol::envelope::header_bytes))
    send_via(h->node, f.target, h->latency, protocol::kind::flow, std::move(body));
  const long double next = static_cast<long double>(f.start.ns()) +
                          std::roundl(static_cast<long double>(flow_sent_[i]) * f.interval_ns);
  if (next < static_cast<long double>(f.stop.ns()))
    schedule(duration::from_ns(static_cast<std::int64_t>(next) - now().ns()), 1 + i);
}

void space_node::receive_flow(protocol::envelope& e) {
  auto m = protocol::decode_flow(e.body);
  if (!m.ok()) {
    count(space_ids().malformed);
    return;
  }
  flow_sample s;
  s.flow = m->flow;
  s.seq = m->seq;
  s.sent_ns = m->sent_ns;
  s.delay_ns = now().ns() - m->sent_ns;
  s.hops = static_cast<std::uint16_t>(e.hops + 1);
  s.wire_bytes = static_cast<std::uint32_t>(e.wire_size());
  s.path_changed = m->path_changed;
  flow_samples_.push_back(s);
}

const space_epoch& space_node::epoch() {
  const auto k = now().ns() / net_->config().update_interval.ns();
  if (epoch_ && epoch_->index == k)
    return *epoch_;
  if (auto last = last_epoch_.lock(); last && last->index == k) {
    epoch_ = std::move(last);
  } else {
    epoch_ = net_->at(now());
    last_epoch_ = epoch_;
  }
  return *epoch_;
}

namespace {
constexpr std::uint64_t app_timer_bit = std::uint64_t{1} << 63;
} // namespace

void space_node::schedule_app(duration delay, std::uint64_t tag) {
  schedule(delay, tag | app_timer_bit);
}

bool space_node::send_over(runtime::entity_id dst, protocol::kind k, protocol::payload_ptr body,
                           duration extra) {
  const auto h = plan_hop(dst, body.size_bytes() + protocol::envelope::header_bytes, extra);
  if (!h)
    return false;
  send_via(h->node, dst, h->latency, k, std::move(body));
  return true;
}

std::int32_t space_node::serving_satellite() {
  const auto& snap = *epoch().snapshot;
  const auto g = static_cast<std::size_t>(id()) - snap.satellites;
  return snap.serving[g * snap.groups];
}

void space_node::on_timer(std::uint64_t tag) {
  if ((tag & app_timer_bit) != 0) {
    on_app_timer(tag & ~app_timer_bit);
    return;
  }
  if (tag > 0) {
    send_flow_packet(tag - 1);
    return;
  }
  const auto& ep = epoch();
  if (last_route_.size() < plan_.targets.size())
    last_route_.resize(plan_.targets.size(), 0);
  for (std::size_t i = 0; i < plan_.targets.size(); ++i) {
    const auto target = plan_.targets[i];
    protocol::ping_message m;
    m.id = next_ping_++;
    m.origin = id();
    m.target = target;
    m.sent_ns = now().ns();
    m.body_bytes = plan_.size_bytes;
    // Whether the route changed since the previous ping to this target
    // travels with the ping and comes back in the reply, however many are
    // in flight and in whatever order they are answered.
    const std::uint64_t route = route_hash(ep, target);
    auto& last = last_route_[i];
    m.path_changed = last != 0 && last != route;
    last = route;
    auto body = protocol::encode_ping(m);
    if (auto h = plan_hop(target, body.size_bytes() + protocol::envelope::header_bytes))
      send_via(h->node, target, h->latency, protocol::kind::ping, std::move(body));
  }
  schedule(plan_.interval, 0);
}

void space_node::on_envelope(protocol::envelope& e) {
  if (id() < net_->satellites() && net_->has_outages() && net_->satellite_down(id(), now())) {
    count(space_ids().drops_outage);
    return;
  }
  if (e.dst != id()) {
    if (auto h = plan_hop(e.dst, e.wire_size()))
      forward(h->node, h->latency, std::move(e));
    return;
  }
  if (e.k == protocol::kind::flow)
    receive_flow(e);
  else if (e.k == protocol::kind::ping)
    receive_ping(e);
  else
    on_app_envelope(e);
}

void space_node::receive_ping(protocol::envelope& e) {
  auto m = protocol::decode_ping(e.body);
  if (!m.ok()) {
    count(space_ids().malformed);
    return;
  }
  if (!m->reply) {
    protocol::ping_message r = *m;
    r.reply = true;
    r.arrived_ns = now().ns();
    r.request_hops = static_cast<std::uint16_t>(e.hops + 1);
    auto body = protocol::encode_ping(r);
    if (auto h = plan_hop(m->origin, body.size_bytes() + protocol::envelope::header_bytes))
      send_via(h->node, m->origin, h->latency, protocol::kind::ping, std::move(body));
    return;
  }
  ping_sample s;
  s.target = m->target;
  s.seq = m->id;
  s.sent_ns = m->sent_ns;
  s.rtt_ns = now().ns() - m->sent_ns;
  s.forward_ns = m->arrived_ns - m->sent_ns;
  s.hops_forward = m->request_hops;
  s.hops_back = static_cast<std::uint16_t>(e.hops + 1);
  s.path_changed = m->path_changed;
  samples_.push_back(s);
}

std::uint64_t space_node::route_hash(const space_epoch& ep, runtime::entity_id dst) const {
  const auto& routes = *ep.routes;
  std::uint64_t h = runtime::hash_combine(0, dst);
  for (auto v = id(); v != dst && v != runtime::route_tree::none; v = routes.next(dst, v))
    h = runtime::hash_combine(h, v);
  return h;
}

std::optional<space_node::next_hop> space_node::plan_hop(runtime::entity_id dst,
                                                         std::size_t wire_bytes,
                                                         duration ready) {
  const auto& ep = epoch();
  const auto& snap = *ep.snapshot;
  const auto next = ep.routes->next(dst, id());
  if (next == runtime::route_tree::none) {
    count(space_ids().drops_no_route);
    return std::nullopt;
  }
  const double length = snap.link_length_m(id(), next).value();
  const bool ground_link = id() >= snap.satellites || next >= snap.satellites;
  const auto& cfg = net_->config();
  const double rate = ground_link ? cfg.gsl_rate_bps : cfg.isl_rate_bps;
  const double ser_s = static_cast<double>(wire_bytes) * 8.0 / rate;
  // A ground endpoint has one radio per satellite group it links into (one
  // in all without gsl.per_shell): after a handover, or with links to every
  // satellite in view, its messages queue behind those still going out to
  // another satellite, not beside them.
  const auto transmitter = id() >= snap.satellites ? net_->group_of(next) : next;
  auto q = std::find_if(queues_.begin(), queues_.end(),
                        [&](const link_queue& l) { return l.transmitter == transmitter; });
  if (q == queues_.end()) {
    queues_.push_back({transmitter});
    q = queues_.end() - 1;
  }
  const std::int64_t t = now().ns() + ready.ns();
  // Sending starts when the link is free: when ready, or when the messages ahead
  // are sent (exactly, not rounded to a nanosecond).
  const bool idle = q->busy_until_ns < t || (q->busy_until_ns == t && q->busy_frac_ns == 0);
  const std::int64_t start = idle ? t : q->busy_until_ns;
  const double start_frac = idle ? 0.0 : q->busy_frac_ns;
  const double wait_ns = static_cast<double>(start - t) + start_frac;
  // The backlog ahead of this message, in bytes still to be sent. A message
  // that would leave more than 30 years on (a huge queue at a few bits per
  // second) is as good as lost, and its time would not fit in nanoseconds.
  const double backlog_bytes = wait_ns * 1e-9 * rate / 8.0;
  if (backlog_bytes + static_cast<double>(wire_bytes) > static_cast<double>(cfg.queue_bytes) ||
      wait_ns * 1e-9 + ser_s > 1e9) {
    count(space_ids().drops_queue);
    return std::nullopt;
  }
  const double sent_frac = start_frac + ser_s * 1e9;
  const double whole = std::floor(sent_frac);
  const std::int64_t busy_until = start + static_cast<std::int64_t>(whole);
  const double busy_frac = sent_frac - whole;
  // The last bit is out at the next whole nanosecond.
  const std::int64_t sent = busy_until + (busy_frac > 0 ? 1 : 0);
  if (net_->has_outages()) {
    // The link is gone when either end or the ISL goes down: from then on
    // it sends nothing, and the message and those queued behind it are lost
    // (one out by then still arrives, or is dropped by a satellite down then).
    if (const auto down = net_->goes_down(id(), next, now().ns(), sent)) {
      q->busy_until_ns = *down;
      q->busy_frac_ns = 0;
      count(space_ids().drops_outage);
      return std::nullopt;
    }
  }
  q->busy_until_ns = busy_until;
  q->busy_frac_ns = busy_frac;
  const std::int64_t prop = ceil_ns(length / runtime::speed_of_light_m_per_s);
  if (cfg.loss > 0 && fault_random().uniform() < cfg.loss) {
    count(space_ids().drops_loss);
    return std::nullopt;
  }
  count(space_ids().hops);
  return next_hop{next, duration::from_ns(sent - now().ns() + prop) + cfg.hop_delay};
}

std::optional<std::size_t> find_ground(const space_config& c, std::string_view name) {
  for (std::size_t i = 0; i < c.grounds.size(); ++i)
    if (c.grounds[i].name == name)
      return i;
  return std::nullopt;
}

absl::Status space_workload::build_nodes(space_config cfg, const node_factory& make) {
  auto net = space_network::make(std::move(cfg));
  if (!net.ok())
    return net.status();
  net_ = std::move(*net);
  const auto n = net_->nodes();
  for (std::size_t i = 0; i < n; ++i)
    entities_.push_back(make(net_, i));
  return absl::OkStatus();
}

absl::Status space_workload::build(space_config cfg, std::vector<ping_plan> pings,
                                   std::vector<std::vector<flow_plan>> flows) {
  const auto g = cfg.grounds.size();
  auto net = space_network::make(std::move(cfg));
  if (!net.ok())
    return net.status();
  net_ = std::move(*net);
  for (std::size_t k = 0; k < net_->satellites(); ++k)
    entities_.push_back(std::make_unique<space_node>(net_));
  pings.resize(g);
  flows.resize(g);
  const auto sats = static_cast<runtime::entity_id>(net_->satellites());
  for (std::size_t i = 0; i < g; ++i) {
    for (auto& t : pings[i].targets)
      t += sats;
    for (auto& f : flows[i])
      f.target += sats;
    entities_.push_back(std::make_unique<space_node>(net_, std::move(pings[i]), std::move(flows[i])));
  }
  return absl::OkStatus();
}

std::vector<std::string> space_workload::warnings() const {
  auto out = net_->tle_warnings();
  for (auto& w : net_->geometry_warnings())
    out.push_back(std::move(w));
  if (const auto queue = net_->config().queue_bytes; smallest_message_bytes_ > queue)
    out.push_back(absl::StrCat(
      "constellation.queue: ", runtime::to_string(runtime::data_size{queue}),
      " is smaller than one ", message_name_, " (",
      runtime::to_string(runtime::data_size{smallest_message_bytes_}), " on the wire): every ",
      message_name_, " is dropped at its first link (counters.space.drops_queue_full)"));
  return out;
}

std::vector<std::uint32_t> space_workload::placement_groups() {
  auto groups = net_->plane_of();
  std::uint32_t planes = 0;
  for (auto p : groups)
    planes = std::max(planes, p + 1);
  const auto ep = net_->at(runtime::vtime::zero());
  const auto& snap = *ep->snapshot;
  const std::size_t per = snap.serving.size() / std::max<std::size_t>(1, net_->grounds());
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    std::uint32_t group = planes + static_cast<std::uint32_t>(g);
    for (std::size_t i = 0; i < per; ++i)
      if (const auto sat = snap.serving[g * per + i]; sat >= 0) {
        group = groups[static_cast<std::size_t>(sat)];
        break;
      }
    groups.push_back(group);
  }
  return groups;
}

std::string space_workload::node_state() const {
  std::string out;
  protocol::byte_writer w(out);
  w.i64(net_->epochs_built());
  return out;
}

absl::Status space_workload::merge_node_state(std::string_view state) {
  protocol::byte_reader r(state);
  const auto epochs = r.i64("topology epochs");
  r.expect_end("the topology state");
  if (!r.ok())
    return r.status();
  if (epochs < 0 || epochs > (std::int64_t{1} << 40))
    return absl::InvalidArgumentError("topology epochs out of range");
  net_->build_through(epochs);
  return absl::OkStatus();
}

void space_workload::complete_topology(const runtime::run_result& r) const {
  // Epochs are built as the nodes ask for them; those after the last message
  // of a run still hold handovers and records: every epoch of [0, reached).
  if (r.reached.ns() > 0)
    net_->build_through((r.reached.ns() - 1) / net_->config().update_interval.ns() + 1);
}

nlohmann::json space_workload::network_metrics(const runtime::run_result& r) const {
  complete_topology(r);
  nlohmann::json j;
  j["satellites"] = net_->satellites();
  j["ground_endpoints"] = net_->grounds();
  if (const auto t0 = net_->start_unix_ns()) {
    j["start_utc"] = runtime::format_utc(*t0);
    j["tle_rejected"] = net_->tle_rejected();
  }
  j["lookahead_ns"] = net_->lookahead().ns();
  j["topology_epochs"] = net_->epochs_built();
  if (net_->config().real_time)
    j["stale_topology_lookups"] = net_->stale_lookups();
  j["handovers"] = net_->handovers().size();
  return j;
}

std::uint64_t space_workload::messages_in_flight(std::uint64_t sent, std::uint64_t arrived,
                                                const runtime::run_result& r) {
  std::uint64_t gone = arrived;
  for (const char* name : drop_counter_names)
    if (auto it = r.counters.find(name); it != r.counters.end())
      gone += it->second;
  return sent > gone ? sent - gone : 0;
}

std::map<std::string, std::string> space_workload::network_files(
  const runtime::run_result& r) const {
  complete_topology(r);
  std::string ho = "time_s,endpoint,shell,from_satellite,to_satellite\n";
  for (const auto& h : net_->handovers())
    absl::StrAppendFormat(&ho, "%.9f,%s,%u,%d,%d\n", static_cast<double>(h.time_ns) * 1e-9,
                          net_->config().grounds[h.change.ground].name, h.change.group, h.change.from,
                          h.change.to);
  auto out = net_->recorded_files();
  out["handovers.csv"] = std::move(ho);
  return out;
}

} // namespace satemu::actors
