#include "runtime/entity.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "protocol/bytes.hpp"
#include "runtime/detail/entity_driver.hpp"

namespace satemu::runtime {

namespace {

struct counter_registry {
  std::mutex mu;
  std::vector<std::string> names;
};

counter_registry& counters_registry() {
  static counter_registry r;
  return r;
}

} // namespace

counter_id register_counter(std::string_view name) {
  auto& r = counters_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  for (std::size_t i = 0; i < r.names.size(); ++i)
    if (r.names[i] == name)
      return static_cast<counter_id>(i);
  r.names.emplace_back(name);
  return static_cast<counter_id>(r.names.size() - 1);
}

std::vector<std::string> counter_names() {
  auto& r = counters_registry();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.names;
}

entity::~entity() = default;

compute_job::~compute_job() = default;

void entity::check_latency(entity_id hop, duration latency) const {
  if (latency < min_latency_) {
    std::fprintf(stderr,
                 "satemu: internal error: entity %u sent to %u with latency %s below the "
                 "lookahead %s at %s\n",
                 id_, hop, to_string(latency).c_str(), to_string(min_latency_).c_str(),
                 to_string(now_).c_str());
    std::abort();
  }
}

void entity::send(entity_id dst, duration latency, protocol::kind k, protocol::payload_ptr body) {
  send_via(dst, dst, latency, k, std::move(body));
}

void entity::send_via(entity_id next_hop, entity_id dst, duration latency, protocol::kind k,
                      protocol::payload_ptr body) {
  check_latency(next_hop, latency);
  protocol::envelope e;
  e.src = id_;
  e.dst = dst;
  e.send_ns = now_.ns();
  e.deliver_ns = now_.plus_or_never(latency).ns(); // never: past any run's end
  e.seq = next_seq_++;
  e.k = k;
  e.body = std::move(body);
  outbox_->post(next_hop, std::move(e));
}

void entity::forward(entity_id next_hop, duration latency, const protocol::envelope& in) {
  forward(next_hop, latency, protocol::envelope(in));
}

void entity::forward(entity_id next_hop, duration latency, protocol::envelope&& in) {
  check_latency(next_hop, latency);
  in.deliver_ns = now_.plus_or_never(latency).ns();
  ++in.hops;
  outbox_->post(next_hop, std::move(in));
}

void entity::schedule(duration delay, std::uint64_t tag) {
  if (delay < duration::zero()) {
    std::fprintf(stderr, "satemu: internal error: entity %u scheduled a timer %s in the past\n",
                 id_, to_string(delay).c_str());
    std::abort();
  }
  const vtime at = now_.plus_or_never(delay);
  if (at.is_never()) // past the end of time, so past the end of any run
    return;
  pending p;
  p.env.src = id_;
  p.env.dst = id_;
  p.env.send_ns = now_.ns();
  p.env.deliver_ns = at.ns();
  p.env.seq = next_seq_++;
  p.env.k = protocol::kind::timer;
  p.tag = tag;
  p.from = id_;
  heap_.push_back(std::move(p));
  std::push_heap(heap_.begin(), heap_.end(), later{});
}

void entity::compute(std::uint64_t tag, std::unique_ptr<compute_job> job) {
  compute_call c;
  c.entity = id_;
  c.seq = next_seq_++;
  c.tag = tag;
  c.at = now_;
  c.job = std::move(job);
  requests_.push_back(std::move(c));
}

namespace detail {

void entity_driver::bind(entity& e, entity_id id, std::uint64_t seed, outbox* out,
                         duration min_latency, std::vector<trace_record>* trace) {
  e.id_ = id;
  e.rng_ = rng(seed, id, 0);
  e.fault_rng_ = rng(seed, id, 1);
  e.outbox_ = out;
  e.min_latency_ = min_latency;
  e.trace_ = trace;
}

void entity_driver::start(entity& e) {
  e.now_ = vtime::zero();
  e.on_start();
}

void entity_driver::push(entity& e, entity_id from, protocol::envelope&& env) {
  e.heap_.push_back(entity::pending{std::move(env), 0, from});
  std::push_heap(e.heap_.begin(), e.heap_.end(), entity::later{});
}

vtime entity_driver::next_time(const entity& e) {
  return e.heap_.empty() ? vtime::never() : vtime::from_ns(e.heap_.front().env.deliver_ns);
}

void entity_driver::dispatch(entity& e, entity::pending& p) {
  auto& env = p.env;
  e.now_ = vtime::from_ns(env.deliver_ns);
  ++e.events_;
  // (time, source, sequence, previous hop, kind), packed into three words.
  std::uint64_t h = e.fingerprint_;
  h = hash_combine(h, static_cast<std::uint64_t>(env.deliver_ns));
  h = hash_combine(h, (static_cast<std::uint64_t>(env.src) << 32) | p.from);
  h = hash_combine(h, env.seq * 0x10001 ^ static_cast<std::uint64_t>(env.k));
  e.fingerprint_ = h;
  if (e.trace_ != nullptr)
    e.trace_->push_back({env.deliver_ns, e.id_, env.src, env.seq, p.from, env.k});
  if (env.k == protocol::kind::timer && p.from == e.id_ && env.src == e.id_) {
    e.on_timer(p.tag);
  } else if (env.k == protocol::kind::compute && p.from == e.id_ && env.src == e.id_) {
    // Results wait in request order; an entity has few in flight.
    auto it = std::find_if(e.results_.begin(), e.results_.end(),
                           [&](const compute_call& c) { return c.seq == env.seq; });
    if (it == e.results_.end()) {
      std::fprintf(stderr, "satemu: internal error: entity %u has no compute result %llu\n",
                   e.id_, static_cast<unsigned long long>(env.seq));
      std::abort();
    }
    auto job = std::move(it->job);
    e.results_.erase(it);
    e.on_compute(p.tag, std::move(job));
  } else {
    ++e.envelopes_;
    e.on_envelope(env);
  }
  e.after_event();
}

std::uint64_t entity_driver::run_until(entity& e, vtime end) {
  std::uint64_t n = 0;
  while (!e.heap_.empty() && e.heap_.front().env.deliver_ns < end.ns() && e.requests_.empty()) {
    std::pop_heap(e.heap_.begin(), e.heap_.end(), entity::later{});
    entity::pending p = std::move(e.heap_.back());
    e.heap_.pop_back();
    dispatch(e, p);
    ++n;
  }
  return n;
}

void entity_driver::take_requests(entity& e, std::vector<compute_call>& out) {
  for (auto& c : e.requests_)
    out.push_back(std::move(c));
  e.requests_.clear();
}

void entity_driver::check_result(const entity& e, const compute_call& c) {
  if (c.ready.is_never() || c.ready < c.at) {
    std::fprintf(stderr,
                 "satemu: internal error: compute request %llu of entity %u made at %s is "
                 "ready at %s\n",
                 static_cast<unsigned long long>(c.seq), e.id(), to_string(c.at).c_str(),
                 c.ready.is_never() ? "never" : to_string(c.ready).c_str());
    std::abort();
  }
}

entity::pending entity_driver::result_event(const entity& e, const compute_call& c) {
  entity::pending p;
  p.env.src = e.id();
  p.env.dst = e.id();
  p.env.send_ns = c.at.ns();
  p.env.deliver_ns = c.ready.ns();
  p.env.seq = c.seq;
  p.env.k = protocol::kind::compute;
  p.tag = c.tag;
  p.from = e.id();
  return p;
}

void entity_driver::push_result(entity& e, compute_call&& c) {
  check_result(e, c);
  e.heap_.push_back(result_event(e, c));
  std::push_heap(e.heap_.begin(), e.heap_.end(), entity::later{});
  e.results_.push_back(std::move(c));
}

void entity_driver::process_result(entity& e, compute_call&& c) {
  check_result(e, c);
  auto p = result_event(e, c);
  e.results_.push_back(std::move(c));
  dispatch(e, p);
}

void entity_driver::process_now(entity& e, entity_id from, protocol::envelope&& env,
                                std::uint64_t tag) {
  entity::pending p{std::move(env), tag, from};
  dispatch(e, p);
}

bool entity_driver::pop(entity& e, protocol::envelope& env, std::uint64_t& tag) {
  if (e.heap_.empty())
    return false;
  std::pop_heap(e.heap_.begin(), e.heap_.end(), entity::later{});
  env = std::move(e.heap_.back().env);
  tag = e.heap_.back().tag;
  e.heap_.pop_back();
  return true;
}

void entity_driver::clear(entity& e) {
  e.heap_.clear();
  e.heap_.shrink_to_fit();
  e.requests_.clear();
  e.results_.clear();
}

void entity_driver::save(const entity& e, protocol::byte_writer& w) {
  w.u64(e.events_);
  w.u64(e.envelopes_);
  w.u64(e.fingerprint_);
  w.u64(e.counters_.size());
  for (auto c : e.counters_)
    w.u64(c);
  e.save_results(w);
}

void entity_driver::load(entity& e, protocol::byte_reader& r) {
  e.events_ = r.u64("events");
  e.envelopes_ = r.u64("envelopes");
  e.fingerprint_ = r.u64("fingerprint");
  const auto n = r.count("counters", 8);
  if (n > counter_names().size()) {
    r.fail("more counters than this build registers");
    return;
  }
  e.counters_.assign(n, 0);
  for (auto& c : e.counters_)
    c = r.u64("counter");
  if (r.ok())
    e.load_results(r);
}

} // namespace detail
} // namespace satemu::runtime
