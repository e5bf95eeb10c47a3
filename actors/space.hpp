/// satemu space segment at run time: the moving network and the nodes that
/// forward over it.
///
/// `space_network` turns a scenario's `constellation` and `ground` sections
/// into topology epochs (runtime/topology.hpp): epoch k holds the snapshot at
/// k x update_interval and its routes, built on first use and in order (each
/// from the one before, for handovers), and shared read-only by every node.
///
/// `space_node` is one satellite or ground endpoint. Every message is
/// forwarded hop by hop (store and forward): at each hop the next node comes
/// from the epoch of the moment the message is there, and the hop costs
///   propagation  = link length at send time / c,
///   serialisation = wire bits / link rate,
///   queueing     = waiting behind earlier messages on the same directed link
///                  (FIFO; a message that would push the backlog past the
///                  queue capacity is dropped),
///   processing   = `constellation.hop_delay`,
/// and is lost with probability `loss`. A message whose destination cannot
/// be reached from a hop is dropped there, with the reason counted.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "actors/workload.hpp"
#include "runtime/entity.hpp"
#include "runtime/scenario.hpp"
#include "runtime/tle_constellation.hpp"
#include "runtime/topology.hpp"
#include "runtime/walker.hpp"

namespace satemu::actors {

/// A scheduled outage: a satellite, or the ISL between two satellites, is
/// down for [from, to) of emulated time. Topology epochs overlapping that
/// span leave it out; a message reaching a satellite that is down is dropped.
struct outage {
  std::uint32_t a = 0;
  /// The other end of an ISL outage; nullopt for a satellite outage.
  std::optional<std::uint32_t> b;
  runtime::duration from;
  runtime::duration to;
  /// Scenario key of this outage, for error messages.
  std::string key;
};

/// What to record of the topology, and how often (0 = nothing).
struct topology_recording {
  runtime::duration interval = runtime::duration::zero();
  bool czml = false;
  /// Ground endpoints whose route the CZML file shows (empty = none).
  std::string path_from, path_to;
};

struct space_config {
  /// Walker shells, or (when `tle_file` is set) nothing.
  std::vector<runtime::walker_shell> shells;
  /// TLE constellation: the file, emulated time 0 as UTC ns (nullopt = the
  /// latest epoch in the file) and how planes are recovered.
  std::string tle_file;
  std::optional<std::int64_t> tle_start_unix_ns;
  runtime::tle_grouping tle_grouping;
  /// Ground endpoints link to one satellite of every shell in view.
  bool gsl_per_shell = false;
  runtime::isl_rules isl;
  runtime::gsl_rules gsl;
  double isl_rate_bps = 10e9;
  double gsl_rate_bps = 1e9;
  /// Capacity of each directed link's queue [bytes].
  std::uint64_t queue_bytes = 1 << 20;
  /// Probability that a hop loses a message.
  double loss = 0;
  runtime::duration update_interval = runtime::milliseconds(100);
  runtime::duration hop_delay = runtime::microseconds(10);
  runtime::route_metric metric = runtime::route_metric::delay;
  /// Ground stations then users; `tracks[g]` is empty for a fixed endpoint
  /// and holds the waypoints of a moving one (grounds[g] is its start).
  std::vector<runtime::ground_point> grounds;
  std::vector<std::vector<runtime::waypoint>> tracks;
  /// grounds[0, stations) are the stations, the rest users.
  std::size_t stations = 0;
  std::vector<outage> outages;
  topology_recording record;
  /// clock.mode realtime: entities handle their events as the wall clock
  /// brings them, so one that runs late may ask for an epoch already
  /// dropped (more than kept_epochs() update intervals behind the newest). It
  /// then gets the oldest kept one, and the lookup is counted
  /// (space_network::stale_lookups). In virtual time that cannot happen,
  /// and it stops the run as an internal error.
  bool real_time = false;
};

/// Index of the ground endpoint named `name` (stations, then users).
std::optional<std::size_t> find_ground(const space_config& c, std::string_view name);

/// Registers the `constellation` and `ground` scenario sections (idempotent).
void register_space_sections();

/// Reads the sections; InvalidArgument naming the key for bad combinations.
absl::StatusOr<space_config> space_config_from(const runtime::scenario& s);

/// One topology epoch: the snapshot and its per-destination routes.
struct space_epoch {
  std::int64_t index = 0;
  std::shared_ptr<const runtime::topology_snapshot> snapshot;
  std::unique_ptr<runtime::route_cache> routes;
};

/// A serving-satellite change, when it happened.
struct handover_record {
  std::int64_t time_ns = 0;
  runtime::handover change;
};

class space_network {
public:
  static absl::StatusOr<std::shared_ptr<space_network>> make(space_config cfg);

  /// Epochs the network keeps (the most recent ones): 8, and as many more as
  /// a lookahead window spans update intervals, since the entities of one
  /// window (a second long with a hop_delay of 1 s) ask for any of its times.
  std::size_t kept_epochs() const { return kept_epochs_; }

  /// The epoch holding time `t` (thread-safe). Epochs are built in order and
  /// the last kept_epochs() are kept; nodes only ask for times in the current
  /// window, and hold an epoch only while they handle an event. (In real
  /// time, see space_config::real_time.)
  std::shared_ptr<const space_epoch> at(runtime::vtime t);
  /// Real time: lookups of a dropped epoch that got the oldest kept one.
  std::uint64_t stale_lookups() const;
  /// Epochs still alive: the kept ones and any that a caller still holds.
  /// (An epoch holds its snapshot and routes, megabytes for large
  /// constellations.)
  std::size_t epochs_alive() const;

  /// Smallest latency any hop can have: hop delay plus the shortest distance
  /// any link can span (closed forms of the shells) over c.
  runtime::duration lookahead() const { return lookahead_; }
  std::size_t satellites() const { return satellites_; }
  /// Satellites and ground nodes: the entities of a run on this network.
  std::size_t nodes() const { return satellites_ + cfg_.grounds.size(); }
  /// When the link from node `from` to node `to` is first down in [begin,
  /// end] by the outage schedule, with either satellite or their ISL (at
  /// `begin` when already down); nullopt when up throughout.
  std::optional<std::int64_t> goes_down(std::size_t from, std::size_t to, std::int64_t begin_ns,
                                        std::int64_t end_ns) const;
  /// Whether satellite `k` is down by the outage schedule at `t`.
  bool satellite_down(std::size_t k, runtime::vtime t) const;
  bool has_outages() const { return !cfg_.outages.empty(); }
  /// Emulated time 0 as UTC ns for TLE constellations; nullopt for Walker.
  std::optional<std::int64_t> start_unix_ns() const;
  /// TLE sets left out because SGP4 rejects them at their epoch or at the
  /// start (messages).
  std::vector<std::string> tle_rejected() const;
  /// What a user should know about the TLE sets before the run: sets left
  /// out, and a start far from the sets' epochs (SGP4's error grows by
  /// kilometres a day). Empty for Walker shells.
  std::vector<std::string> tle_warnings() const;
  /// Settings that make the emulation implausible: a topology held for
  /// more than 10 s, Walker neighbours that come within 10 km of each other
  /// (the windows shrink to hop_delay), a user faster than a satellite, a
  /// lookahead of more than 1,000 epochs (kept in memory at once).
  std::vector<std::string> geometry_warnings() const;
  /// Files recorded so far (positions.csv, links.csv, constellation.czml),
  /// name -> content; empty unless `record.interval` is set.
  std::map<std::string, std::string> recorded_files() const;
  /// "sat<k>" for a satellite, the endpoint's name for a ground node.
  std::string node_name(std::size_t node) const;
  ~space_network();
  std::size_t grounds() const { return cfg_.grounds.size(); }
  /// The satellite group (shell, with gsl.per_shell; else 0) of satellite `sat`.
  std::uint32_t group_of(std::uint32_t sat) const {
    return group_of_.empty() ? 0 : group_of_[sat];
  }
  const space_config& config() const { return cfg_; }
  /// Handovers of every epoch built so far, in time order.
  std::vector<handover_record> handovers() const;
  std::int64_t epochs_built() const;
  /// Builds epochs until `count` have been built (a distributed run's
  /// coordinator catching up with its workers).
  void build_through(std::int64_t count);
  /// Per satellite, its orbital plane numbered across shells.
  std::vector<std::uint32_t> plane_of() const;

private:
  space_network(space_config cfg, std::optional<runtime::walker_constellation> walker,
                std::optional<runtime::tle_constellation> tle);
  void build_next_locked();
  std::vector<runtime::vec3> positions(double t_s) const;
  runtime::snapshot_inputs inputs_at(std::int64_t k) const;
  std::vector<runtime::ground_point> grounds_at(double t_s) const;
  void record_locked(const space_epoch& ep);

  space_config cfg_;
  std::optional<runtime::walker_constellation> walker_;
  std::optional<runtime::tle_constellation> tle_;
  std::size_t satellites_ = 0;
  std::vector<runtime::isl_candidate> candidates_;
  std::vector<std::uint16_t> group_of_;
  std::size_t groups_ = 1;
  struct recorder;
  std::unique_ptr<recorder> recorder_;
  runtime::duration lookahead_;
  /// Per Walker shell: the closest any two +Grid neighbours come [m].
  std::vector<double> closest_neighbours_m_;
  mutable std::mutex mu_;
  std::size_t kept_epochs_ = 8;
  std::deque<std::shared_ptr<const space_epoch>> recent_;
  std::uint64_t stale_lookups_ = 0;
  /// Every epoch built that was still alive at the last build.
  std::vector<std::weak_ptr<const space_epoch>> built_;
  std::vector<handover_record> handovers_;
};

/// What a ground endpoint pings.
struct ping_plan {
  /// Entity ids of the targets; one ping to each per interval.
  std::vector<runtime::entity_id> targets;
  runtime::duration interval = runtime::seconds(1);
  runtime::duration start = runtime::duration::zero();
  std::uint32_t size_bytes = 64;
};

/// One ping answered.
struct ping_sample {
  runtime::entity_id target = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;
  std::int64_t rtt_ns = 0;
  std::int64_t forward_ns = 0;
  std::uint16_t hops_forward = 0;
  std::uint16_t hops_back = 0;
  /// The route at send time differs from the previous sample's to the same target.
  bool path_changed = false;
};

/// A constant-rate flow a ground endpoint sends: one packet of `size_bytes`
/// every `interval`, from `start` until before `stop`.
struct flow_plan {
  std::uint32_t flow = 0;
  runtime::entity_id target = 0;
  /// Between packets, exactly (size x 8 / rate) [ns, >= 1]: packet k leaves
  /// at start + k x interval_ns rounded to the nearest nanosecond, so the
  /// rate holds however the interval falls between whole nanoseconds.
  double interval_ns = 1e6;
  runtime::duration start = runtime::duration::zero();
  runtime::duration stop = runtime::duration::max();
  std::uint32_t size_bytes = 1'000;
};

/// One flow packet delivered, as its destination saw it.
struct flow_sample {
  std::uint32_t flow = 0;
  std::uint64_t seq = 0;
  std::int64_t sent_ns = 0;
  std::int64_t delay_ns = 0;
  std::uint16_t hops = 0;
  std::uint32_t wire_bytes = 0;
  /// The route at send time differs from that of the flow's previous
  /// packet sent (delivered or not).
  bool path_changed = false;
};

/// A satellite (ids below `net.satellites()`) or a ground endpoint.
///
/// Workloads with their own protocol derive from it: envelopes addressed to
/// the node whose kind is neither ping nor flow go to `on_app_envelope`,
/// timers scheduled with `schedule_app` to `on_app_timer`, and `send_over`
/// sends a new message hop by hop like the node's own.
class space_node : public runtime::entity {
public:
  space_node(std::shared_ptr<space_network> net, ping_plan plan = {},
             std::vector<flow_plan> flows = {});

  const std::vector<ping_sample>& samples() const { return samples_; }
  std::uint64_t pings_sent() const { return next_ping_; }
  /// The targets this node pings, each once per interval.
  const std::vector<runtime::entity_id>& ping_targets() const { return plan_.targets; }
  /// Flows this endpoint sends, and packets sent per flow (same order).
  const std::vector<flow_plan>& flows() const { return flows_; }
  const std::vector<std::uint64_t>& flow_packets_sent() const { return flow_sent_; }
  /// Flow packets delivered here, in arrival order.
  const std::vector<flow_sample>& flow_samples() const { return flow_samples_; }

  void save_results(protocol::byte_writer& w) const override;
  void load_results(protocol::byte_reader& r) override;

protected:
  void on_start() override;
  void on_envelope(protocol::envelope& e) override;
  void on_timer(std::uint64_t tag) override;

  /// An envelope of another protocol kind addressed to this node.
  virtual void on_app_envelope(protocol::envelope& e) {}
  /// A timer scheduled with `schedule_app`.
  virtual void on_app_timer(std::uint64_t tag) {}
  /// Fires `on_app_timer(tag)` at `now() + delay`; tag < 2^63.
  void schedule_app(runtime::duration delay, std::uint64_t tag);
  /// Sends a new message of kind `k` towards `dst` over the network, ready
  /// to leave `extra` from now (e.g. after processing): its first link
  /// starts sending it then, or when the messages queued ahead are out,
  /// so processing and sending overlap. False when the first hop drops it
  /// (counted as for the node's own messages). dst != id().
  bool send_over(runtime::entity_id dst, protocol::kind k, protocol::payload_ptr body,
                 runtime::duration extra = runtime::duration::zero());
  /// A ground node's serving satellite now (its first group's), or -1 when
  /// none is in view.
  std::int32_t serving_satellite();
  const space_network& network() const { return *net_; }

private:
  /// The FIFO of one transmitter: of the directed link to a node, or of a
  /// ground endpoint's radio (its index among the groups it links into). It
  /// is busy sending until busy_until_ns + busy_frac_ns (0 <= busy_frac_ns
  /// < 1), kept exact so that rounding to whole nanoseconds does not pile up
  /// along the queue.
  struct link_queue {
    runtime::entity_id transmitter;
    std::int64_t busy_until_ns = 0;
    double busy_frac_ns = 0;
  };
  struct next_hop {
    runtime::entity_id node;
    runtime::duration latency;
  };
  /// The next hop towards `dst` for `wire_bytes` ready to leave `ready`
  /// from now, with its latency from now, the link's queue updated (one
  /// FIFO: a message sent later but ready sooner waits behind it); nullopt
  /// (and the reason counted) when the message is dropped here.
  std::optional<next_hop> plan_hop(runtime::entity_id dst, std::size_t wire_bytes,
                                   runtime::duration ready = runtime::duration::zero());
  /// The epoch of `now()`, held only while an event is handled (a node that
  /// goes quiet must not pin an old epoch's snapshot and routes): asks the
  /// network only when time has left the last one, so a hop costs no lock.
  const space_epoch& epoch();
  void after_event() override { epoch_.reset(); }
  std::uint64_t route_hash(const space_epoch& ep, runtime::entity_id dst) const;

  std::shared_ptr<space_network> net_;
  std::shared_ptr<const space_epoch> epoch_;     ///< during an event
  std::weak_ptr<const space_epoch> last_epoch_;  ///< between events
  ping_plan plan_;
  std::vector<link_queue> queues_;
  std::vector<ping_sample> samples_;
  /// Per ping target: the route (hash) of the last ping sent, 0 = none.
  std::vector<std::uint64_t> last_route_;
  std::uint64_t next_ping_ = 0;
  std::vector<flow_plan> flows_;
  std::vector<std::uint64_t> flow_sent_;
  std::vector<flow_sample> flow_samples_;
  /// Per flow sent from here: the route (hash) of its last packet, 0 = none.
  std::vector<std::uint64_t> flow_last_route_;

  void send_flow_packet(std::size_t i);
  void receive_flow(protocol::envelope& e);
  void receive_ping(protocol::envelope& e);
};

/// What the workloads over the space segment (ping, flows) share: the
/// network, one node per satellite and per ground endpoint, and the
/// network's figures and files (handovers.csv, the topology records).
class space_workload : public workload {
public:
  runtime::duration lookahead() const override { return net_->lookahead(); }
  std::vector<std::unique_ptr<runtime::entity>>& entities() override { return entities_; }

  const space_network& network() const { return *net_; }
  const space_node& ground(std::size_t g) const {
    return static_cast<const space_node&>(*entities_[net_->satellites() + g]);
  }

  /// Satellites by orbital plane; a ground endpoint with the satellite that
  /// serves it at time 0 (alone when none does).
  std::vector<std::uint32_t> placement_groups() override;
  /// The network's TLE warnings, and link queues too small for one of the
  /// workload's messages.
  std::vector<std::string> warnings() const override;
  /// Topology epochs built (the metrics count them and the records hold them).
  std::string node_state() const override;
  absl::Status merge_node_state(std::string_view state) override;

protected:
  /// The smallest message the workload sends (its size on the wire) and
  /// what it is called ("ping"), checked against the link queues; 0: none.
  std::uint64_t smallest_message_bytes_ = 0;
  std::string message_name_;

  /// Makes the node of entity `index` (satellites first, then ground
  /// endpoints) once the network exists.
  using node_factory =
    std::function<std::unique_ptr<space_node>(const std::shared_ptr<space_network>&, std::size_t)>;
  /// Builds the network, then every node with `make`.
  absl::Status build_nodes(space_config cfg, const node_factory& make);
  /// Builds the network and the nodes; ground endpoint g gets `pings[g]` and
  /// `flows[g]` (either may be shorter than the endpoint count). Their
  /// targets are ground endpoint indices; the nodes get entity ids.
  absl::Status build(space_config cfg, std::vector<ping_plan> pings,
                     std::vector<std::vector<flow_plan>> flows);
  /// Satellites, endpoints, lookahead, epochs, handovers, start time.
  nlohmann::json network_metrics(const runtime::run_result& r) const;
  /// Of `sent` messages of which `arrived` reached their end, those neither
  /// arrived nor dropped (the run's drops_* and malformed counters): still
  /// in flight when the run ended (where they are the network's only
  /// traffic, as for ping and flows).
  static std::uint64_t messages_in_flight(std::uint64_t sent, std::uint64_t arrived,
                                          const runtime::run_result& r);
  /// handovers.csv and what the network recorded.
  std::map<std::string, std::string> network_files(const runtime::run_result& r) const;
  /// Builds the epochs of the run's time that no node asked for (after the
  /// last message), so that the handovers and records cover all of it.
  void complete_topology(const runtime::run_result& r) const;

  std::shared_ptr<space_network> net_;
  std::vector<std::unique_ptr<runtime::entity>> entities_;
};

} // namespace satemu::actors
