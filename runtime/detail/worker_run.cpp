#include "runtime/detail/worker_run.hpp"

#include <chrono>
#include <limits>

#include "absl/strings/str_cat.h"
#include "protocol/envelope_batch.hpp"
#include "runtime/distributed.hpp"
#include "runtime/kernel.hpp"
#include "runtime/output.hpp"

namespace satemu::runtime::detail {

/// Largest envelope batch a report carries [bytes]; more go in several.
constexpr std::size_t max_batch_bytes = std::size_t{64} << 20;

/// The node conductor's barrier: report out, wait for the grant.
class worker_run::barrier final : public window_exchange {
public:
  barrier(worker_run& run, const node_share& share, std::uint32_t nodes,
          std::int64_t lookahead_ns)
    : run_(run), share_(share), nodes_(nodes), lookahead_ns_(lookahead_ns) {
  }

  window_grant exchange(window_report&& rep) override {
    protocol::node_report out;
    out.next_ns = rep.next_ns;
    out.events = rep.events;
    if (rep.events > 0)
      ++windows_;
    if (!rep.outgoing.empty()) {
      // Batches per receiving node, envelopes in the order produced; each
      // batch small enough for one field of the report.
      std::vector<std::vector<protocol::routed_envelope>> per(nodes_);
      for (auto& r : rep.outgoing)
        per[share_.node_of[r.hop]].push_back(std::move(r));
      for (std::uint32_t k = 0; k < nodes_; ++k) {
        for (const auto part : protocol::split_envelopes(per[k], max_batch_bytes)) {
          protocol::node_batch b;
          b.node = k;
          b.count = part.size();
          b.first_ns = std::numeric_limits<std::int64_t>::max();
          for (const auto& r : part)
            b.first_ns = std::min(b.first_ns, r.env.deliver_ns);
          protocol::encode_envelopes(part, b.data);
          cross_envelopes_ += b.count;
          cross_bytes_ += b.data.size();
          out.batches.push_back(std::move(b));
        }
      }
    }
    run_.send_(std::move(out));
    const auto t0 = std::chrono::steady_clock::now();
    protocol::node_grant g;
    {
      std::unique_lock<std::mutex> lock(run_.mu_);
      run_.cv_.wait(lock, [&] { return run_.aborted_ || !run_.grants_.empty(); });
      wait_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count();
      if (run_.aborted_)
        return stop_now();
      g = std::move(run_.grants_.front());
      run_.grants_.pop_front();
    }
    window_grant w;
    w.stop = g.stop;
    w.interrupted = g.interrupted;
    w.window_end = g.window_end;
    const auto n = static_cast<std::uint32_t>(share_.node_of.size());
    for (const auto& b : g.batches) {
      if (auto st = protocol::decode_envelopes(b, n, w.incoming); !st.ok())
        return fail(absl::StrCat("a grant carried a malformed envelope batch: ", st.message()));
    }
    if (w.stop)
      return w;
    // A window starts no sooner than the last one (a compute result may
    // fall before the last one's end) and ends within the lookahead of its
    // start (or at the run's end, sooner); nothing granted may be due
    // before its start.
    const auto window_start = g.window_start;
    if (window_start < last_window_start_ || window_start >= w.window_end ||
        w.window_end - window_start > lookahead_ns_)
      return fail(absl::StrCat("a grant's window [", window_start, ", ", w.window_end,
                               ") ns starts before the last one (from ", last_window_start_,
                               " ns), is empty, or is longer than the lookahead of ",
                               lookahead_ns_, " ns"));
    last_window_start_ = window_start;
    for (const auto& r : w.incoming) {
      if (share_.node_of[r.hop] != share_.node)
        return fail(absl::StrCat("a grant carried an envelope for entity ", r.hop,
                                 ", which node ", share_.node_of[r.hop], " hosts"));
      if (share_.node_of[r.from] == share_.node)
        return fail(absl::StrCat("a grant carried an envelope from entity ", r.from,
                                 ", which this node hosts"));
      if (r.env.deliver_ns < window_start)
        return fail(absl::StrCat("a grant carried an envelope due at ", r.env.deliver_ns,
                                 " ns, before the window it grants (from ", window_start,
                                 " ns)"));
    }
    return w;
  }

  bool failed() const { return failed_; }
  std::uint64_t windows() const { return windows_; }
  std::uint64_t cross_envelopes() const { return cross_envelopes_; }
  std::uint64_t cross_bytes() const { return cross_bytes_; }
  std::int64_t wait_ns() const { return wait_ns_; }

private:
  window_grant stop_now() {
    failed_ = true;
    window_grant w;
    w.stop = true;
    w.interrupted = true;
    return w;
  }

  window_grant fail(const std::string& why) {
    run_.log_(why);
    run_.send_(protocol::node_abort{why});
    return stop_now();
  }

  worker_run& run_;
  const node_share& share_;
  std::uint32_t nodes_;
  std::int64_t lookahead_ns_;
  /// The start of the last window granted (0 before the first).
  std::int64_t last_window_start_ = 0;
  bool failed_ = false;
  std::uint64_t windows_ = 0;
  std::uint64_t cross_envelopes_ = 0;
  std::uint64_t cross_bytes_ = 0;
  std::int64_t wait_ns_ = 0;
};

worker_run::worker_run(std::function<absl::StatusOr<hosted_run>(const std::string&)> build,
                       send_fn send, log_fn log, std::size_t threads)
  : build_(std::move(build)), send_(std::move(send)), log_(std::move(log)), threads_(threads) {
}

worker_run::~worker_run() {
  abort();
  bool building = false;
  {
    std::lock_guard<std::mutex> lock(build_state_->mu);
    build_state_->stopping = true;
    building = build_state_->building;
  }
  if (!thread_.joinable())
    return;
  // A build is not waited for (an interrupted worker exits at once); a run
  // ends at its next window barrier.
  if (building)
    thread_.detach();
  else
    thread_.join();
}

void worker_run::start(protocol::node_setup setup) {
  if (thread_.joinable())
    return;
  thread_ = std::thread([this, s = std::move(setup), b = build_, bs = build_state_]() mutable {
    main(std::move(s), std::move(b), std::move(bs));
  });
}

void worker_run::grant(protocol::node_grant g) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    grants_.push_back(std::move(g));
  }
  cv_.notify_all();
}

void worker_run::abort() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    aborted_ = true;
  }
  cv_.notify_all();
}

void worker_run::give_up(const std::string& why) {
  log_(absl::StrCat("cannot run: ", why));
  send_(protocol::node_abort{why});
}

void worker_run::refuse(const std::string& why) {
  log_(absl::StrCat("cannot run the scenario: ", why));
  send_(protocol::node_refused{why});
}

void worker_run::main(protocol::node_setup setup, build_fn build,
                      std::shared_ptr<build_state> bs) {
  if (setup.nodes == 0 || setup.node >= setup.nodes) {
    give_up(absl::StrCat("setup names node ", setup.node, " of ", setup.nodes));
    return;
  }
  for (auto k : setup.node_of)
    if (k >= setup.nodes) {
      give_up(absl::StrCat("setup places an entity on node ", k, " of ", setup.nodes));
      return;
    }
  {
    std::lock_guard<std::mutex> lock(bs->mu);
    if (bs->stopping)
      return;
    bs->building = true;
  }
  // Nothing of *this is touched from here to the next lock: it may be
  // destroyed meanwhile. A scenario too big for this worker's memory is
  // refused, as one process refuses it (exit 2 from the coordinator).
  auto built = [&]() -> absl::StatusOr<hosted_run> {
    try {
      return build(setup.scenario);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError(absl::StrCat(
        "out of memory building the scenario on this worker: ", out_of_memory_advice));
    }
  }();
  {
    std::lock_guard<std::mutex> lock(bs->mu);
    bs->building = false;
    if (bs->stopping)
      return; // detached: *this is gone or going
  }
  {
    // Aborted while it built (the coordinator gave up, or the worker is
    // stopping): no run, so no actors are started only to be stopped.
    std::lock_guard<std::mutex> lock(mu_);
    if (aborted_) {
      log_("the run was aborted while the scenario was built");
      return;
    }
  }
  if (!built.ok()) {
    refuse(std::string(built.status().message()));
    return;
  }
  // Out of memory before the run's actors are spawned (once they are, the
  // run ends the process) or after the run: this node fails the run.
  try {
    run_built(std::move(setup), *built);
  } catch (const std::bad_alloc&) {
    give_up(absl::StrCat("out of memory on this worker: ", out_of_memory_advice));
  }
}

void worker_run::run_built(protocol::node_setup setup, hosted_run& built) {
  auto& entities = *built.entities;
  if (entities.size() != setup.node_of.size()) {
    refuse(absl::StrCat("the scenario has ", entities.size(), " entities here, the setup places ",
                        setup.node_of.size(),
                        " (does this worker see the same files the scenario names, such as a TLE "
                        "file, at the same paths?)"));
    return;
  }
  // A count the scenario's own `threads` could hold, and threads that can
  // start here (the actor system would hang on those that cannot).
  if (setup.threads > static_cast<std::uint32_t>(most_threads)) {
    refuse(absl::StrCat("the coordinator asks for ", setup.threads, " threads, more than ",
                        most_threads));
    return;
  }
  const std::size_t threads = setup.threads != 0 ? setup.threads : threads_;
  if (auto st = check_threads_can_start(threads); !st.ok()) {
    refuse(std::string(st.message()));
    return;
  }
  node_share share;
  share.node_of = std::move(setup.node_of);
  share.node = setup.node;
  barrier ex(*this, share, setup.nodes, built.lookahead_ns);
  share.exchange = &ex;
  std::uint64_t hosted = 0;
  for (auto k : share.node_of)
    hosted += k == share.node ? 1 : 0;
  log_(absl::StrCat("hosting ", hosted, " of ", entities.size(), " entities as node ", share.node,
                    " of ", setup.nodes));
  send_(protocol::node_ready{hosted, entities.size(), built.lookahead_ns, built.inputs});

  run_options opts;
  opts.end = vtime::from_ns(built.end_ns);
  opts.lookahead = duration::from_ns(built.lookahead_ns);
  opts.seed = built.seed;
  opts.threads = threads;
  opts.share = &share;
  opts.compute.service = built.compute;
  auto r = run(entities, opts);
  if (ex.failed())
    return;
  protocol::node_results res;
  res.entities = save_entity_states(entities, share.node_of, share.node);
  if (built.workload_state)
    res.workload = built.workload_state();
  res.events = r.events;
  res.windows = ex.windows();
  res.cross_envelopes = ex.cross_envelopes();
  res.cross_bytes = ex.cross_bytes();
  res.barrier_wait_ns = ex.wait_ns();
  res.compute_requests = r.compute_requests;
  res.compute_batches = r.compute_batches;
  log_(absl::StrCat(r.interrupted
                      ? absl::StrCat("run stopped early by the coordinator at emulated ",
                                     absl::SixDigits(r.reached.seconds()), " s: ")
                      : std::string("run done: "),
                    r.events, " events, ", ex.cross_envelopes(), " envelopes sent to other nodes"));
  send_(std::move(res));
}

} // namespace satemu::runtime::detail
