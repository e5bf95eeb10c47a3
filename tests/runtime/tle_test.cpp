// Tests of the TLE parser: fields, line forms, and the errors bad input gives.
#include "runtime/tle.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

namespace satemu::runtime {
namespace {

// A real set from the 2026 CelesTrak Starlink snapshot.
constexpr const char* name0 = "STARLINK-1008";
constexpr const char* line1 = "1 44714U 19074B   26054.54089312  .00000969  00000+0  43797-4 0  9997";
constexpr const char* line2 = "2 44714  53.1568 244.5638 0001273  95.0474 265.0672 15.31036083346702";

std::string three_line(const std::string& l1 = line1, const std::string& l2 = line2) {
  return std::string(name0) + "\n" + l1 + "\n" + l2 + "\n";
}

// Replaces column 69 by the correct checksum of columns 1-68.
std::string with_checksum(std::string line) {
  line.resize(69, ' ');
  line[68] = static_cast<char>('0' + tle_checksum(line));
  return line;
}

// `line` with columns [first, first + text.size()) (1-based) replaced and
// the checksum fixed, so that only the field is wrong.
std::string with_field(std::string line, int first, const std::string& text) {
  line.replace(first - 1, text.size(), text);
  return with_checksum(line);
}

// Older snapshots (2022, LF line ends) that the SGP4 reference tests use; the
// 2026 one is in scenarios/tle/.
std::string test_tle_dir() { return SATEMU_SOURCE_DIR "/tests/runtime/data/tle/"; }

TEST(TleParse, ReadsEveryField) {
  auto sets = parse_tle_text(three_line(), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 1u);
  const tle& t = sets->front();
  EXPECT_EQ(t.name, "STARLINK-1008");
  EXPECT_EQ(t.catalog_number, 44714);
  EXPECT_EQ(t.classification, 'U');
  EXPECT_EQ(t.international_designator, "19074B");
  EXPECT_EQ(t.epoch_year, 2026);
  EXPECT_DOUBLE_EQ(t.epoch_day, 54.54089312);
  EXPECT_DOUBLE_EQ(t.ndot, 0.00000969);
  EXPECT_DOUBLE_EQ(t.nddot, 0.0);
  EXPECT_DOUBLE_EQ(t.bstar, 0.43797e-4);
  EXPECT_DOUBLE_EQ(t.inclination_deg, 53.1568);
  EXPECT_DOUBLE_EQ(t.raan_deg, 244.5638);
  EXPECT_DOUBLE_EQ(t.eccentricity, 0.0001273);
  EXPECT_DOUBLE_EQ(t.arg_perigee_deg, 95.0474);
  EXPECT_DOUBLE_EQ(t.mean_anomaly_deg, 265.0672);
  EXPECT_DOUBLE_EQ(t.mean_motion_rev_per_day, 15.31036083);
  EXPECT_EQ(t.element_set_number, 999);
  EXPECT_EQ(t.revolution_number, 34670);
  EXPECT_EQ(t.source, "a.tle");
  EXPECT_EQ(t.line, 2);
  EXPECT_EQ(t.label(), "STARLINK-1008 (44714)");
}

TEST(TleParse, EpochMatchesReference) {
  auto sets = parse_tle_text(three_line(), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  const tle& t = sets->front();
  // python3-sgp4: jdsatepoch = 2461094.5, jdsatepochF = 0.54089312.
  EXPECT_EQ(t.epoch_jd_midnight(), 2461094.5);
  EXPECT_NEAR(t.epoch_day_fraction(), 0.54089312, 1e-12);
  EXPECT_NEAR(t.epoch_jd(), 2461094.5 + 0.54089312, 1e-9);
  // 2026-02-23 12:58:53.165568 UTC.
  EXPECT_EQ(t.epoch_unix_ns(), 1771851533165568000);
}

TEST(TleParse, ExponentFieldsAndSigns) {
  std::string l1 = with_field(line1, 34, "-.00100842");
  l1 = with_field(l1, 45, "-12345-6");
  l1 = with_field(l1, 54, "-26648+1");
  auto sets = parse_tle_text(three_line(l1), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  const tle& t = sets->front();
  EXPECT_DOUBLE_EQ(t.ndot, -0.00100842);
  EXPECT_DOUBLE_EQ(t.nddot, -0.12345e-6);
  EXPECT_DOUBLE_EQ(t.bstar, -2.6648);
}

TEST(TleParse, TwoDigitYears) {
  auto sets = parse_tle_text(three_line(with_field(line1, 19, "57")), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->front().epoch_year, 1957);
  sets = parse_tle_text(three_line(with_field(line1, 19, "56")), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->front().epoch_year, 2056);
}

TEST(TleParse, LineFormsAndLineEnds) {
  // 2-line sets, CRLF and CR CR LF ends, trailing blanks, blank lines, and a
  // "0 NAME" 3LE name line.
  const std::string text = std::string(line1) + "\r\n" + line2 + "   \r\n\r\n" + "0 STARLINK-X   \r\r\n" + line1 +
                           "\r\r\n" + line2 + "\r\r\n";
  auto sets = parse_tle_text(text, "b.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 2u);
  EXPECT_EQ((*sets)[0].name, "");
  EXPECT_EQ((*sets)[0].label(), "44714");
  EXPECT_EQ((*sets)[0].line, 1);
  EXPECT_EQ((*sets)[1].name, "STARLINK-X");
  EXPECT_EQ((*sets)[1].line, 5);
  EXPECT_DOUBLE_EQ((*sets)[1].mean_motion_rev_per_day, 15.31036083);

  auto empty = parse_tle_text("\n  \n", "c.tle");
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());

  // Classic Mac line ends (CR alone), and a UTF-8 byte order mark before a
  // 2-line or a 3-line file.
  for (const std::string& t : {std::string(name0) + "\r" + line1 + "\r" + line2 + "\r",
                               "\xEF\xBB\xBF" + std::string(line1) + "\n" + line2 + "\n",
                               "\xEF\xBB\xBF" + three_line()}) {
    sets = parse_tle_text(t, "d.tle");
    ASSERT_TRUE(sets.ok()) << sets.status();
    ASSERT_EQ(sets->size(), 1u);
    EXPECT_TRUE(sets->front().name.empty() || sets->front().name == name0) << sets->front().name;
    EXPECT_EQ(sets->front().catalog_number, 44714);
  }
}

TEST(TleParse, AlphaFiveCatalogNumbers) {
  auto sets = parse_tle_text(three_line(with_field(line1, 3, "A0001"), with_field(line2, 3, "A0001")), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->front().catalog_number, 100001);
  sets = parse_tle_text(three_line(with_field(line1, 3, "Z9999"), with_field(line2, 3, "Z9999")), "a.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  EXPECT_EQ(sets->front().catalog_number, 339999);
}

TEST(TleChecksum, CountsDigitsAndMinus) {
  EXPECT_EQ(tle_checksum(line1), 7);
  EXPECT_EQ(tle_checksum(line2), 2);
  EXPECT_EQ(tle_checksum("1-"), 2);
  EXPECT_EQ(tle_checksum("abc+ ."), 0);
}

// Every error names the source and the line, then what is wrong.
void expect_error(const std::string& text, const std::string& where, const std::string& what) {
  auto sets = parse_tle_text(text, "bad.tle");
  ASSERT_FALSE(sets.ok()) << "accepted:\n" << text;
  EXPECT_EQ(sets.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(sets.status().message());
  EXPECT_NE(message.find(where), std::string::npos) << message;
  EXPECT_NE(message.find(what), std::string::npos) << message;
  EXPECT_EQ(std::string(sets.status().message()).rfind("bad.tle:", 0), 0u) << sets.status();
}

TEST(TleErrors, WrongChecksum) {
  std::string l2 = line2;
  l2[68] = '7';
  expect_error(three_line(line1, l2), "bad.tle:3: ", "checksum is 7, computed 2");
  std::string l1 = line1;
  l1[40] = '8';  // a changed digit, checksum left as it was
  expect_error(three_line(l1), "bad.tle:2: ", "checksum is 7, computed 6");
}

TEST(TleErrors, WrongLength) {
  expect_error(three_line(std::string(line1).substr(0, 68)), "bad.tle:2: ", "68 characters long, expected 69");
  expect_error(three_line(line1, std::string(line2) + "0"), "bad.tle:3: ", "70 characters long, expected 69");
}

TEST(TleErrors, BadFields) {
  expect_error(three_line(line1, with_field(line2, 9, " 53.15x8")), "bad.tle:3: ",
               "columns 9-16 (inclination): ' 53.15x8' is not a number");
  expect_error(three_line(line1, with_field(line2, 27, "00a1273")), "bad.tle:3: ", "columns 27-33 (eccentricity)");
  expect_error(three_line(line1, with_field(line2, 53, "-5.31036083")), "bad.tle:3: ", "mean motion");
  expect_error(three_line(line1, with_field(line2, 9, "253.1568")), "bad.tle:3: ", "outside [0, 180]");
  // The value as written, not rounded to 180.
  expect_error(three_line(line1, with_field(line2, 9, "180.0001")), "bad.tle:3: ",
               "columns 9-16 (inclination): 180.0001 deg is outside [0, 180]");
  expect_error(three_line(with_field(line1, 21, "054.5408x312")), "bad.tle:2: ", "columns 21-32 (epoch day)");
  expect_error(three_line(with_field(line1, 54, " 4379x-4")), "bad.tle:2: ", "columns 54-61 (B* drag term)");
  expect_error(three_line(with_field(line1, 45, " 00000*0")), "bad.tle:2: ", "second derivative of mean motion");
  expect_error(three_line(with_field(line1, 19, "2x")), "bad.tle:2: ", "epoch year");
  // A signed year had read as 1995.
  expect_error(three_line(with_field(line1, 19, "-5")), "bad.tle:2: ",
               "(epoch year): '-5' is not a whole number");
  expect_error(three_line(with_field(line1, 3, "44a14")), "bad.tle:2: ", "catalog number");
  expect_error(three_line(with_field(line1, 33, "x")), "bad.tle:2: ", "column 33 must be blank");
}

TEST(TleErrors, MissingOrMisplacedLines) {
  expect_error(std::string(name0) + "\n" + line1 + "\n", "bad.tle:2: ", "line 2 of catalog number 44714 is missing");
  expect_error(std::string(name0) + "\n" + line1 + "\n" + name0 + "\n" + line1 + "\n" + line2 + "\n", "bad.tle:3: ",
               "line 2 of catalog number 44714 is missing (found 'STARLINK-1008')");
  expect_error(std::string(name0) + "\n" + line2 + "\n", "bad.tle:2: ",
               "expected TLE line 1 (starting '1 ') after name line 'STARLINK-1008', found '2 44714");
  expect_error(three_line() + line2 + "\n", "bad.tle:4: ", "found TLE line 2 without a line 1");
  expect_error(std::string(name0) + "\n", "bad.tle:1: ", "not followed by TLE line 1");
  expect_error(std::string(name0) + "\nSTARLINK-2\n" + line1 + "\n" + line2 + "\n", "bad.tle:2: ",
               "expected TLE line 1");
  std::string l2 = line2;
  l2[0] = '3';
  expect_error(three_line(line1, l2), "bad.tle:3: ", "line 2 of catalog number 44714 is missing (found '3 44714");
  // A file that is not TLE text at all (one long line of JSON) is shown by
  // its start, not whole.
  const std::string json = "{\"sats\": [" + std::string(10'000, '1') + "]}";
  expect_error(json + "\n", "bad.tle:1: ",
               "name line '" + json.substr(0, 60) + "...' (10012 bytes) is not followed by TLE line 1");
}

// Day 366 exists only in leap years (2024 yes, 2026 no).
TEST(TleErrors, EpochDayBeyondTheYear) {
  EXPECT_TRUE(parse_tle_text(three_line(with_field(line1, 19, "24366.50000000")), "a.tle").ok());
  expect_error(three_line(with_field(line1, 19, "26366.50000000")), "bad.tle:2: ",
               "columns 21-32 (epoch day): 366.5 is not a day of 2026 (in [1, 366))");
}

TEST(TleErrors, CatalogMismatch) {
  expect_error(three_line(line1, with_field(line2, 3, "44715")), "bad.tle:3: ",
               "catalog number 44715 on line 2 does not match 44714 on line 1");
}

TEST(TleErrors, ErrorsNameTheLineInLongerFiles) {
  std::string text = three_line() + three_line() + three_line(line1, with_field(line2, 27, "00a1273"));
  expect_error(text, "bad.tle:9: ", "eccentricity");
}

TEST(TleLoad, MissingFileIsNotFound) {
  auto sets = load_tle_file("/nonexistent/dir/x.tle");
  ASSERT_FALSE(sets.ok());
  EXPECT_EQ(sets.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(std::string(sets.status().message()).find("/nonexistent/dir/x.tle"), std::string::npos);
  EXPECT_NE(std::string(sets.status().message()).find("No such file or directory"),
            std::string::npos)
      << sets.status();
  // A relative path says where it was looked up from.
  const std::string cwd = std::filesystem::current_path().string();
  sets = load_tle_file("no-such-dir/x.tle");
  ASSERT_FALSE(sets.ok());
  EXPECT_NE(std::string(sets.status().message()).find("looked up from " + cwd), std::string::npos)
      << sets.status();
}

TEST(TleLoad, ADirectoryOrAFileWithoutSetsIsNamed) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("satemu_tle_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto sets = load_tle_file(dir.string());
  ASSERT_FALSE(sets.ok());
  EXPECT_EQ(sets.status().message(), dir.string() + ": is a directory, not a TLE file");
  const auto empty = dir / "empty.tle", blank = dir / "blank.tle";
  std::ofstream(empty).flush();
  std::ofstream(blank) << "\n   \n";
  sets = load_tle_file(empty.string());
  ASSERT_FALSE(sets.ok());
  EXPECT_EQ(sets.status().message(), empty.string() + ": holds no TLE element sets (empty file)");
  sets = load_tle_file(blank.string());
  ASSERT_FALSE(sets.ok());
  EXPECT_EQ(sets.status().message(), blank.string() + ": holds no TLE element sets (blank lines only)");
  std::filesystem::remove_all(dir);
}

TEST(TleLoad, TheScenariosSnapshotLoads) {
  auto sets = load_tle_file(SATEMU_SOURCE_DIR "/scenarios/tle/starlink-2026-02-24.tle");
  ASSERT_TRUE(sets.ok()) << sets.status();
  ASSERT_EQ(sets->size(), 9'594u);
  EXPECT_EQ(sets->front().name, "STARLINK-1008");
  EXPECT_EQ(sets->back().line, 3 * 9'594 - 1);
}

TEST(TleLoad, OlderSnapshotsLoad) {
  const struct {
    const char* file;
    std::size_t count;
  } files[] = {
      {"StarryNet_Starlink.tle", 3023},
      {"StarryNet_OneWeb.tle", 426},
  };
  for (const auto& f : files) {
    auto sets = load_tle_file(test_tle_dir() + f.file);
    ASSERT_TRUE(sets.ok()) << sets.status();
    EXPECT_EQ(sets->size(), f.count) << f.file;
    EXPECT_FALSE(sets->front().name.empty()) << f.file;
    EXPECT_EQ(sets->back().line, static_cast<int>(3 * f.count - 1)) << f.file;
  }
}

}  // namespace
}  // namespace satemu::runtime
