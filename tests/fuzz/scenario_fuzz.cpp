/// Fuzz target: scenario text and `--set` overrides, through every
/// workload's schema. Input: the YAML text, then optionally a NUL byte and
/// overrides one per line. A scenario that loads must reload from its own
/// resolved text to the same resolved text (what `scenario.resolved.yaml`
/// in every output directory promises).
#include <vector>

#include "actors/workload.hpp"
#include "runtime/scenario.hpp"
#include "tests/fuzz/fuzz_check.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool registered = [] {
    satemu::actors::register_workloads();
    return true;
  }();
  (void)registered;
  const std::string_view all = satemu::fuzz::text_of(data, size);
  const std::size_t nul = all.find('\0');
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = all.substr(nul + 1);
    while (!rest.empty()) {
      const std::size_t nl = rest.find('\n');
      overrides.emplace_back(rest.substr(0, nl));
      if (nl == std::string_view::npos) break;
      rest.remove_prefix(nl + 1);
    }
  }
  auto s = satemu::runtime::load_scenario_text(all.substr(0, nul), "fuzz.yaml", overrides);
  if (!s.ok()) return 0;
  const std::string& resolved = s->resolved_yaml();
  auto again = satemu::runtime::load_scenario_text(resolved, "resolved.yaml");
  SATEMU_FUZZ_CHECK(again.ok(), "the resolved text does not load: "
                                    + std::string(again.status().message()) + "\n" + resolved);
  SATEMU_FUZZ_CHECK(again->resolved_yaml() == resolved,
                    "the resolved text resolves differently:\n" + resolved + "---\n"
                        + again->resolved_yaml());
  return 0;
}
