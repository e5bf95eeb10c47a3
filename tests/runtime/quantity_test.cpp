// Tests for runtime/quantity: unit parsing tables and canonical text.
#include "runtime/quantity.hpp"

#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

namespace satemu::runtime {
namespace {

std::string message_of(const absl::Status& s) { return std::string(s.message()); }

TEST(parse_duration, good_inputs_convert_exactly) {
  struct row {
    const char* text;
    std::int64_t ns;
  };
  const row rows[] = {
      {"5ms", 5'000'000},
      {"1.5s", 1'500'000'000},
      {"0.25ms", 250'000},
      {"250ns", 250},
      {"3us", 3'000},
      {"3\xC2\xB5s", 3'000},
      {"2min", 120'000'000'000},
      {"1h", 3'600'000'000'000},
      {"1.5h", 5'400'000'000'000},
      {"0.001s", 1'000'000},
      {"0.000000001s", 1},
      {"100 ms", 100'000'000},
      {"  7s  ", 7'000'000'000},
      {"0s", 0},
      {"+2s", 2'000'000'000},
      {"1e3ms", 1'000'000'000},
      {"2.5e-3s", 2'500'000},
      {"9223372036.854775807s", 9'223'372'036'854'775'807},
      {"1.000000000000000000000000000000000000000000s", 1'000'000'000},
  };
  for (const auto& r : rows) {
    auto d = parse_duration(r.text);
    ASSERT_TRUE(d.ok()) << r.text << ": " << d.status();
    EXPECT_EQ(d->ns(), r.ns) << r.text;
  }
}

TEST(parse_duration, bad_inputs_give_clear_errors) {
  struct row {
    const char* text;
    const char* message_part;
  };
  const row rows[] = {
      {"5parsecs",
       "unknown unit 'parsecs' for a duration; expected one of ns, us, ms, s, min, h"},
      {"5", "missing unit, e.g. 5ms"},
      {"-5ms", "negative duration"},
      {"1.5ns", "not a whole number of nanoseconds"},
      {"0.0000000001s", "not a whole number of nanoseconds"},
      {"5MS", "unknown unit 'MS'"},
      {"ms", "a number followed by a unit"},
      {"", "empty value"},
      {"9223372037s", "too large"},
      {"1e400s", "too large"},
      {"5 m s", "unknown unit 'm s'"},
  };
  for (const auto& r : rows) {
    auto d = parse_duration(r.text);
    ASSERT_FALSE(d.ok()) << r.text;
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument) << r.text;
    EXPECT_NE(message_of(d.status()).find(r.message_part), std::string::npos)
        << r.text << " -> " << d.status();
  }
}

TEST(to_string_duration, picks_an_exact_unit) {
  EXPECT_EQ(to_string(milliseconds(5)), "5ms");
  EXPECT_EQ(to_string(milliseconds(1500)), "1.5s");
  EXPECT_EQ(to_string(nanoseconds(250)), "250ns");
  EXPECT_EQ(to_string(seconds(90)), "90s");
  EXPECT_EQ(to_string(seconds(120)), "2min");
  EXPECT_EQ(to_string(seconds(7200)), "2h");
  EXPECT_EQ(to_string(nanoseconds(1'234'567)), "1.234567ms");
  EXPECT_EQ(to_string(duration::zero()), "0s");
  EXPECT_EQ(to_string(-milliseconds(5)), "-5ms");
  EXPECT_EQ(to_string(vtime::from_ns(1'000)), "1us");
  EXPECT_EQ(to_string(vtime::never()), "never");
}

TEST(to_string_duration, round_trips_through_parse) {
  const std::int64_t samples[] = {1,          999,           1'000,         1'001,
                                  123'456'789, 60'000'000'000, 61'000'000'001,
                                  3'600'000'000'000, std::numeric_limits<std::int64_t>::max()};
  for (std::int64_t ns : samples) {
    auto back = parse_duration(to_string(nanoseconds(ns)));
    ASSERT_TRUE(back.ok()) << ns << ": " << back.status();
    EXPECT_EQ(back->ns(), ns);
  }
}

TEST(parse_distance, units_and_errors) {
  EXPECT_DOUBLE_EQ(parse_distance("550km")->m, 550'000.0);
  EXPECT_DOUBLE_EQ(parse_distance("12.5 m")->m, 12.5);
  EXPECT_EQ(parse_distance("1.2345km")->m, 1234.5);  // decimal read exactly
  EXPECT_EQ(parse_distance("0.1km")->m, 100.0);
  EXPECT_NE(message_of(parse_distance("5mi").status()).find("unknown unit 'mi' for a distance"),
            std::string::npos);
  EXPECT_NE(message_of(parse_distance("5").status()).find("missing unit, e.g. 550km"),
            std::string::npos);
  EXPECT_NE(message_of(parse_distance("-5km").status()).find("negative distance"),
            std::string::npos);
  EXPECT_FALSE(parse_distance("5KM").ok());  // units are case-sensitive
  // Heights may be below the ellipsoid: negative where the caller allows it.
  EXPECT_EQ(parse_distance("-430m", true)->m, -430.0);
  EXPECT_EQ(parse_distance("-0.5km", true)->m, -500.0);
}

TEST(quantities, a_bare_zero_needs_no_unit) {
  // Zero is zero in every unit (`memory_limit: 0`); any other bare number
  // still needs one.
  for (const char* zero : {"0", "0.0", " 0 ", "0e5"}) {
    ASSERT_TRUE(parse_duration(zero).ok()) << zero;
    EXPECT_EQ(parse_duration(zero)->ns(), 0) << zero;
    EXPECT_EQ(parse_distance(zero)->m, 0.0) << zero;
    EXPECT_EQ(parse_angle(zero)->deg, 0.0) << zero;
    EXPECT_EQ(parse_data_size(zero)->bytes, 0u) << zero;
    EXPECT_EQ(parse_data_rate(zero)->bps, 0.0) << zero;
  }
  EXPECT_FALSE(parse_data_size("1").ok());
  EXPECT_FALSE(parse_duration("0.5").ok());
}

TEST(parse_angle, degrees_radians_and_sign) {
  EXPECT_DOUBLE_EQ(parse_angle("53deg")->deg, 53.0);
  EXPECT_DOUBLE_EQ(parse_angle("-10.5deg")->deg, -10.5);
  EXPECT_NEAR(parse_angle("3.141592653589793rad")->deg, 180.0, 1e-12);
  EXPECT_NEAR(parse_angle("90deg")->rad(), M_PI / 2, 1e-15);
  EXPECT_FALSE(parse_angle("53").ok());
  EXPECT_FALSE(parse_angle("53degrees").ok());
  // Finite in radians, infinite in degrees.
  EXPECT_NE(message_of(parse_angle("1e307rad").status()).find("angle out of range"),
            std::string::npos);
  EXPECT_NE(message_of(parse_angle("1e309deg").status()).find("angle out of range"),
            std::string::npos);
}

TEST(parse_data_size, decimal_binary_and_bit_units) {
  struct row {
    const char* text;
    std::uint64_t bytes;
  };
  const row rows[] = {
      {"1B", 1},          {"1kB", 1'000},          {"1.5kB", 1'500},
      {"2MB", 2'000'000}, {"1GB", 1'000'000'000},  {"1TB", 1'000'000'000'000},
      {"1KiB", 1'024},    {"1.5KiB", 1'536},       {"64MiB", 64ull << 20},
      {"1GiB", 1ull << 30}, {"2TiB", 2ull << 40},  {"8b", 1},
      {"16kb", 2'000},    {"1Mb", 125'000},        {"1Gb", 125'000'000},
      {"0B", 0},
  };
  for (const auto& r : rows) {
    auto s = parse_data_size(r.text);
    ASSERT_TRUE(s.ok()) << r.text << ": " << s.status();
    EXPECT_EQ(s->bytes, r.bytes) << r.text;
  }
  EXPECT_NE(message_of(parse_data_size("12b").status()).find("not a whole number of bytes"),
            std::string::npos);
  EXPECT_NE(message_of(parse_data_size("0.5B").status()).find("not a whole number of bytes"),
            std::string::npos);
  EXPECT_NE(message_of(parse_data_size("-1kB").status()).find("negative data size"),
            std::string::npos);
  EXPECT_NE(message_of(parse_data_size("1kiB").status()).find("unknown unit 'kiB'"),
            std::string::npos);
  EXPECT_FALSE(parse_data_size("100000000TiB").ok());  // beyond 2^64 bytes
  // A long unit is shown by its start and its length.
  EXPECT_EQ(message_of(parse_data_size("5" + std::string(100, 'x')).status()),
            "unknown unit '" + std::string(60, 'x') + "...' (100 bytes) for a data size; "
            "expected one of B, kB, MB, GB, TB, KiB, MiB, GiB, TiB; bits: b, kb, Mb, Gb");
}

// A size unit where a rate is due, or the other way round, gets a hint.
TEST(parse_quantity, a_size_unit_for_a_rate_and_back_is_pointed_out) {
  EXPECT_EQ(message_of(parse_data_rate("10Mb").status()),
            "unknown unit 'Mb' for a data rate; expected one of bps, kbps, Mbps, Gbps, Tbps, Bps, "
            "kBps, MBps, GBps, TBps (did you mean 'Mbps'?)");
  EXPECT_NE(message_of(parse_data_rate("10GB").status()).find("(did you mean 'GBps'?)"),
            std::string::npos);
  EXPECT_NE(message_of(parse_data_size("10Mbps").status()).find("(did you mean 'Mb'?)"),
            std::string::npos);
  EXPECT_EQ(message_of(parse_data_rate("10Mx").status()).find("did you mean"), std::string::npos);
}

TEST(parse_data_rate, bit_and_byte_units) {
  EXPECT_EQ(parse_data_rate("10Gbps")->bps, 1e10);
  EXPECT_EQ(parse_data_rate("1.5Mbps")->bps, 1.5e6);
  EXPECT_EQ(parse_data_rate("100kbps")->bps, 1e5);
  EXPECT_EQ(parse_data_rate("2Tbps")->bps, 2e12);
  EXPECT_EQ(parse_data_rate("9600bps")->bps, 9600.0);
  EXPECT_EQ(parse_data_rate("1MBps")->bps, 8e6);
  EXPECT_EQ(parse_data_rate("3Bps")->bps, 24.0);
  EXPECT_EQ(parse_data_rate("0.1Gbps")->bps, 1e8);
  EXPECT_NE(message_of(parse_data_rate("10gbps").status()).find("unknown unit 'gbps' for a data rate"),
            std::string::npos);
  EXPECT_FALSE(parse_data_rate("10").ok());
  EXPECT_FALSE(parse_data_rate("-1bps").ok());
  // Finite in bytes per second, infinite in bits.
  EXPECT_NE(message_of(parse_data_rate("1e308Bps").status()).find("data rate out of range"),
            std::string::npos);
  EXPECT_EQ(parse_data_rate("1e307Bps")->bps, 8e307);
}

TEST(quantity_to_string, canonical_forms) {
  EXPECT_EQ(to_string(distance{550'000}), "550km");
  EXPECT_EQ(to_string(distance{1'500}), "1.5km");
  EXPECT_EQ(to_string(distance{12.5}), "12.5m");
  EXPECT_EQ(to_string(distance{0}), "0m");
  EXPECT_EQ(to_string(angle{53}), "53deg");
  EXPECT_EQ(to_string(angle{-0.5}), "-0.5deg");
  EXPECT_EQ(to_string(data_rate{1e10}), "10Gbps");
  EXPECT_EQ(to_string(data_rate{1.5e9}), "1.5Gbps");
  EXPECT_EQ(to_string(data_rate{500}), "500bps");
  EXPECT_EQ(to_string(data_rate{2e12}), "2Tbps");
  EXPECT_EQ(to_string(data_size{1'000}), "1kB");
  EXPECT_EQ(to_string(data_size{1'024}), "1KiB");
  EXPECT_EQ(to_string(data_size{1'500}), "1.5kB");
  EXPECT_EQ(to_string(data_size{1'536}), "1.5KiB");
  EXPECT_EQ(to_string(data_size{64ull << 20}), "64MiB");
  EXPECT_EQ(to_string(data_size{999}), "999B");
  EXPECT_EQ(to_string(data_size{0}), "0B");
}

TEST(quantity_to_string, round_trips_exactly) {
  for (double m : {0.1, 1234.5678, 6'371'000.0, 1e-3, 42.0, 0.30000000000000004, 1e20}) {
    EXPECT_EQ(parse_distance(to_string(distance{m}))->m, m) << to_string(distance{m});
  }
  for (double deg : {53.0, -97.6, 0.1, 1.0 / 3.0}) {
    EXPECT_EQ(parse_angle(to_string(angle{deg}))->deg, deg) << to_string(angle{deg});
  }
  for (double bps : {1e10, 123456789.125, 0.5, 1.0 / 3.0, 3e15}) {
    EXPECT_EQ(parse_data_rate(to_string(data_rate{bps}))->bps, bps) << to_string(data_rate{bps});
  }
  const std::uint64_t sizes[] = {1, 1023, 1537, 123456789, std::uint64_t{1} << 50,
                                 std::numeric_limits<std::uint64_t>::max()};
  for (std::uint64_t b : sizes) {
    EXPECT_EQ(parse_data_size(to_string(data_size{b}))->bytes, b) << to_string(data_size{b});
  }
}

} // namespace
} // namespace satemu::runtime
