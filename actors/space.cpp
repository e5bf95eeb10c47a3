#include "actors/space.hpp"

#include <algorithm>
#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "protocol/ping.hpp"
#include "runtime/constants.hpp"
#include "runtime/rng.hpp"
#include "runtime/schema.hpp"

namespace satemu::actors {

using runtime::duration;
using runtime::key_spec;
using runtime::vtime;

namespace {

struct space_counters {
  runtime::counter_id hops, drops_queue, drops_loss, drops_no_route, malformed;
};

const space_counters& space_ids() {
  static const space_counters c{
    runtime::register_counter("space.hops"),
    runtime::register_counter("space.drops_queue_full"),
    runtime::register_counter("space.drops_loss"),
    runtime::register_counter("space.drops_no_route"),
    runtime::register_counter("space.malformed"),
  };
  return c;
}

constexpr std::size_t kept_epochs = 8;

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
            "shells", "Walker-delta shells",
            {
              key_spec::integer("planes", "", "Orbital planes").mandatory().at_least(1),
              key_spec::integer("sats_per_plane", "", "Satellites per plane").mandatory().at_least(1),
              key_spec::dist("altitude", "", "Altitude above the equatorial radius")
                .mandatory()
                .at_least(100e3),
              key_spec::ang("inclination", "", "Inclination").mandatory().at_least(0).at_most(180),
              key_spec::integer("phasing", "0", "Walker phasing factor F, in [0, planes-1]")
                .at_least(0),
            })
            .items_at_least(1),
          key_spec::map(
            "isl", "Inter-satellite links (+Grid: two intra-plane, two inter-plane neighbours)",
            {
              key_spec::choice("topology", {"plus_grid"}, "plus_grid", "ISL pattern"),
              key_spec::rate("rate", "10Gbps", "Rate of each ISL").above(0),
              key_spec::dist("max_range", "5000km", "Longest ISL").above(0),
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
        })
        .optional_section());
    runtime::register_section(
      key_spec::map(
        "ground", "Ground stations and users",
        {
          key_spec::list_of_maps(
            "stations", "Fixed ground endpoints",
            {
              key_spec::text("name", "", "Unique name").mandatory(),
              key_spec::real("lat", "", "Geodetic latitude [deg]").mandatory().at_least(-90).at_most(90),
              key_spec::real("lon", "", "Longitude [deg], east positive")
                .mandatory()
                .at_least(-180)
                .at_most(360),
              key_spec::dist("alt", "0m", "Height above the WGS-84 ellipsoid").at_least(-500),
            }),
          key_spec::map(
            "gsl", "Ground-satellite links",
            {
              key_spec::ang("min_elevation", "25deg", "Lowest elevation of a serving satellite")
                .at_least(0)
                .at_most(90),
              key_spec::rate("rate", "1Gbps", "Rate of each ground link").above(0),
              key_spec::choice("policy", {"highest_elevation", "nearest", "stay_until_lost"},
                               "highest_elevation", "How a ground endpoint picks its satellite"),
            }),
        })
        .optional_section());
  });
}

absl::StatusOr<space_config> space_config_from(const runtime::scenario& s) {
  if (!s.has("constellation"))
    return absl::InvalidArgumentError("constellation: this workload needs a constellation section");
  space_config c;
  const auto n = s.list_size("constellation.shells");
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
  c.isl.max_range_m = s.get_distance("constellation.isl.max_range").m;
  c.isl.min_line_of_sight_altitude_m = s.get_distance("constellation.isl.min_altitude").m;
  c.isl.inter_plane_max_latitude_deg = s.get_angle("constellation.isl.polar_limit").deg;
  c.isl_rate_bps = s.get_data_rate("constellation.isl.rate").bps;
  c.update_interval = s.get_duration("constellation.update_interval");
  c.hop_delay = s.get_duration("constellation.hop_delay");
  c.queue_bytes = s.get_data_size("constellation.queue").bytes;
  c.loss = s.get_real("constellation.loss");
  c.metric = s.get_string("constellation.routing") == "hops" ? runtime::route_metric::hops
                                                             : runtime::route_metric::delay;
  if (s.has("ground")) {
    c.gsl.min_elevation_deg = s.get_angle("ground.gsl.min_elevation").deg;
    const auto policy = s.get_string("ground.gsl.policy");
    c.gsl.policy = policy == "nearest"           ? runtime::association_policy::nearest
                   : policy == "stay_until_lost" ? runtime::association_policy::stay_until_lost
                                                 : runtime::association_policy::highest_elevation;
    c.gsl_rate_bps = s.get_data_rate("ground.gsl.rate").bps;
    std::set<std::string> names;
    const auto g = s.list_size("ground.stations");
    for (std::size_t i = 0; i < g; ++i) {
      const auto p = absl::StrCat("ground.stations.", i, ".");
      auto name = s.get_string(p + "name");
      if (!names.insert(name).second)
        return absl::InvalidArgumentError(
          absl::StrCat(p + "name", ": station name '", name, "' is used twice"));
      c.grounds.push_back(runtime::ground_point::at(
        std::move(name), {s.get_real(p + "lat"), s.get_real(p + "lon"), s.get_distance(p + "alt").m}));
    }
  }
  return c;
}

space_network::space_network(space_config cfg, runtime::walker_constellation c)
  : cfg_(std::move(cfg)), constellation_(std::move(c)),
    candidates_(runtime::plus_grid_candidates(constellation_)) {
  // The shortest distance a link can ever span: a ground link is at least the
  // lowest altitude minus the highest station; an in-plane link is its chord;
  // an inter-plane link is at least the minimum of its closed form over the
  // argument of latitude (sampled finely, with a margin below the sample).
  double shortest = std::numeric_limits<double>::infinity();
  double highest_ground = 0;
  for (const auto& g : cfg_.grounds)
    highest_ground = std::max(highest_ground, g.where.alt_m);
  for (const auto& sh : cfg_.shells) {
    shortest = std::min(shortest, sh.altitude_m - highest_ground);
    if (sh.sats_per_plane > 1)
      shortest = std::min(shortest, runtime::in_plane_neighbour_distance_m(sh));
    if (sh.planes > 1) {
      double m = std::numeric_limits<double>::infinity();
      for (int i = 0; i < 36'000; ++i)
        m = std::min(m, runtime::inter_plane_neighbour_distance_m(sh, i * runtime::two_pi / 36'000));
      shortest = std::min(shortest, m * 0.999);
    }
  }
  shortest = std::max(shortest, 0.0);
  lookahead_ = cfg_.hop_delay +
               duration::from_ns(static_cast<std::int64_t>(
                 std::floor(shortest / runtime::speed_of_light_m_per_s * 1e9)));
}

absl::StatusOr<std::shared_ptr<space_network>> space_network::make(space_config cfg) {
  auto c = runtime::walker_constellation::make(cfg.shells);
  if (!c.ok())
    return absl::InvalidArgumentError(absl::StrCat("constellation.shells: ", c.status().message()));
  return std::shared_ptr<space_network>(new space_network(std::move(cfg), std::move(*c)));
}

void space_network::build_next_locked() {
  const std::int64_t k = recent_.empty() ? 0 : recent_.back()->index + 1;
  const double t_s = (cfg_.update_interval * k).seconds();
  const runtime::topology_snapshot* prev = recent_.empty() ? nullptr : recent_.back()->snapshot.get();
  auto snap = std::make_shared<const runtime::topology_snapshot>(runtime::build_snapshot(
    t_s, constellation_.ecef_all(t_s, 0.0), candidates_, cfg_.grounds, cfg_.isl, cfg_.gsl, prev));
  for (const auto& h : snap->handovers)
    handovers_.push_back({(cfg_.update_interval * k).ns(), h});
  auto ep = std::make_shared<space_epoch>();
  ep->index = k;
  ep->routes = std::make_unique<runtime::route_cache>(snap, cfg_.metric);
  ep->snapshot = std::move(snap);
  recent_.push_back(std::move(ep));
  if (recent_.size() > kept_epochs)
    recent_.pop_front();
}

std::shared_ptr<const space_epoch> space_network::at(vtime t) {
  const std::int64_t k = t.ns() / cfg_.update_interval.ns();
  std::lock_guard<std::mutex> lock(mu_);
  while (recent_.empty() || recent_.back()->index < k)
    build_next_locked();
  for (const auto& ep : recent_)
    if (ep->index == k)
      return ep;
  std::fprintf(stderr, "satemu: internal error: topology epoch %lld requested after it was dropped\n",
               static_cast<long long>(k));
  std::abort();
}

std::vector<handover_record> space_network::handovers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return handovers_;
}

std::int64_t space_network::epochs_built() const {
  std::lock_guard<std::mutex> lock(mu_);
  return recent_.empty() ? 0 : recent_.back()->index + 1;
}

space_node::space_node(std::shared_ptr<space_network> net, ping_plan plan)
  : net_(std::move(net)), plan_(std::move(plan)) {
  space_ids(); // register before any run reads the registry
}

void space_node::on_start() {
  if (!plan_.targets.empty())
    schedule(plan_.start, 0);
}

const space_epoch& space_node::epoch() {
  const auto k = now().ns() / net_->config().update_interval.ns();
  if (!epoch_ || epoch_->index != k)
    epoch_ = net_->at(now());
  return *epoch_;
}

void space_node::on_timer(std::uint64_t) {
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
    auto body = protocol::encode_ping(m);
    // Remember the route at send time, to tell path changes when it is answered.
    if (sent_routes_.size() >= 64 * plan_.targets.size())
      sent_routes_.erase(sent_routes_.begin());
    sent_routes_.push_back({m.id, route_hash(ep, target)});
    if (auto h = plan_hop(target, body.size_bytes() + protocol::envelope::header_bytes))
      send_via(h->node, target, h->latency, protocol::kind::ping, std::move(body));
  }
  schedule(plan_.interval, 0);
}

void space_node::on_envelope(protocol::envelope& e) {
  if (e.dst != id()) {
    if (auto h = plan_hop(e.dst, e.wire_size()))
      forward(h->node, h->latency, std::move(e));
    return;
  }
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
  const auto sent = std::find_if(sent_routes_.begin(), sent_routes_.end(),
                                 [&](const auto& r) { return r.first == m->id; });
  const auto it = std::find(plan_.targets.begin(), plan_.targets.end(), m->target);
  if (sent != sent_routes_.end() && it != plan_.targets.end()) {
    auto& last = last_route_[static_cast<std::size_t>(it - plan_.targets.begin())];
    s.path_changed = last != 0 && last != sent->second;
    last = sent->second;
    sent_routes_.erase(sent);
  }
  samples_.push_back(s);
}

std::uint64_t space_node::route_hash(const space_epoch& ep, runtime::entity_id dst) const {
  const auto& tree = ep.routes->to(dst);
  std::uint64_t h = runtime::hash_combine(0, dst);
  for (auto v = id(); v != dst && v != runtime::route_tree::none; v = tree.next[v])
    h = runtime::hash_combine(h, v);
  return h;
}

std::optional<space_node::next_hop> space_node::plan_hop(runtime::entity_id dst,
                                                         std::size_t wire_bytes) {
  const auto& ep = epoch();
  const auto& snap = *ep.snapshot;
  const auto next = ep.routes->to(dst).next[id()];
  if (next == runtime::route_tree::none) {
    count(space_ids().drops_no_route);
    return std::nullopt;
  }
  const double length = snap.link_length_m(id(), next).value();
  const bool ground_link = id() >= snap.satellites || next >= snap.satellites;
  const auto& cfg = net_->config();
  const double rate = ground_link ? cfg.gsl_rate_bps : cfg.isl_rate_bps;
  const std::int64_t ser = ceil_ns(static_cast<double>(wire_bytes) * 8.0 / rate);
  const std::int64_t prop = ceil_ns(length / runtime::speed_of_light_m_per_s);
  auto q = std::find_if(queues_.begin(), queues_.end(), [&](const link_queue& l) { return l.to == next; });
  if (q == queues_.end()) {
    queues_.push_back({next, 0});
    q = queues_.end() - 1;
  }
  const std::int64_t t = now().ns();
  const std::int64_t start = std::max(t, q->busy_until_ns);
  // The backlog ahead of this message, in bytes still to be sent.
  const double backlog_bytes = static_cast<double>(start - t) * 1e-9 * rate / 8.0;
  if (backlog_bytes + static_cast<double>(wire_bytes) > static_cast<double>(cfg.queue_bytes)) {
    count(space_ids().drops_queue);
    return std::nullopt;
  }
  q->busy_until_ns = start + ser;
  if (cfg.loss > 0 && random().uniform() < cfg.loss) {
    count(space_ids().drops_loss);
    return std::nullopt;
  }
  count(space_ids().hops);
  return next_hop{next, duration::from_ns(start - t + ser + prop) + cfg.hop_delay};
}

} // namespace satemu::actors
