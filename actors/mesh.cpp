#include "actors/mesh.hpp"

#include <cmath>
#include <limits>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "protocol/bytes.hpp"
#include "protocol/mesh.hpp"
#include "runtime/schema.hpp"

namespace satemu::actors {

using runtime::duration;

const mesh_entity::counter_ids mesh_entity::ids_ = {
  runtime::register_counter("mesh.messages_sent"),
  runtime::register_counter("mesh.messages_delivered"),
  runtime::register_counter("mesh.messages_forwarded"),
  runtime::register_counter("mesh.malformed"),
};

mesh_entity::mesh_entity(std::shared_ptr<const mesh_graph> graph, const mesh_config* cfg)
  : graph_(std::move(graph)), cfg_(cfg) {
  declare_counters({ids_.sent, ids_.delivered, ids_.forwarded, ids_.malformed});
}

void mesh_entity::save_results(protocol::byte_writer& w) const {
  latency_.save(w);
  hops_.save(w);
}

void mesh_entity::load_results(protocol::byte_reader& r) {
  latency_.load(r);
  hops_.load(r);
}

void mesh_entity::on_start() {
  if (cfg_->rate_per_s > 0)
    schedule_next();
}

void mesh_entity::schedule_next() {
  const double gap_ns = random().exponential(1e9 / cfg_->rate_per_s);
  schedule(duration::from_ns_saturated(gap_ns), 0);
}

void mesh_entity::on_timer(std::uint64_t) {
  const auto n = graph_->nodes();
  auto target = static_cast<std::uint32_t>(random().below(n - 1));
  if (target >= id())
    ++target; // uniform over every entity but this one
  protocol::mesh_message m;
  m.origin = id();
  m.target = target;
  m.created_ns = now().ns();
  m.id = sent();
  count(ids_.sent);
  m.body_bytes = cfg_->payload_bytes;
  const auto h = next_hop_to(target);
  send_via(h.node, target, h.latency, protocol::kind::mesh, protocol::encode_mesh(m));
  schedule_next();
}

void mesh_entity::on_envelope(protocol::envelope& e) {
  // Routers read the header only; the destination decodes the message.
  if (e.dst != id()) {
    count(ids_.forwarded);
    const auto h = next_hop_to(e.dst);
    forward(h.node, h.latency, std::move(e));
    return;
  }
  auto msg = protocol::decode_mesh(e.body);
  if (!msg.ok() || msg->target != id()) {
    count(ids_.malformed);
    return;
  }
  count(ids_.delivered);
  latency_.record(now().ns() - msg->created_ns);
  hops_.record(e.hops + 1);
}

mesh_entity::hop mesh_entity::next_hop_to(std::uint32_t target) const {
  const auto i = graph_->next_hop(id(), target);
  return {graph_->neighbour(id(), i), graph_->latency(id(), i)};
}

absl::StatusOr<std::unique_ptr<mesh_workload>> mesh_workload::make(const mesh_config& cfg) {
  auto graph = mesh_graph::build(cfg.graph);
  if (!graph.ok())
    return graph.status();
  auto w = std::unique_ptr<mesh_workload>(new mesh_workload());
  w->cfg_ = cfg;
  w->graph_ = std::make_shared<const mesh_graph>(std::move(*graph));
  w->entities_.reserve(cfg.graph.nodes);
  for (std::uint32_t i = 0; i < cfg.graph.nodes; ++i)
    w->entities_.push_back(std::make_unique<mesh_entity>(w->graph_, &w->cfg_));
  return w;
}

void mesh_workload::register_kind() {
  using runtime::key_spec;
  runtime::register_workload_kind(
    "mesh",
    "Entities on a synthetic graph send messages to random destinations (Poisson), "
    "forwarded hop by hop along fewest-hop paths.",
    {
      key_spec::integer("entities", "", "Number of entities (graph nodes).")
        .mandatory()
        .at_least(2)
        .at_most(std::numeric_limits<std::uint32_t>::max() / 2),
      key_spec::choice("topology", {"ring", "torus", "random_regular"}, "torus",
                       "Graph: ring; 2D torus (width x entities/width); random regular "
                       "(union of degree/2 random cycles, at most 10000 entities)."),
      key_spec::integer("width", "0",
                        "Torus columns; must divide entities. 0 = the divisor closest to "
                        "sqrt(entities).")
        .at_least(0)
        .at_most(std::numeric_limits<std::uint32_t>::max() / 2),
      key_spec::integer("degree", "4", "Random regular: edges per entity (even).")
        .at_least(2)
        .at_most(256),
      key_spec::dur("latency_min", "1ms",
                    "Smallest edge latency; each directed edge draws its latency uniformly "
                    "from [latency_min, latency_max].")
        .above(0),
      key_spec::dur("latency_max", "10ms", "Largest edge latency (>= latency_min).").above(0),
      key_spec::real("rate", "10", "Messages each entity creates per emulated second (Poisson).")
        .at_least(0)
        .at_most(1e6)
        .with_unit_hint("real number (per second)"),
      key_spec::size("payload", "256B", "Body size of each message.").at_most(64.0 * 1024 * 1024),
    });
}

absl::StatusOr<mesh_config> mesh_workload::config_from(const runtime::scenario& s) {
  mesh_config c;
  c.graph.nodes = static_cast<std::uint32_t>(s.get_int("workload.entities"));
  const auto topo = s.get_string("workload.topology");
  c.graph.topology = topo == "ring"    ? mesh_topology::ring
                     : topo == "torus" ? mesh_topology::torus
                                       : mesh_topology::random_regular;
  c.graph.width = static_cast<std::uint32_t>(s.get_int("workload.width"));
  c.graph.degree = static_cast<std::uint32_t>(s.get_int("workload.degree"));
  c.graph.latency_min = s.get_duration("workload.latency_min");
  c.graph.latency_max = s.get_duration("workload.latency_max");
  c.graph.seed = static_cast<std::uint64_t>(s.get_int("seed"));
  c.rate_per_s = s.get_real("workload.rate");
  c.payload_bytes = s.get_data_size("workload.payload").bytes;
  // Keys of the other graphs are refused rather than ignored.
  if (topo != "torus" && s.departs_from_default("workload.width"))
    return absl::InvalidArgumentError(
      absl::StrCat("workload.width: only used with topology torus (the topology is ", topo, ")"));
  if (topo != "random_regular" && s.departs_from_default("workload.degree"))
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.degree: only used with topology random_regular (the topology is ", topo, ")"));
  return c;
}

namespace {

/// Every entity's messages, summed.
struct mesh_totals {
  std::uint64_t sent = 0, delivered = 0, forwarded = 0, malformed = 0;
  runtime::histogram latency, hops;
  std::uint64_t in_flight() const { return sent - delivered - malformed; }
};

mesh_totals totals_of(const std::vector<std::unique_ptr<runtime::entity>>& entities) {
  mesh_totals t;
  for (const auto& e : entities) {
    const auto& m = static_cast<const mesh_entity&>(*e);
    t.sent += m.sent();
    t.delivered += m.delivered();
    t.forwarded += m.forwarded();
    t.malformed += m.malformed();
    t.latency.merge(m.latency());
    t.hops.merge(m.hops());
  }
  return t;
}

} // namespace

std::vector<std::string> mesh_workload::result_warnings(const runtime::run_result&) const {
  const auto t = totals_of(entities_);
  return in_flight_warning(t.in_flight(), t.sent, "messages",
                           "latency_ms and hops cover the delivered ones only, which had the "
                           "shorter paths, so they read low");
}

nlohmann::json mesh_workload::metrics(const runtime::run_result& r) const {
  const auto t = totals_of(entities_);
  const auto& [sent, delivered, forwarded, malformed, latency, hops] = t;
  nlohmann::json j;
  j["entities"] = graph_->nodes();
  j["topology"] = to_string(graph_->topology());
  j["lookahead_ns"] = graph_->min_latency().ns();
  j["messages_sent"] = sent;
  j["messages_delivered"] = delivered;
  j["messages_in_flight"] = t.in_flight();
  j["hop_deliveries"] = forwarded + delivered;
  j["malformed"] = malformed;
  j["delivered_per_wall_second"] =
    r.wall_seconds > 0 ? static_cast<double>(delivered) / r.wall_seconds : 0.0;
  j["latency_ms"] = milliseconds_summary(latency);
  j["hops"] = hops.count() == 0 ? nlohmann::json(nullptr)
                                : nlohmann::json{{"mean", hops.mean()}, {"max", hops.max()}};
  return j;
}

} // namespace satemu::actors
