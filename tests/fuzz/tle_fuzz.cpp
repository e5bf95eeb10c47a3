/// Fuzz target: TLE text, the SGP4 propagator it feeds, and UTC times
/// (`constellation.start`). A parsed element set must hold the ranges
/// runtime/tle.hpp promises; SGP4 must build or refuse it cleanly and give
/// finite states when it propagates; a UTC time that parses must format and
/// parse back to itself (to the millisecond the format keeps).
#include <cmath>

#include "absl/strings/str_cat.h"
#include "runtime/sgp4.hpp"
#include "runtime/tle.hpp"
#include "runtime/tle_constellation.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using namespace satemu::runtime;

/// `text` with the checksum (column 69) of every line that looks like a
/// line 1 or 2 made right.
std::string with_checksums(std::string_view text) {
  std::string out(text);
  std::size_t start = 0;
  while (start < out.size()) {
    std::size_t end = out.find('\n', start);
    if (end == std::string::npos) end = out.size();
    std::size_t len = end - start;
    if (len > 0 && out[start + len - 1] == '\r') --len;
    if (len == 69 && (out[start] == '1' || out[start] == '2') && out[start + 1] == ' ') {
      const int sum = tle_checksum(std::string_view(out).substr(start, 68));
      out[start + 68] = static_cast<char>('0' + sum);
    }
    start = end + 1;
  }
  return out;
}

void check_utc(std::string_view line) {
  auto t = parse_utc(line);
  if (!t.ok()) return;
  const std::string text = format_utc(*t);
  auto back = parse_utc(text);
  SATEMU_FUZZ_CHECK(back.ok(), absl::StrCat("'", std::string(line), "' formats as '", text,
                                            "', which does not parse: ", back.status().message()));
  const std::int64_t ms = 1'000'000;
  const std::int64_t floor_ms = *t - ((*t % ms) + ms) % ms;
  SATEMU_FUZZ_CHECK(*back == floor_ms, absl::StrCat("'", std::string(line), "' formats as '", text,
                                                    "', which parses to another time"));
}

void check_sgp4(const tle& t) {
  auto model = sgp4::make(t);
  if (!model.ok()) return;
  for (double minutes : {0.0, -1440.0, 1440.0, 10080.0}) {
    auto s = model->at_minutes(minutes);
    if (!s.ok()) continue;
    for (int i = 0; i < 3; ++i)
      SATEMU_FUZZ_CHECK(std::isfinite(s->r_km[i]) && std::isfinite(s->v_km_s[i]),
                        absl::StrCat(t.label(), " propagates to a non-finite state at ",
                                     minutes, " min"));
  }
}

void check_sets(std::string_view text) {
  auto sets = parse_tle_text(text, "fuzz.tle");
  if (!sets.ok()) return;
  for (const tle& t : *sets) {
    SATEMU_FUZZ_CHECK(t.eccentricity >= 0 && t.eccentricity < 1, t.label());
    SATEMU_FUZZ_CHECK(t.mean_motion_rev_per_day > 0, t.label());
    SATEMU_FUZZ_CHECK(std::isfinite(t.epoch_day) && std::isfinite(t.bstar), t.label());
    (void)t.epoch_unix_ns();
    check_sgp4(t);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = satemu::fuzz::text_of(data, size);
  check_sets(text);
  // Again with the checksums mended, so that edits reach the fields and
  // SGP4 instead of stopping at column 69.
  const std::string mended = with_checksums(text);
  if (mended != text) check_sets(mended);
  std::string_view rest = text;
  while (true) {
    const std::size_t nl = rest.find('\n');
    check_utc(rest.substr(0, nl));
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return 0;
}
