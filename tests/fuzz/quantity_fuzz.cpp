/// Fuzz target: the quantity parsers of scenario values (runtime/quantity.hpp).
/// Each line of the input goes to every parser; a value one accepts must be
/// finite, and its canonical text must parse back to the same value (the
/// promise that resolved scenarios reload unchanged).
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/quantity.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace satemu::runtime;

template <class T, class Parse>
void round_trips(std::string_view line, Parse parse) {
  auto v = parse(line);
  if (!v.ok()) return;
  const std::string text = to_string(*v);
  auto back = parse(text);
  SATEMU_FUZZ_CHECK(back.ok(), absl::StrCat("'", std::string(line), "' gave '", text,
                                            "', which does not parse: ", back.status().message()));
  SATEMU_FUZZ_CHECK(*back == *v, absl::StrCat("'", std::string(line), "' gave '", text,
                                              "', which parses to another value"));
}

template <class T>
bool finite(const T& v) {
  if constexpr (std::is_same_v<T, distance>) return std::isfinite(v.m);
  if constexpr (std::is_same_v<T, angle>) return std::isfinite(v.deg);
  if constexpr (std::is_same_v<T, data_rate>) return std::isfinite(v.bps);
  return true;
}

template <class T, class Parse>
void check(std::string_view line, Parse parse) {
  auto v = parse(line);
  if (v.ok())
    SATEMU_FUZZ_CHECK(finite(*v),
                      absl::StrCat("'", std::string(line), "' parses to a non-finite value"));
  round_trips<T>(line, parse);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view rest = satemu::fuzz::text_of(data, size);
  while (true) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    check<duration>(line, parse_duration);
    check<distance>(line, [](std::string_view t) { return parse_distance(t); });
    check<distance>(line, [](std::string_view t) { return parse_distance(t, true); });
    check<angle>(line, parse_angle);
    check<data_size>(line, parse_data_size);
    check<data_rate>(line, parse_data_rate);
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return 0;
}
