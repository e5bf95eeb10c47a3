// Shared by the space-segment tests: run a scenario text to its end.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/space.hpp"
#include "actors/workload.hpp"
#include "runtime/kernel.hpp"

namespace satemu::actors::testing {

template <class W>
struct ran {
  std::unique_ptr<W> w;
  runtime::run_result r;
};

/// A scenario text loaded with `--set` overrides, and its workload; empty
/// (a test failure said) when either is refused.
struct built {
  std::optional<runtime::scenario> sc;
  std::unique_ptr<workload> w;
};

inline built build_text(const std::string& yaml, const std::vector<std::string>& sets) {
  register_workloads();
  auto sc = runtime::load_scenario_text(yaml, "test.yaml", sets);
  EXPECT_TRUE(sc.ok()) << sc.status();
  if (!sc.ok())
    return {};
  auto w = make_workload(*sc);
  EXPECT_TRUE(w.ok()) << w.status();
  if (!w.ok())
    return {};
  return {std::move(*sc), std::move(*w)};
}

/// Loads `yaml` with `--set` overrides, builds its workload (which must be
/// a `W`) and runs it to the scenario's end.
template <class W = space_workload>
ran<W> run_text(const std::string& yaml, std::vector<std::string> sets = {}, std::size_t threads = 1) {
  auto [sc, w] = build_text(yaml, sets);
  if (!w)
    return {};
  runtime::run_options o;
  o.end = runtime::vtime::zero() + sc->get_duration("duration");
  o.lookahead = w->lookahead();
  o.seed = static_cast<std::uint64_t>(sc->get_int("seed"));
  o.threads = threads;
  o.trace = sc->get_bool("output.trace");
  o.compute.service = w->compute();
  auto r = runtime::run(w->entities(), o);
  auto* typed = dynamic_cast<W*>(w.get());
  EXPECT_NE(typed, nullptr);
  if (typed != nullptr)
    w.release();
  return {std::unique_ptr<W>(typed), std::move(r)};
}

/// What validate and run warn about `yaml` with `--set` overrides `sets`.
inline std::vector<std::string> warnings_of(const std::string& yaml,
                                            const std::vector<std::string>& sets) {
  const auto b = build_text(yaml, sets);
  return b.w ? b.w->warnings() : std::vector<std::string>{};
}

} // namespace satemu::actors::testing
