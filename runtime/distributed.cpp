// The coordinator of a distributed run, the partition, entity states.
#include "runtime/distributed.hpp"

#include <algorithm>
#include <map>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "protocol/bytes.hpp"
#include "runtime/detail/entity_driver.hpp"

namespace satemu::runtime {

std::vector<std::uint32_t> partition_groups(std::span<const std::uint32_t> group_of,
                                            std::uint32_t nodes) {
  std::vector<std::uint32_t> out(group_of.size(), 0);
  if (nodes <= 1 || group_of.empty())
    return out;
  // Groups in the order of their lowest entity, with their sizes.
  std::map<std::uint32_t, std::size_t> index;
  std::vector<std::size_t> size;
  std::vector<std::size_t> slot(group_of.size());
  for (std::size_t i = 0; i < group_of.size(); ++i) {
    auto [it, fresh] = index.try_emplace(group_of[i], size.size());
    if (fresh)
      size.push_back(0);
    ++size[it->second];
    slot[i] = it->second;
  }
  // Group g goes to the node its midpoint falls in.
  const auto total = static_cast<double>(group_of.size());
  std::vector<std::uint32_t> node_of_group(size.size());
  double before = 0;
  for (std::size_t g = 0; g < size.size(); ++g) {
    const double mid = before + static_cast<double>(size[g]) / 2;
    node_of_group[g] =
      std::min(nodes - 1, static_cast<std::uint32_t>(mid * nodes / total));
    before += static_cast<double>(size[g]);
  }
  for (std::size_t i = 0; i < group_of.size(); ++i)
    out[i] = node_of_group[slot[i]];
  return out;
}

std::string save_entity_states(const std::vector<std::unique_ptr<entity>>& entities,
                               std::span<const std::uint32_t> node_of, std::uint32_t node) {
  std::string out;
  protocol::byte_writer w(out);
  std::uint64_t n = 0;
  for (std::size_t i = 0; i < entities.size(); ++i)
    n += node_of[i] == node ? 1 : 0;
  w.u64(n);
  std::string one;
  for (std::size_t i = 0; i < entities.size(); ++i) {
    if (node_of[i] != node)
      continue;
    one.clear();
    protocol::byte_writer ew(one);
    detail::entity_driver::save(*entities[i], ew);
    w.u32(static_cast<std::uint32_t>(i));
    w.bytes(one);
  }
  return out;
}

absl::Status load_entity_states(std::string_view bytes,
                                std::vector<std::unique_ptr<entity>>& entities,
                                std::span<const std::uint32_t> node_of, std::uint32_t node) {
  protocol::byte_reader r(bytes);
  const auto n = r.count("entity count", 8);
  // Every entity the node hosts, once: one left out would keep the state
  // it had before the run.
  std::vector<char> seen(entities.size(), 0);
  for (std::uint64_t k = 0; k < n && r.ok(); ++k) {
    const auto id = r.u32("entity id");
    const auto state = r.bytes("entity state");
    if (!r.ok())
      break;
    if (id >= entities.size() || node_of[id] != node) {
      r.fail(absl::StrCat("entity ", id, " is not hosted by node ", node));
      break;
    }
    if (seen[id]++ != 0) {
      r.fail(absl::StrCat("entity ", id, " comes twice"));
      break;
    }
    protocol::byte_reader er(state);
    detail::entity_driver::load(*entities[id], er);
    er.expect_end("the entity's state");
    if (!er.ok())
      return absl::InvalidArgumentError(
        absl::StrCat("state of entity ", id, ": ", er.status().message()));
  }
  r.expect_end("the entity states");
  if (!r.ok())
    return absl::InvalidArgumentError(absl::StrCat("entity states: ", r.status().message()));
  for (std::uint32_t id = 0; id < entities.size(); ++id)
    if (node_of[id] == node && seen[id] == 0)
      return absl::InvalidArgumentError(
        absl::StrCat("entity states: entity ", id, ", hosted by node ", node, ", is missing"));
  return absl::OkStatus();
}

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The coordinator's view of the workers.
class coordinator {
public:
  explicit coordinator(const coordinator_options& opts) : opts_(opts) {
  }

  coordinated_run run() {
    const auto wall0 = clock::now();
    out_.result.reached = vtime::zero();
    out_.nodes.resize(opts_.workers.size());
    for (std::size_t k = 0; k < opts_.workers.size(); ++k)
      out_.nodes[k].address = opts_.workers[k].to_string();
    auto st = connect();
    out_.refused = !st.ok() && !absl::IsCancelled(st);
    if (st.ok()) {
      st = setup();
      // The coordinator's own comparisons (files, entity counts).
      out_.refused = absl::IsFailedPrecondition(st);
    }
    if (st.ok() && opts_.on_start) {
      st = opts_.on_start();
      out_.refused = !st.ok();
    }
    out_.started = st.ok();
    if (st.ok())
      st = windows(wall0);
    if (st.ok())
      st = collect();
    out_.result.wall_seconds = std::chrono::duration<double>(clock::now() - wall0).count();
    if (!st.ok()) {
      out_.failure = st;
      out_.entity_states.clear();
      out_.workload_states.clear();
      for (auto& l : links_)
        (void)l.send(protocol::node_abort{std::string(st.message())});
    }
    for (auto& l : links_)
      (void)l.close(milliseconds(2000));
    return std::move(out_);
  }

private:
  void log(const std::string& line) {
    if (opts_.log)
      opts_.log(line);
  }

  absl::Status connect() {
    node_options no;
    no.threads = 2;
    no.heartbeat_interval = std::max(milliseconds(100), opts_.silence_timeout / 5);
    no.connection_timeout = opts_.silence_timeout;
    no.tls = opts_.tls;
    auto sys = node_system::start(no);
    if (!sys.ok())
      return sys.status();
    system_ = std::move(*sys);
    // Every address answers before any worker is taken: a mistyped one
    // would otherwise end the sessions of the workers listed before it.
    // A connection that fails after Ctrl-C (CAF's own timeouts end it
    // before the stop is seen) is the interruption, not the worker's fault.
    auto stopped = [&](const absl::Status& st) {
      return absl::IsCancelled(st) || (opts_.stop != nullptr && opts_.stop->load());
    };
    for (const auto& addr : opts_.workers)
      if (auto st = worker_link::probe(addr, opts_.connect_timeout, opts_.stop); !st.ok())
        return stopped(st) ? absl::CancelledError("interrupted before the run started") : st;
    for (const auto& addr : opts_.workers) {
      auto link = worker_link::open(addr, opts_.connect_timeout, system_, opts_.stop);
      // One process listed under two names (127.0.0.1 and localhost) would
      // serve this coordinator once and leave the second session waiting.
      if (link.ok())
        for (const auto& earlier : links_)
          if (earlier.worker_node() == link->worker_node()) {
            link->detach();
            return absl::InvalidArgumentError(absl::StrCat(
              "--workers lists one worker process twice: ", earlier.address().to_string(),
              " and ", addr.to_string(), " reach the same satemu worker"));
          }
      absl::Status st = link.ok()
                          ? link->authenticate(opts_.secret, opts_.connect_timeout, opts_.stop)
                          : link.status();
      if (!st.ok() && stopped(st))
        return absl::CancelledError("interrupted before the run started");
      // The link's errors name the worker.
      if (!st.ok())
        return absl::Status(
          st.code(),
          absl::StrCat(st.message(),
                       // Connected, then silent: it serves another coordinator.
                       absl::IsDeadlineExceeded(st)
                         ? " (a worker serves one coordinator at a time: is it busy?)"
                         : ""));
      if (!opts_.software.empty() && link->worker_software() != opts_.software) {
        links_.push_back(std::move(*link));
        return absl::FailedPreconditionError(
          absl::StrCat("worker ", addr.to_string(), " runs ", links_.back().worker_software(),
                       ", this coordinator ", opts_.software, ": every node needs the same build"));
      }
      log(absl::StrCat("connected to worker ", addr.to_string(), " (", link->worker_software(),
                       ", ", link->worker_threads(), " threads)"));
      out_.nodes[links_.size()].threads = link->worker_threads();
      links_.push_back(std::move(*link));
    }
    return absl::OkStatus();
  }

  /// The next frame from worker k. While waiting, the other workers are
  /// watched too, so a dead one is named at once whoever is awaited.
  absl::StatusOr<protocol::node_message> receive(std::size_t k, clock::time_point deadline) {
    while (true) {
      const auto slice = std::min(deadline, clock::now() + milliseconds(100));
      auto m = links_[k].receive(std::chrono::duration_cast<milliseconds>(slice - clock::now()));
      if (m.ok()) {
        if (auto* a = std::get_if<protocol::node_abort>(&*m))
          return absl::AbortedError(
            absl::StrCat("worker ", opts_.workers[k].to_string(), " gave up: ", a->reason));
        // The scenario cannot be built there: bad input, as the file checks.
        if (auto* r = std::get_if<protocol::node_refused>(&*m))
          return absl::FailedPreconditionError(absl::StrCat(
            "worker ", opts_.workers[k].to_string(), " cannot run the scenario: ", r->reason));
        if (auto* e = std::get_if<protocol::node_error>(&*m))
          return absl::InternalError(absl::StrCat(
            "worker ", opts_.workers[k].to_string(), " rejected a frame (",
            protocol::node_error_code_name(e->code), "): ", e->message));
        return m;
      }
      if (!absl::IsDeadlineExceeded(m.status()))
        return m.status();
      for (std::size_t j = 0; j < links_.size(); ++j)
        if (auto h = links_[j].health(); !h.ok())
          return down_reason(j, h);
      // Before the first window a stop ends the wait (a worker slow to set up
      // or listed twice); once windows run, it ends them at a window's end.
      if (out_.result.windows == 0 && opts_.stop != nullptr && opts_.stop->load())
        return absl::CancelledError("interrupted before the run started");
      if (clock::now() >= deadline)
        return absl::DeadlineExceededError(
          absl::StrCat("worker ", opts_.workers[k].to_string(), " did not answer in time"));
    }
  }

  /// Why worker j's link failed with `failure`: the reason the worker gave
  /// as it gave up, when that frame is still queued behind others (read in
  /// a race with the link going down), else `failure`.
  absl::Status down_reason(std::size_t j, absl::Status failure) {
    while (true) {
      auto m = links_[j].receive(milliseconds(0));
      if (!m.ok())
        return failure;
      if (auto* a = std::get_if<protocol::node_abort>(&*m))
        return absl::AbortedError(
          absl::StrCat("worker ", opts_.workers[j].to_string(), " gave up: ", a->reason));
    }
  }

  template <class T>
  absl::StatusOr<T> expect(std::size_t k, clock::time_point deadline, std::string_view what) {
    auto m = receive(k, deadline);
    if (!m.ok())
      return m.status();
    if (auto* x = std::get_if<T>(&*m))
      return std::move(*x);
    return absl::InternalError(absl::StrCat("worker ", opts_.workers[k].to_string(), " sent ",
                                            std::string(protocol::node_kind_name(*m)), " instead of ",
                                            std::string(what)));
  }

  absl::Status setup() {
    const auto nodes = static_cast<std::uint32_t>(links_.size());
    for (std::uint32_t k = 0; k < nodes; ++k) {
      protocol::node_setup s{opts_.scenario_yaml, k, nodes, opts_.node_of, opts_.threads};
      if (auto st = links_[k].send(s); !st.ok())
        return down_reason(k, st);
    }
    const auto deadline = clock::now() + opts_.setup_timeout;
    std::vector<std::optional<std::uint64_t>> reference;
    for (std::uint32_t k = 0; k < nodes; ++k) {
      auto r = expect<protocol::node_ready>(k, deadline, "ready");
      if (!r.ok())
        return r.status();
      if (r->total != opts_.node_of.size() || r->lookahead_ns != opts_.lookahead.ns())
        return absl::FailedPreconditionError(absl::StrCat(
          "worker ", opts_.workers[k].to_string(), " built ", r->total,
          " entities with lookahead ", r->lookahead_ns, " ns from the scenario; this coordinator has ",
          opts_.node_of.size(), " and ", opts_.lookahead.ns(),
          " ns (does the worker see the same files the scenario names, such as a TLE file, at "
          "the same paths?)"));
      if (auto st = check_inputs(k, r->inputs, reference); !st.ok())
        return st;
      out_.nodes[k].entities = r->entities;
    }
    return absl::OkStatus();
  }

  /// Whether worker k read the same bytes as the coordinator (or, for a
  /// file the coordinator cannot read, as the first worker) for every file
  /// the scenario names: a changed copy would change the results silently.
  absl::Status check_inputs(std::size_t k, const std::vector<protocol::node_input>& got,
                            std::vector<std::optional<std::uint64_t>>& reference) {
    const auto& want = opts_.inputs;
    reference.resize(want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
      if (!reference[i])
        reference[i] = want[i].digest;
      auto it = std::find_if(got.begin(), got.end(),
                             [&](const protocol::node_input& x) { return x.key == want[i].key; });
      if (it == got.end())
        return absl::FailedPreconditionError(absl::StrCat(
          "worker ", opts_.workers[k].to_string(), " did not read ", want[i].key, " (",
          want[i].path, ")"));
      if (!reference[i]) {
        reference[i] = it->digest;
        continue;
      }
      if (it->digest != *reference[i])
        return absl::FailedPreconditionError(absl::StrCat(
          "worker ", opts_.workers[k].to_string(), " read other bytes for ", want[i].key, " (",
          want[i].path, ") than ", want[i].digest ? "this coordinator" : "the first worker",
          ": every node needs the same file, or the results would be neither node's"));
    }
    return absl::OkStatus();
  }

  absl::Status windows(clock::time_point wall0) {
    const auto nodes = links_.size();
    const auto never = vtime::never().ns();
    const auto end = opts_.end.ns();
    std::vector<std::int64_t> next(nodes, never);
    std::vector<std::vector<std::string>> inbound(nodes);
    std::uint64_t events = 0;
    auto last_progress = clock::now();
    std::int64_t window_start = 0;
    // The end of the last window granted: once its reports are in, every
    // event before it has run.
    std::int64_t window_done = 0;
    while (true) {
      // Every node's report on the window (the first one: on its start).
      std::fill(next.begin(), next.end(), never);
      std::vector<std::int64_t> first(nodes, never);
      for (std::size_t k = 0; k < nodes; ++k) {
        auto r = expect<protocol::node_report>(k, clock::time_point::max(), "report");
        if (!r.ok())
          return r.status();
        // Times only move forward. A node's next event is not before the
        // window it ran (a compute result may fall inside it), and no
        // envelope it sent is due before that window's end (each takes the
        // lookahead at least): one due sooner would reach a node that has
        // run past it.
        auto before = [&](const char* what, std::int64_t t, const char* bound, std::int64_t b) {
          return absl::InternalError(absl::StrCat("worker ", opts_.workers[k].to_string(), " ",
                                                  what, " ", t, " ns, before ", bound, " (", b,
                                                  " ns)"));
        };
        if (r->next_ns < window_start)
          return before("reported its next event at", r->next_ns, "the window it ran",
                        window_start);
        next[k] = std::min(next[k], r->next_ns);
        events += r->events;
        out_.nodes[k].events += r->events;
        for (auto& b : r->batches) {
          if (b.node >= nodes || b.node == k)
            return absl::InternalError(absl::StrCat("worker ", opts_.workers[k].to_string(),
                                                    " sent envelopes for node ", b.node));
          if (b.first_ns < window_done)
            return before("sent envelopes due at", b.first_ns, "the end of the window it ran",
                          window_done);
          first[b.node] = std::min(first[b.node], b.first_ns);
          out_.cross_envelopes += b.count;
          out_.cross_bytes += b.data.size();
          inbound[b.node].push_back(std::move(b.data));
        }
      }
      out_.result.reached = vtime::from_ns(window_done);
      std::int64_t t = never;
      for (std::size_t k = 0; k < nodes; ++k)
        t = std::min({t, next[k], first[k]});
      const bool stop = opts_.stop != nullptr && opts_.stop->load();
      if (stop || t >= end) {
        out_.result.interrupted = stop && t < end;
        out_.result.reached = out_.result.interrupted ? vtime::from_ns(window_done) : opts_.end;
        for (std::size_t k = 0; k < nodes; ++k) {
          protocol::node_grant g;
          g.stop = true;
          g.interrupted = out_.result.interrupted;
          g.window_end = out_.result.reached.ns();
          if (auto st = links_[k].send(g); !st.ok())
            return down_reason(k, st);
        }
        return absl::OkStatus();
      }
      // Saturating: a lookahead near the largest time must not wrap.
      const auto window_end =
        std::min(end, vtime::from_ns(t).plus_or_never(opts_.lookahead).ns());
      window_start = t;
      window_done = window_end;
      ++out_.result.windows;
      for (std::size_t k = 0; k < nodes; ++k) {
        protocol::node_grant g;
        g.window_start = t;
        g.window_end = window_end;
        g.batches = std::move(inbound[k]);
        inbound[k].clear();
        if (auto st = links_[k].send(g); !st.ok()) {
          if (absl::IsInvalidArgument(st))
            return absl::ResourceExhaustedError(
              absl::StrCat("the envelopes for worker ", opts_.workers[k].to_string(),
                           " in the window from ", t, " ns do not fit one grant: ", st.message()));
          return down_reason(k, st);
        }
      }
      if (opts_.on_progress && clock::now() - last_progress > milliseconds(500)) {
        last_progress = clock::now();
        opts_.on_progress({vtime::from_ns(t), events,
                           std::chrono::duration<double>(clock::now() - wall0).count()});
      }
    }
  }

  absl::Status collect() {
    const auto deadline = clock::now() + opts_.results_timeout;
    for (std::size_t k = 0; k < links_.size(); ++k) {
      auto r = expect<protocol::node_results>(k, deadline, "results");
      if (!r.ok())
        return r.status();
      auto& n = out_.nodes[k];
      n.events = r->events;
      n.windows = r->windows;
      n.cross_envelopes = r->cross_envelopes;
      n.cross_bytes = r->cross_bytes;
      n.barrier_wait_seconds = static_cast<double>(r->barrier_wait_ns) * 1e-9;
      // Each node's GPU worker ran its own entities' requests.
      out_.result.compute_requests += r->compute_requests;
      out_.result.compute_batches += r->compute_batches;
      out_.entity_states.push_back(std::move(r->entities));
      out_.workload_states.push_back(std::move(r->workload));
    }
    return absl::OkStatus();
  }

  const coordinator_options& opts_;
  std::shared_ptr<node_system> system_;
  std::vector<worker_link> links_;
  coordinated_run out_;
};

} // namespace

coordinated_run coordinate(const coordinator_options& opts) {
  return coordinator(opts).run();
}

} // namespace satemu::runtime
