#include "actors/flows.hpp"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"
#include "protocol/flow.hpp"
#include "runtime/histogram.hpp"
#include "runtime/schema.hpp"

namespace satemu::actors {

using runtime::key_spec;

void flows_workload::register_kind() {
  register_space_sections();
  runtime::register_workload_kind(
    "flows",
    "Constant-rate packet flows between ground endpoints; every packet is forwarded hop by hop "
    "and its one-way delay recorded. Needs the constellation and ground sections.",
    {
      key_spec::list_of_maps(
        "flows", "The flows",
        {
          key_spec::text("from", "", "Sending ground endpoint").mandatory(),
          key_spec::text("to", "", "Receiving ground endpoint").mandatory(),
          key_spec::rate("rate", "", "Sending rate, wire bytes included").mandatory().above(0),
          key_spec::size("packet", "1500B",
                         "Packet size on the wire, filler in whole 8-byte words (so up to 7 B "
                         "less); at least a flow packet's header and fields")
            .at_least(protocol::flow_overhead_bytes())
            .at_most(65536),
          key_spec::dur("start", "0s", "When the first packet leaves").at_least(0),
          key_spec::dur("stop", "0s", "When the flow stops; 0 = at the end of the run").at_least(0),
        })
        .items_at_least(1),
    });
}

absl::StatusOr<std::unique_ptr<flows_workload>> flows_workload::make(const runtime::scenario& s) {
  auto cfg = space_config_from(s);
  if (!cfg.ok())
    return cfg.status();
  const auto g = cfg->grounds.size();
  auto w = std::unique_ptr<flows_workload>(new flows_workload());
  w->duration_ = s.get_duration("duration");
  w->message_name_ = "flow packet";
  std::vector<std::vector<flow_plan>> plans(g);
  const auto n = s.list_size("workload.flows");
  for (std::size_t k = 0; k < n; ++k) {
    const auto p = absl::StrCat("workload.flows.", k, ".");
    flow_info info;
    info.from = s.get_string(p + "from");
    info.to = s.get_string(p + "to");
    for (const auto& [key, name] : {std::pair{p + "from", info.from}, std::pair{p + "to", info.to}})
      if (!find_ground(*cfg, name))
        return absl::InvalidArgumentError(absl::StrCat(key, ": no ground endpoint named '", name, "'"));
    if (info.from == info.to)
      return absl::InvalidArgumentError(absl::StrCat(p, "to: a flow needs two different endpoints"));
    info.from_ground = *find_ground(*cfg, info.from);
    info.to_ground = *find_ground(*cfg, info.to);
    info.rate_bps = s.get_data_rate(p + "rate").bps;
    info.start = s.get_duration(p + "start");
    info.stop = s.get_duration(p + "stop");
    if (info.start >= w->duration_)
      return absl::InvalidArgumentError(absl::StrCat(
        p, "start: must be before the end of the run (duration ",
        runtime::to_string(w->duration_), ")"));
    if (info.stop == runtime::duration::zero())
      info.stop = w->duration_;
    else if (info.stop <= info.start)
      return absl::InvalidArgumentError(absl::StrCat(p, "stop: must be after ", p, "start"));
    flow_plan plan;
    plan.flow = static_cast<std::uint32_t>(k);
    // The size on the wire: the header and fields, then filler in whole
    // 8-byte words (Cap'n Proto pads to words), so up to 7 bytes under
    // `packet`; the sending interval follows it.
    const auto packet = static_cast<std::uint32_t>(s.get_data_size(p + "packet").bytes);
    const std::uint32_t overhead = protocol::flow_overhead_bytes(); // the schema's least
    plan.size_bytes = overhead + (packet - overhead) / 8 * 8;
    if (w->smallest_message_bytes_ == 0 || plan.size_bytes < w->smallest_message_bytes_)
      w->smallest_message_bytes_ = plan.size_bytes;
    const double interval_ns = static_cast<double>(plan.size_bytes) * 8.0 / info.rate_bps * 1e9;
    if (interval_ns < 1.0)
      return absl::InvalidArgumentError(
        absl::StrCat(p, "rate: more than one packet per nanosecond; use larger packets"));
    plan.interval_ns = info.interval_ns = interval_ns;
    plan.start = info.start;
    plan.stop = info.stop;
    plan.target = static_cast<runtime::entity_id>(info.to_ground);
    plans[info.from_ground].push_back(plan);
    w->flows_.push_back(std::move(info));
  }
  if (auto st = w->build(std::move(*cfg), {}, std::move(plans)); !st.ok())
    return st;
  return w;
}

nlohmann::json flows_workload::metrics(const runtime::run_result& r) const {
  const auto n = flows_.size();
  std::vector<std::uint64_t> sent(n, 0), delivered(n, 0), bytes(n, 0), changes(n, 0);
  std::vector<runtime::histogram> delay(n);
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& node = ground(g);
    for (std::size_t i = 0; i < node.flows().size(); ++i)
      sent[node.flows()[i].flow] += node.flow_packets_sent()[i];
    for (const auto& s : node.flow_samples()) {
      ++delivered[s.flow];
      bytes[s.flow] += s.wire_bytes;
      changes[s.flow] += s.path_changed ? 1 : 0;
      delay[s.flow].record(s.delay_ns);
    }
  }
  nlohmann::json j = network_metrics(r);
  nlohmann::json per = nlohmann::json::array();
  std::uint64_t total_sent = 0, total_delivered = 0;
  for (std::size_t f = 0; f < n; ++f) {
    const auto& info = flows_[f];
    // Over the time the packets sent take at the flow's rate: never above
    // the rate, however the run's end cuts the last interval.
    const double offered_s = static_cast<double>(sent[f]) * info.interval_ns * 1e-9;
    auto ratio = [&](double x) { return sent[f] > 0 ? nlohmann::json(x) : nlohmann::json(); };
    nlohmann::json x{
      {"from", info.from},
      {"to", info.to},
      {"rate_bps", info.rate_bps},
      {"packets_sent", sent[f]},
      {"packets_delivered", delivered[f]},
      {"packets_not_delivered", sent[f] - delivered[f]},
      {"delivery_ratio", ratio(static_cast<double>(delivered[f]) / static_cast<double>(sent[f]))},
      {"throughput_bps", ratio(static_cast<double>(bytes[f]) * 8.0 / offered_s)},
      {"path_changes", changes[f]},
      {"delay_ms", milliseconds_summary(delay[f])}};
    per.push_back(std::move(x));
    total_sent += sent[f];
    total_delivered += delivered[f];
  }
  j["packets_sent"] = total_sent;
  j["packets_delivered"] = total_delivered;
  j["packets_in_flight"] = messages_in_flight(total_sent, total_delivered, r);
  j["flows"] = std::move(per);
  return j;
}

std::vector<std::string> flows_workload::result_warnings(const runtime::run_result& r) const {
  std::uint64_t sent = 0, delivered = 0;
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    for (auto k : ground(g).flow_packets_sent())
      sent += k;
    delivered += ground(g).flow_samples().size();
  }
  return in_flight_warning(messages_in_flight(sent, delivered, r), sent, "flow packets",
                           "packets_not_delivered, delivery_ratio and throughput_bps count them "
                           "as not delivered");
}

std::map<std::string, std::string> flows_workload::files(const runtime::run_result& r) const {
  std::string csv = "flow,from,to,seq,sent_s,delay_ms,hops,path_changed\n";
  std::vector<flow_sample> all;
  for (std::size_t g = 0; g < net_->grounds(); ++g) {
    const auto& s = ground(g).flow_samples();
    all.insert(all.end(), s.begin(), s.end());
  }
  std::sort(all.begin(), all.end(), [](const flow_sample& a, const flow_sample& b) {
    return std::tie(a.flow, a.seq) < std::tie(b.flow, b.seq);
  });
  for (const auto& s : all)
    absl::StrAppendFormat(&csv, "%u,%s,%s,%u,%.9f,%.6f,%u,%d\n", s.flow, flows_[s.flow].from,
                          flows_[s.flow].to, s.seq, static_cast<double>(s.sent_ns) * 1e-9,
                          static_cast<double>(s.delay_ns) * 1e-6, s.hops, s.path_changed ? 1 : 0);
  auto out = network_files(r);
  out["delays.csv"] = std::move(csv);
  return out;
}

} // namespace satemu::actors
