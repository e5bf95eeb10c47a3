#include "actors/ping.hpp"

#include <algorithm>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "protocol/envelope.hpp"
#include "protocol/ping.hpp"
#include "runtime/histogram.hpp"
#include "runtime/schema.hpp"

namespace satemu::actors {

using runtime::key_spec;

void ping_workload::register_kind() {
  register_space_sections();
  runtime::register_workload_kind(
    "ping",
    "Ground stations ping each other over the constellation; every request and reply is "
    "forwarded hop by hop. Needs the constellation and ground sections.",
    {
      key_spec::choice("pattern", {"ring", "all", "pairs"}, "ring",
                       "Who pings whom: ring = each station the next one in the list; all = "
                       "every ordered pair; pairs = the `pairs` list"),
      key_spec::list_of_maps("pairs", "Ping pairs (pattern: pairs)",
                             {key_spec::text("from", "", "Station that pings").mandatory(),
                              key_spec::text("to", "", "Station pinged").mandatory()}),
      key_spec::dur("interval", "1s", "Time between two pings of a pair").above(0),
      key_spec::dur("start", "0s", "When the first pings leave").at_least(0),
      key_spec::size("size", "64B",
                     "Filler bytes per ping (on the wire: rounded up to 8-byte words, plus 104 "
                     "bytes of header and fields)").at_most(65536),
    });
}

absl::StatusOr<std::unique_ptr<ping_workload>> ping_workload::make(const runtime::scenario& s) {
  auto cfg = space_config_from(s);
  if (!cfg.ok())
    return cfg.status();
  const auto g = cfg->grounds.size();
  if (g < 2)
    return absl::InvalidArgumentError(
      "ground.stations: ping needs at least two ground endpoints (stations or users)");
  std::vector<std::vector<std::size_t>> targets(g);
  const auto pattern = s.get_string("workload.pattern");
  // Refused rather than ignored.
  if (pattern != "pairs" && s.departs_from_default("workload.pairs"))
    return absl::InvalidArgumentError(absl::StrCat(
      "workload.pairs: only used with pattern 'pairs' (the pattern is '", pattern, "')"));
  if (pattern == "ring") {
    for (std::size_t i = 0; i < g; ++i)
      targets[i].push_back((i + 1) % g);
  } else if (pattern == "all") {
    for (std::size_t i = 0; i < g; ++i)
      for (std::size_t j = 0; j < g; ++j)
        if (i != j)
          targets[i].push_back(j);
  } else {
    const auto n = s.list_size("workload.pairs");
    if (n == 0)
      return absl::InvalidArgumentError(
        "workload.pattern: 'pairs' needs at least one pair in workload.pairs");
    for (std::size_t k = 0; k < n; ++k) {
      const auto p = absl::StrCat("workload.pairs.", k, ".");
      const auto from = s.get_string(p + "from"), to = s.get_string(p + "to");
      const auto i = find_ground(*cfg, from), j = find_ground(*cfg, to);
      for (const auto& [key, name, found] : {std::tuple{p + "from", from, i.has_value()},
                                             std::tuple{p + "to", to, j.has_value()}})
        if (!found)
          return absl::InvalidArgumentError(
            absl::StrCat(key, ": no ground station or user named '", name, "'"));
      if (from == to)
        return absl::InvalidArgumentError(absl::StrCat(p + "to", ": a station cannot ping itself"));
      if (std::find(targets[*i].begin(), targets[*i].end(), *j) != targets[*i].end())
        return absl::InvalidArgumentError(
          absl::StrCat(absl::StripSuffix(p, "."), ": the pair ", from, " -> ", to,
                       " is listed twice"));
      targets[*i].push_back(*j);
    }
  }

  // As for a flow: a start at or after the end would send nothing.
  if (const auto start = s.get_duration("workload.start"); start >= s.get_duration("duration"))
    return absl::InvalidArgumentError(
      absl::StrCat("workload.start: must be before the end of the run (duration ",
                   runtime::to_string(s.get_duration("duration")), ")"));
  std::vector<ping_plan> plans(g);
  for (std::size_t i = 0; i < g; ++i) {
    plans[i].interval = s.get_duration("workload.interval");
    plans[i].start = s.get_duration("workload.start");
    plans[i].size_bytes = static_cast<std::uint32_t>(s.get_data_size("workload.size").bytes);
    for (auto t : targets[i])
      plans[i].targets.push_back(static_cast<runtime::entity_id>(t));
  }
  auto w = std::unique_ptr<ping_workload>(new ping_workload());
  protocol::ping_message probe;
  probe.body_bytes = static_cast<std::uint32_t>(s.get_data_size("workload.size").bytes);
  w->smallest_message_bytes_ =
    protocol::encode_ping(probe)->size_bytes() + protocol::envelope::header_bytes;
  w->message_name_ = "ping";
  if (auto st = w->build(std::move(*cfg), std::move(plans), {}); !st.ok())
    return st;
  return w;
}

std::uint64_t ping_workload::pair_count() const {
  std::uint64_t n = 0;
  for (std::size_t g = 0; g < net_->grounds(); ++g)
    n += ground(g).ping_targets().size();
  return n;
}

nlohmann::json ping_workload::metrics(const runtime::run_result& r) const {
  const auto sats = net_->satellites();
  std::uint64_t sent = 0, answered = 0, path_changes = 0;
  runtime::histogram all;
  // Millions of pairs (pattern all over thousands of endpoints) would make
  // summary.json hundreds of MB: rtt.csv has every ping instead.
  const bool listed = pair_count() <= max_listed_pairs;
  nlohmann::json pairs = listed ? nlohmann::json::array() : nlohmann::json(nullptr);
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& node = ground(g);
    sent += node.pings_sent();
    // Every interval sends one ping to each target, so each pair was sent
    // an equal share; a pair that never had an answer is listed too.
    const auto& targets = node.ping_targets();
    const std::uint64_t per_pair = targets.empty() ? 0 : node.pings_sent() / targets.size();
    std::map<runtime::entity_id, runtime::histogram> per_target;
    if (listed)
      for (auto t : targets)
        per_target[t];
    for (const auto& s : node.samples()) {
      if (listed)
        per_target[s.target].record(s.rtt_ns);
      all.record(s.rtt_ns);
      ++answered;
      path_changes += s.path_changed ? 1 : 0;
    }
    if (!listed)
      continue;
    for (const auto& [target, h] : per_target) {
      pairs.push_back({{"from", net_->node_name(static_cast<runtime::entity_id>(sats + g))},
                       {"to", net_->node_name(target)},
                       {"sent", per_pair},
                       {"answered", h.count()},
                       {"rtt_ms", milliseconds_summary(h)}});
    }
  }
  nlohmann::json j = network_metrics(r);
  j["pings_sent"] = sent;
  j["pings_answered"] = answered;
  j["pings_unanswered"] = sent - answered;
  j["pings_in_flight"] = messages_in_flight(sent, answered, r);
  j["path_changes"] = path_changes;
  j["rtt_ms"] = milliseconds_summary(all);
  j["pairs"] = std::move(pairs);
  return j;
}

std::vector<std::string> ping_workload::result_warnings(const runtime::run_result& r) const {
  std::uint64_t sent = 0, answered = 0;
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    sent += ground(g).pings_sent();
    answered += ground(g).samples().size();
  }
  auto lines = in_flight_warning(messages_in_flight(sent, answered, r), sent, "pings",
                                 "pings_unanswered counts them");
  if (const auto n = pair_count(); n > max_listed_pairs)
    lines.push_back(absl::StrFormat(
      "metrics.pairs is null: %d pairs are more than the %d summary.json lists (rtt.csv has "
      "every ping)",
      n, max_listed_pairs));
  return lines;
}

std::map<std::string, std::string> ping_workload::files(const runtime::run_result& r) const {
  std::string rtt = "from,to,seq,sent_s,rtt_ms,forward_ms,hops_forward,hops_back,path_changed\n";
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto from = net_->node_name(static_cast<runtime::entity_id>(net_->satellites() + g));
    auto samples = ground(g).samples();
    std::sort(samples.begin(), samples.end(), [](const ping_sample& a, const ping_sample& b) {
      return std::tie(a.target, a.seq) < std::tie(b.target, b.seq);
    });
    for (const auto& s : samples)
      absl::StrAppendFormat(&rtt, "%s,%s,%u,%.9f,%.6f,%.6f,%u,%u,%d\n", from, net_->node_name(s.target),
                            s.seq, static_cast<double>(s.sent_ns) * 1e-9,
                            static_cast<double>(s.rtt_ns) * 1e-6,
                            static_cast<double>(s.forward_ns) * 1e-6, s.hops_forward, s.hops_back,
                            s.path_changed ? 1 : 0);
  }
  auto out = network_files(r);
  out["rtt.csv"] = std::move(rtt);
  return out;
}

} // namespace satemu::actors
