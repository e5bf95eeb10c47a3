// Tests for runtime/scenario: loading, strict validation, overrides, and
// the resolved output.
#include "runtime/scenario.hpp"

#include <cstdio>
#include <cstdlib>
#include <new>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "runtime/schema.hpp"
#include "tests/address_space_limit.hpp"

namespace satemu::runtime {
namespace {

// Real workloads live in actors/; the tests register a kind of their own.
void register_test_kind() {
  register_workload_kind(
      "test_kind", "A workload kind for the scenario tests",
      {
          key_spec::integer("requests", "10", "Requests per user").at_least(1),
          key_spec::dur("interval", "100ms", "Time between requests").above(0),
          key_spec::size("prompt_size", "4KiB", "Prompt size"),
          key_spec::rate("rate", "1Gbps", "Link rate"),
          key_spec::dist("altitude", "550km", "Altitude"),
          key_spec::ang("tilt", "53deg", "Tilt").at_least(0).at_most(90),
          key_spec::choice("mode", {"a", "b"}, "a", "Mode"),
          key_spec::real("ratio", "0.5", "Ratio").at_least(0).at_most(1),
          key_spec::boolean("enabled", "true", "Enabled"),
          key_spec::list("tags", value_type::string, "Tags"),
          key_spec::list_of_maps("users", "Users",
                                 {key_spec::text("name", "", "User name").mandatory(),
                                  key_spec::real("weight", "1", "Weight").above(0)}),
          key_spec::text("note", "", "Optional note, absent by default"),
      });
}

class scenario_test : public ::testing::Test {
protected:
  void SetUp() override { register_test_kind(); }
};

const char* const minimal = R"(name: mini
duration: 10s
workload: {kind: test_kind}
)";

std::string data_file(const std::string& name) {
  return std::string(SATEMU_SOURCE_DIR) + "/tests/runtime/data/" + name;
}

std::string msg(const absl::Status& s) { return std::string(s.message()); }

// Loads `yaml` as "inline.yaml" and expects an InvalidArgument error whose
// message contains every part.
void expect_error(const std::string& yaml, std::initializer_list<std::string> parts,
                  const std::vector<std::string>& overrides = {}) {
  auto s = load_scenario_text(yaml, "inline.yaml", overrides);
  ASSERT_FALSE(s.ok()) << "loaded:\n" << yaml;
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << s.status();
  for (const auto& p : parts) {
    EXPECT_NE(msg(s.status()).find(p), std::string::npos)
        << "'" << p << "' not in: " << s.status().message();
  }
}

TEST_F(scenario_test, minimal_scenario_gets_every_default) {
  auto s = load_scenario_text(minimal, "inline.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->source_name(), "inline.yaml");
  EXPECT_EQ(s->get_string("name"), "mini");
  EXPECT_EQ(s->get_int("seed"), 1);
  EXPECT_EQ(s->get_string("clock.mode"), "virtual");
  EXPECT_EQ(s->get_real("clock.dilation"), 1.0);
  EXPECT_EQ(s->get_duration("duration"), seconds(10));
  EXPECT_EQ(s->get_int("threads"), 0);
  EXPECT_EQ(s->get_string("output.dir"), "");
  EXPECT_FALSE(s->get_bool("output.trace"));
  EXPECT_EQ(s->get_string("output.progress"), "auto");
  EXPECT_EQ(s->get_string("workload.kind"), "test_kind");
  EXPECT_EQ(s->get_int("workload.requests"), 10);
  EXPECT_EQ(s->get_duration("workload.interval"), milliseconds(100));
  EXPECT_EQ(s->get_data_size("workload.prompt_size").bytes, 4096u);
  EXPECT_EQ(s->get_data_rate("workload.rate").bps, 1e9);
  EXPECT_EQ(s->get_distance("workload.altitude").m, 550'000.0);
  EXPECT_EQ(s->get_angle("workload.tilt").deg, 53.0);
  EXPECT_EQ(s->get_string("workload.mode"), "a");
  EXPECT_EQ(s->get_real("workload.ratio"), 0.5);
  EXPECT_TRUE(s->get_bool("workload.enabled"));
  EXPECT_EQ(s->list_size("workload.tags"), 0u);
  EXPECT_EQ(s->list_size("workload.users"), 0u);
  EXPECT_FALSE(s->has("workload.note"));
  EXPECT_TRUE(s->has("clock"));
  EXPECT_FALSE(s->has("clock.speed"));
}

TEST_F(scenario_test, departs_from_default_tells_set_values_from_defaults) {
  auto s = load_scenario_text(minimal, "inline.yaml",
                              {"workload.requests=3", "workload.interval=100ms", "seed=2"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->departs_from_default("name"));              // no default
  EXPECT_TRUE(s->departs_from_default("workload"));          // a map with a key that departs
  EXPECT_TRUE(s->departs_from_default("workload.requests")); // --set, not the default
  EXPECT_TRUE(s->departs_from_default("seed"));
  EXPECT_FALSE(s->departs_from_default("workload.interval")); // --set to the default
  EXPECT_FALSE(s->departs_from_default("workload.ratio"));    // defaults
  EXPECT_FALSE(s->departs_from_default("clock"));             // a map of defaults
  EXPECT_FALSE(s->departs_from_default("workload.tags"));     // a list left at its default
  EXPECT_FALSE(s->departs_from_default("workload.note"));     // absent
  // The resolved text gives every key, and the same ones depart.
  auto r = load_scenario_text(s->resolved_yaml(), "resolved.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  for (const char* key : {"name", "workload", "workload.requests", "seed", "workload.interval",
                          "workload.ratio", "clock", "workload.tags", "workload.note"})
    EXPECT_EQ(r->departs_from_default(key), s->departs_from_default(key)) << key;
  // Equal values in another spelling do not depart either.
  auto t = load_scenario_text(minimal, "inline.yaml", {"workload.interval=0.1s", "seed=1"});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_FALSE(t->departs_from_default("workload.interval"));
  EXPECT_FALSE(t->departs_from_default("seed"));
  auto u = load_scenario_text(minimal, "inline.yaml", {"workload.tags=[x]"});
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_TRUE(u->departs_from_default("workload.tags"));
}

TEST_F(scenario_test, full_file_reads_every_value) {
  auto s = load_scenario_file(data_file("full.yaml"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->source_name(), data_file("full.yaml"));
  EXPECT_EQ(s->get_int("seed"), 7);
  EXPECT_EQ(s->get_string("clock.mode"), "realtime");
  EXPECT_EQ(s->get_real("clock.dilation"), 2.5);
  EXPECT_EQ(s->get_duration("duration"), seconds(90));
  EXPECT_EQ(s->get_int("threads"), 4);
  EXPECT_EQ(s->get_string("output.dir"), "out/full");
  EXPECT_TRUE(s->get_bool("output.trace"));
  EXPECT_EQ(s->get_string("output.progress"), "off");
  EXPECT_EQ(s->get_duration("workload.interval"), microseconds(250));
  EXPECT_EQ(s->get_data_size("workload.prompt_size").bytes, 1536u);
  EXPECT_EQ(s->get_data_rate("workload.rate").bps, 1e10);
  EXPECT_EQ(s->get_string("workload.mode"), "b");
  EXPECT_FALSE(s->get_bool("workload.enabled"));
  ASSERT_EQ(s->list_size("workload.tags"), 2u);
  EXPECT_EQ(s->get_string("workload.tags.1"), "beta");
  ASSERT_EQ(s->list_size("workload.users"), 2u);
  EXPECT_EQ(s->get_string("workload.users.0.name"), "nyc");
  EXPECT_EQ(s->get_real("workload.users.0.weight"), 2.0);
  EXPECT_EQ(s->get_string("workload.users.1.name"), "london");
  EXPECT_EQ(s->get_real("workload.users.1.weight"), 1.0);  // element default
  EXPECT_FALSE(s->has("workload.users.2"));
}

TEST_F(scenario_test, unknown_key_is_named_with_position_and_suggestion) {
  expect_error("name: x\nduration: 1s\nclokc: {mode: virtual}\nworkload: {kind: test_kind}\n",
               {"inline.yaml:3:1: clokc: unknown key 'clokc'", "did you mean 'clock'?"});
}

TEST_F(scenario_test, unknown_nested_key) {
  expect_error("name: x\nduration: 1s\nclock:\n  mode: virtual\n  speed: 2\n"
               "workload: {kind: test_kind}\n",
               {"inline.yaml:5:3: clock.speed: unknown key 'speed'"});
}

TEST_F(scenario_test, workload_keys_are_strict_for_the_kind) {
  expect_error("name: x\nduration: 1s\nworkload:\n  kind: test_kind\n  requets: 3\n",
               {"inline.yaml:5:3: workload.requets: unknown key 'requets' for workload kind "
                "'test_kind'",
                "did you mean 'requests'?"});
}

// A key written where it does not belong, that the schema has elsewhere, is
// suggested at its whole path, ahead of a near name that stands there
// ("dilation" is not a misspelt "duration").
TEST_F(scenario_test, a_key_given_in_the_wrong_place_is_suggested_where_it_is) {
  expect_error("name: x\nduration: 1s\ndilation: 2\nworkload: {kind: test_kind}\n",
               {"inline.yaml:3:1: dilation: unknown key 'dilation' (did you mean "
                "'clock.dilation'?)"});
  expect_error("name: x\nduration: 1s\nclock: {requests: 3}\nworkload: {kind: test_kind}\n",
               {"inline.yaml:3:9: clock.requests: unknown key 'requests' (did you mean "
                "'workload.requests'?)"});
  // Keys of list elements, and a name that several sections have.
  expect_error(minimal, {"unknown key 'weight' (did you mean 'workload.users.<i>.weight'?)"},
               {"weight=2"});
  expect_error(minimal, {"unknown key 'mode' (did you mean 'clock.mode' or 'workload.mode'?)"},
               {"mode=b"});
  // Only the keys of the workload's kind: explain_kind's, say, are not.
  expect_error("name: x\nduration: 1s\nworkload: {kind: test_kind, batch: 3}\n",
               {"workload.batch: unknown key 'batch' for workload kind 'test_kind'"});
  const auto batch = load_scenario_text(minimal, "inline.yaml", {"batch=3"});
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(msg(batch.status()), "--set batch: unknown key 'batch'");
}

// A --set suggests the whole path it may have meant, one that exists.
TEST_F(scenario_test, an_override_in_the_wrong_place_is_suggested_at_its_whole_path) {
  expect_error(minimal, {"--set dilation: unknown key 'dilation' (did you mean 'clock.dilation'?)"},
               {"dilation=2"});
  expect_error(minimal,
               {"--set users.0.weight: unknown key 'users.0.weight' (did you mean "
                "'workload.users.0.weight'?)"},
               {"users.0.weight=2"});
  expect_error(minimal, {"--set clock.requests: unknown key 'clock.requests' (did you mean "
                         "'workload.requests'?)"},
               {"clock.requests=2"});
  // The rest of the path leads nowhere from clock.mode.
  const auto s = load_scenario_text(minimal, "inline.yaml", {"mode.x=1"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(msg(s.status()), "--set mode.x: unknown key 'mode.x'");
}

// A path that goes on past a value says what the value is.
TEST_F(scenario_test, an_override_past_a_value_says_it_has_no_keys) {
  const auto s = load_scenario_text(minimal, "inline.yaml", {"clock.dilation.x=1"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(msg(s.status()), "--set clock.dilation.x: unknown key 'clock.dilation.x' "
                             "(clock.dilation is a value, not a map: a positive real number)");
  expect_error(minimal,
               {"(workload.users.0.weight is a value, not a map: a positive real number)"},
               {"workload.users.0.weight.x=1"});
}

TEST_F(scenario_test, unknown_workload_kind) {
  expect_error("name: x\nduration: 1s\nworkload: {kind: test_knd}\n",
               {"inline.yaml:3:18: workload.kind: expected one of", "test_kind",
                "did you mean 'test_kind'?"});
}

TEST_F(scenario_test, wrong_type) {
  expect_error("name: x\nseed: abc\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:7: seed: expected a non-negative integer, got 'abc'"});
  expect_error("name: x\nseed: 9223372036854775808\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:7: seed: expected a non-negative integer; integers end at "
                "9223372036854775807 (got '9223372036854775808')"});
  expect_error("name: x\nclock: 5\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:8: clock: expected a map, got '5'"});
  expect_error("name: x\nduration: 1s\noutput: {trace: maybe}\nworkload: {kind: test_kind}\n",
               {"inline.yaml:3:17: output.trace: expected true or false, got 'maybe'"});
  expect_error("name: [a, b]\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:1:7: name: expected a string, got a list"});
  expect_error("name: x\nduration: 1s\nworkload: {kind: test_kind, tags: abc}\n",
               {"inline.yaml:3:35: workload.tags: expected a list, got 'abc'"});
}

TEST_F(scenario_test, bad_unit) {
  auto s = load_scenario_file(data_file("bad_unit.yaml"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(msg(s.status()).find(data_file("bad_unit.yaml") +
                                 ":2:11: duration: unknown unit 'parsecs' for a duration; "
                                 "expected one of ns, us, ms, s, min, h (got '5parsecs')"),
            std::string::npos)
      << s.status();
}

TEST_F(scenario_test, negative_duration) {
  expect_error("name: x\nduration: -5s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:11: duration: negative duration"});
}

TEST_F(scenario_test, out_of_range_values) {
  expect_error("name: x\nclock:\n  mode: realtime\n  dilation: -1\nduration: 1s\n"
               "workload: {kind: test_kind}\n",
               {"inline.yaml:4:13: clock.dilation: expected a positive real number, got '-1'"});
  expect_error("name: x\nduration: 0s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:11: duration: expected a positive duration, got '0s'"});
  expect_error("name: x\nduration: 1s\nworkload:\n  kind: test_kind\n  tilt: 100deg\n",
               {"inline.yaml:5:9: workload.tilt: expected an angle in [0deg, 90deg], got '100deg'"});
  expect_error("name: x\nthreads: -2\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:2:10: threads: expected an integer in [0, 1024], got '-2'"});
  expect_error("name: x\nduration: 1s\noutput: {progress: sometimes}\nworkload: {kind: test_kind}\n",
               {"inline.yaml:3:20: output.progress: expected one of auto, on, off; got 'sometimes'"});
}

TEST_F(scenario_test, missing_required_key_points_at_the_parent) {
  expect_error("duration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:1:1: name: missing required key 'name'"});
  expect_error("name: x\nduration: 1s\nworkload:\n  requests: 3\n",
               {"inline.yaml:4:3: workload.kind: missing required key 'kind'"});
  expect_error("name: x\nduration: 1s\n", {"inline.yaml:1:1: workload: missing required key"});
  expect_error("name: x\nduration: 1s\nworkload:\n  kind: test_kind\n  users:\n"
               "    - {name: a}\n    - {weight: 2}\n",
               {"inline.yaml:7:7: workload.users.1.name: missing required key 'name'"});
}

// Text ends up in JSON, CSV and CZML outputs, which need UTF-8: a Latin-1
// name (or a --set value) is refused with where it is, not after the run.
TEST_F(scenario_test, text_that_is_not_utf8_is_refused_with_its_place) {
  expect_error("name: caf\xe9\nduration: 1s\nworkload: {kind: test_kind}\n",
               {"inline.yaml:1:10: not valid UTF-8 (byte 0xE9): save the scenario as UTF-8"});
  expect_error(minimal, {"--set name=caf: not valid UTF-8 (byte 0xE9 at offset 8)"},
               {"name=caf\xe9"});
  for (const char* bad : {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82"})
    expect_error(std::string("name: x") + bad + "\nduration: 1s\nworkload: {kind: test_kind}\n",
                 {"inline.yaml:1:8: not valid UTF-8"});
  auto ok = load_scenario_text("name: caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xb0\nduration: 1s\n"
                               "workload: {kind: test_kind}\n",
                               "inline.yaml");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->get_string("name"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x9b\xb0");
}

TEST_F(scenario_test, malformed_yaml) {
  expect_error("name: x\nduration: 1s\nworkload: {kind: test_kind\nseed: 3\n",
               {"inline.yaml:", "malformed YAML"});
  auto s = load_scenario_text("name: x\n  bad indent: 1\n", "inline.yaml");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(msg(s.status()).find("inline.yaml:2:"), std::string::npos) << s.status();
  EXPECT_EQ(msg(s.status()).find("tab"), std::string::npos) << s.status();
  // A tab in the indent is named: YAML's own message does not say so.
  expect_error("name: x\nduration: 1s\nworkload:\n\tkind: test_kind\n",
               {"inline.yaml:4:", "(line 4 is indented with a tab: YAML indents with spaces "
                                  "only)"});
  // Nesting past yaml-cpp's limit, which calls it a "bad file".
  const std::string deep = std::string(600, '[') + std::string(600, ']');
  expect_error(std::string(minimal) + "note: " + deep + "\n",
               {"inline.yaml:4:", "malformed YAML: nested 500 or more levels deep: too deep to "
                                  "read"});
  expect_error(minimal, {"--set workload.note: cannot read value '[[[", "]]]': nested 500 or "
                         "more levels deep: too deep to read"}, {"workload.note=" + deep});
}

// What follows '---' or '...' was ignored, even when malformed.
TEST_F(scenario_test, a_second_document_is_refused) {
  expect_error(std::string(minimal) + "---\nthreads: 9999\n",
               {"inline.yaml:5: a second YAML document"});
  expect_error(std::string(minimal) + "...\nthreads: 9999\n",
               {"inline.yaml:5: a second YAML document"});
  // One document may still be marked as such.
  EXPECT_TRUE(load_scenario_text(std::string("---\n") + minimal + "...\n", "inline.yaml").ok());
}

// A token no node starts with, where a node should start (a ',' outside
// brackets), is malformed YAML at its place. yaml-cpp 0.7 read such a text
// as an endless run of empty documents, taking hundreds of MB a second:
// `satemu validate` on a file holding a stray ',' ran until the system
// killed it. The loads run in a child under an address-space limit, so that
// a regression fails (out of memory) rather than takes the machine's.
TEST_F(scenario_test, a_stray_comma_is_malformed_yaml_not_an_endless_load) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizers map more address space than the limit this test sets";
#endif
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  const std::vector<std::tuple<std::string, std::vector<std::string>, std::string>> cases = {
    {",\n", {}, "inline.yaml:1:1: malformed YAML: unexpected ','"},
    {"&a ,\n", {}, "inline.yaml:1:4: malformed YAML: unexpected ','"},
    {"!x ,\n", {}, "inline.yaml:1:4: malformed YAML: unexpected ','"},
    {"# a comment\n,\nname: x\n", {}, "inline.yaml:2:1: malformed YAML: unexpected ','"},
    {std::string(minimal) + "...\n,\n", {}, "inline.yaml:5:1: malformed YAML: unexpected ','"},
    {minimal, {"name=,"}, "--set name: cannot read value ',': unexpected ','"},
  };
  auto load_limited = [&] {
    satemu::testing::limit_address_space(512u << 20);
    int wrong = 0;
    try {
      for (const auto& [yaml, sets, want] : cases) {
        auto s = load_scenario_text(yaml, "inline.yaml", sets);
        const std::string got = s.ok() ? "loaded" : s.status().ToString();
        if (s.ok() || s.status().code() != absl::StatusCode::kInvalidArgument ||
            s.status().message() != want) {
          std::fprintf(stderr, "want: %s\n got: %s\n", want.c_str(), got.c_str());
          ++wrong;
        }
      }
    } catch (const std::bad_alloc&) {
      std::fprintf(stderr, "out of memory: the load did not end\n");
      std::_Exit(9);
    }
    std::_Exit(wrong);
  };
  EXPECT_EXIT(load_limited(), ::testing::ExitedWithCode(0), "");
}

TEST_F(scenario_test, missing_file_is_not_found) {
  auto s = load_scenario_file(data_file("no_such_file.yaml"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(msg(s.status()), "cannot open scenario file '" + data_file("no_such_file.yaml") +
                                 "': No such file or directory");
}

TEST_F(scenario_test, empty_file) {
  auto s = load_scenario_file(data_file("empty.yaml"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(msg(s.status()).find(data_file("empty.yaml") + ":1:1: the scenario is empty"),
            std::string::npos)
      << s.status();
  expect_error("# just a comment\n", {"inline.yaml:1:1: the scenario is empty"});
  expect_error("- a\n- b\n", {"inline.yaml:1:1: expected a map"});
}

// A stray quote can make the rest of a file one key: the error shows the
// key's start and its length, not the file again (as path and as key).
TEST_F(scenario_test, a_long_key_or_value_is_clipped_in_the_error) {
  const std::string key(1000, 'k');  // YAML takes implicit keys up to 1024
  auto s = load_scenario_text("name: x\nduration: 1s\nworkload: {kind: test_kind}\n" + key +
                                  ": 1\n",
                              "inline.yaml");
  ASSERT_FALSE(s.ok());
  const std::string shown = key.substr(0, 60) + "...";
  EXPECT_EQ(msg(s.status()), "inline.yaml:4:1: " + shown + ": unknown key '" + shown +
                                 "' (1000 bytes)");
  expect_error("name: x\nseed: " + std::string(5000, '9') + "x\nduration: 1s\n"
               "workload: {kind: test_kind}\n",
               {"inline.yaml:2:7: seed: expected a non-negative integer, got '" +
                std::string(60, '9') + "...' (5001 bytes)"});
}

TEST_F(scenario_test, duplicate_keys) {
  expect_error("name: x\nseed: 1\nduration: 1s\nseed: 2\nworkload: {kind: test_kind}\n",
               {"inline.yaml:4:1: seed: duplicate key 'seed' (first at line 2)"});
}

TEST_F(scenario_test, overrides_replace_and_add_keys) {
  auto s = load_scenario_text(minimal, "inline.yaml",
                              {"clock.mode=realtime", "duration=2.5s", "threads=4",
                               "workload.requests=5", "workload.users=[{name: a}, {name: b}]",
                               "workload.users.1.name=c", "output.dir=", "name = spaced"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_string("clock.mode"), "realtime");
  EXPECT_EQ(s->get_duration("duration"), milliseconds(2500));
  EXPECT_EQ(s->get_int("threads"), 4);
  EXPECT_EQ(s->get_int("workload.requests"), 5);
  ASSERT_EQ(s->list_size("workload.users"), 2u);
  EXPECT_EQ(s->get_string("workload.users.1.name"), "c");
  EXPECT_EQ(s->get_string("output.dir"), "");
  EXPECT_EQ(s->get_string("name"), "spaced");

  auto flow = load_scenario_text(minimal, "inline.yaml", {"clock={mode: realtime, dilation: 3}"});
  ASSERT_TRUE(flow.ok()) << flow.status();
  EXPECT_EQ(flow->get_real("clock.dilation"), 3.0);
}

TEST_F(scenario_test, bad_overrides_name_the_set_option) {
  expect_error(minimal, {"--set clock.mode", "expected key.path=value"}, {"clock.mode"});
  expect_error(minimal, {"--set clock.bogus", "unknown key 'clock.bogus'"}, {"clock.bogus=1"});
  expect_error(minimal, {"--set clock.mod", "did you mean 'mode'?"}, {"clock.mod=realtime"});
  // A misspelt map on the way is the one named.
  expect_error(minimal, {"--set clok.mode", "did you mean 'clock'?"}, {"clok.mode=realtime"});
  expect_error(minimal, {"--set wrkload.requests", "did you mean 'workload'?"},
               {"wrkload.requests=3"});
  expect_error(minimal, {"--set workload.bogus", "unknown key"}, {"workload.bogus=1"});
  expect_error(minimal, {"--set nosuch.key"}, {"nosuch.key=1"});
  expect_error(minimal,
               {"--set clock.dilation=-1: clock.dilation: expected a positive real number, got '-1'"},
               {"clock.dilation=-1"});
  expect_error(minimal, {"--set duration=5parsecs: duration: unknown unit 'parsecs'"},
               {"duration=5parsecs"});
  expect_error(minimal, {"--set clock", "cannot read value"}, {"clock={mode: [}"});
  expect_error(minimal, {"--set =3"}, {"=3"});
  expect_error(minimal, {"--set workload.users.3.name", "no such list element"},
               {"workload.users.3.name=x"});
  expect_error(std::string(minimal) + "clock: [1, 2]\n",
               {"--set clock.mode: clock is a list in the scenario, where a map is expected"},
               {"clock.mode=realtime"});
  expect_error(minimal,
               {"--set workload.users.2.name: no such list element in the scenario "
                "(workload.users has 2)"},
               {"workload.users=[{name: a}, {name: b}]", "workload.users.2.name=x"});
  // A list index written 01 is item 1: a bad value is still this --set's.
  expect_error(minimal,
               {"--set workload.users.01.weight=-2: workload.users.1.weight: expected a positive"},
               {"workload.users=[{name: a}, {name: b}]", "workload.users.01.weight=-2"});
  // One value, one YAML document.
  expect_error(minimal,
               {"--set workload.note: the value holds 2 YAML documents ('---' starts one): give one "
                "value"},
               {"workload.note=a\n---\nb"});
}

TEST_F(scenario_test, resolved_yaml_round_trips) {
  for (const auto& source : {data_file("full.yaml")}) {
    auto first = load_scenario_file(source);
    ASSERT_TRUE(first.ok()) << first.status();
    const std::string& text = first->resolved_yaml();
    auto second = load_scenario_text(text, "resolved.yaml");
    ASSERT_TRUE(second.ok()) << second.status() << "\n" << text;
    EXPECT_EQ(second->resolved_yaml(), text);
    EXPECT_NE(text.find("duration: 90s"), std::string::npos) << text;
    EXPECT_NE(text.find("interval: 250us"), std::string::npos) << text;
    EXPECT_NE(text.find("prompt_size: 1.5KiB"), std::string::npos) << text;
    EXPECT_NE(text.find("rate: 10Gbps"), std::string::npos) << text;
    EXPECT_NE(text.find("altitude: 550km"), std::string::npos) << text;
    EXPECT_NE(text.find("tilt: 53deg"), std::string::npos) << text;
    EXPECT_NE(text.find("weight: 1"), std::string::npos) << text;  // default filled in list
  }
  auto mini = load_scenario_text(minimal, "inline.yaml", {"name=\"on: #odd\"", "output.dir="});
  ASSERT_TRUE(mini.ok()) << mini.status();
  EXPECT_EQ(mini->get_string("name"), "on: #odd");
  auto again = load_scenario_text(mini->resolved_yaml(), "resolved.yaml");
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << mini->resolved_yaml();
  EXPECT_EQ(again->resolved_yaml(), mini->resolved_yaml());
  EXPECT_EQ(again->get_string("name"), "on: #odd");
  EXPECT_NE(mini->resolved_yaml().find("seed: 1\n"), std::string::npos);
  EXPECT_NE(mini->resolved_yaml().find("dilation: 1\n"), std::string::npos);
}

TEST_F(scenario_test, registered_section_is_validated_and_optional) {
  register_section(key_spec::map("extra_section", "A section added by a later layer",
                                 {key_spec::dist("range", "100km", "Range").above(0)})
                       .optional_section());
  auto without = load_scenario_text(minimal, "inline.yaml");
  ASSERT_TRUE(without.ok()) << without.status();
  EXPECT_FALSE(without->has("extra_section"));
  auto with = load_scenario_text(std::string(minimal) + "extra_section: {}\n", "inline.yaml");
  ASSERT_TRUE(with.ok()) << with.status();
  EXPECT_EQ(with->get_distance("extra_section.range").m, 100'000.0);
  expect_error(std::string(minimal) + "extra_section: {range: 0km}\n",
               {"inline.yaml:4:24: extra_section.range: expected a positive distance"});
}

TEST_F(scenario_test, where_names_the_line_of_a_value_and_of_a_list_element) {
  auto s = load_scenario_text(R"(name: mini
duration: 10s
workload:
  kind: test_kind
  requests: 5
  tags:
    - a
    - b
  users:
    - {name: u}
    - name: v
)",
                              "inline.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->where("workload.requests"), "inline.yaml:5:13");
  EXPECT_EQ(s->where("workload.tags.1"), "inline.yaml:8:7");
  // A list item as a whole, for errors about several of its keys.
  EXPECT_EQ(s->where("workload.users.0"), "inline.yaml:10:7");
  EXPECT_EQ(s->where("workload.users.1"), "inline.yaml:11:7");
  // A default was given nowhere: just the file.
  EXPECT_EQ(s->where("workload.interval"), "inline.yaml");
  auto set = load_scenario_text(minimal, "inline.yaml",
                                {"workload.tags=[x, y]", "clock.dilation=2"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->where("workload.tags.0"), "--set workload.tags=[x, y]");
  // A map a --set made is where its key was set.
  EXPECT_EQ(set->where("clock"), "--set clock.dilation=2");
}

// yaml-cpp shares one node between an anchor and its aliases; an override
// changes the path it names and no other.
TEST_F(scenario_test, overrides_through_an_alias_change_only_their_path) {
  const std::string text = R"(name: mini
duration: 10s
workload:
  kind: test_kind
  requests: &n 5
  note: *n
  users:
    - &u {name: u, weight: 2}
    - *u
    - {name: w, weight: *n}
)";
  auto s = load_scenario_text(
    text, "inline.yaml",
    {"workload.requests=7", "workload.users.1.name=v", "workload.users.2.weight=3"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_int("workload.requests"), 7);
  EXPECT_EQ(s->get_string("workload.note"), "5");
  EXPECT_EQ(s->get_string("workload.users.0.name"), "u");
  EXPECT_EQ(s->get_string("workload.users.1.name"), "v");
  EXPECT_EQ(s->get_real("workload.users.1.weight"), 2.0);
  EXPECT_EQ(s->get_real("workload.users.2.weight"), 3.0);
  // The rest keeps its place in the file, the copied item's weight too.
  EXPECT_EQ(s->where("workload.users.0.name"), "inline.yaml:8:17");
  EXPECT_EQ(s->where("workload.users.1.weight"), "inline.yaml:8:28");
  EXPECT_EQ(s->where("workload.users.1.name"), "--set workload.users.1.name=v");
  // A value given by an alias is where its key is, not at the anchor.
  EXPECT_EQ(s->where("workload.note"), "inline.yaml:6:3");
  // So is an error in it: the anchor's value is good where it is written.
  expect_error("name: mini\nduration: 10s\nworkload:\n  kind: test_kind\n  note: &m -1\n"
               "  users: [{name: a, weight: *m}]\n",
               {"inline.yaml:6:21: workload.users.0.weight: expected a positive"});
}

// YAML's merge key: `<<: *a` adds the keys of map a that are not given,
// `<<: [*a, *b]` those of a before b's; a quoted "<<" is an ordinary key.
TEST_F(scenario_test, merge_keys_add_the_keys_not_given) {
  const std::string head = R"(name: mini
duration: 10s
workload:
  kind: test_kind
  users:
    - &a {name: a, weight: 2}
    - &b {name: b, weight: 3}
    - &n {name: n}
)";
  auto s = load_scenario_text(head + "    - {<<: *a, name: c}\n"
                                     "    - {<<: [*a, *b], name: d}\n"
                                     "    - {<<: [*n, *b], name: e}\n"
                                     "    - <<: {<<: *b, weight: 4}\n"
                                     "      name: f\n",
                              "inline.yaml", {"workload.users.3.weight=5"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_string("workload.users.3.name"), "c");
  EXPECT_EQ(s->get_real("workload.users.3.weight"), 5.0); // the --set
  EXPECT_EQ(s->get_real("workload.users.0.weight"), 2.0); // the anchor unchanged
  EXPECT_EQ(s->get_string("workload.users.4.name"), "d"); // given wins
  EXPECT_EQ(s->get_real("workload.users.4.weight"), 2.0); // a's, before b's
  EXPECT_EQ(s->get_real("workload.users.5.weight"), 3.0); // n has none: b's
  EXPECT_EQ(s->get_real("workload.users.6.weight"), 4.0); // nested
  EXPECT_EQ(s->get_string("workload.users.6.name"), "f");
  // A merged value is where its anchored map has it.
  EXPECT_EQ(s->where("workload.users.5.weight"), "inline.yaml:7:28");
  EXPECT_EQ(s->resolved_yaml().find("<<"), std::string::npos) << s->resolved_yaml();

  auto bad = [&](const std::string& tail) {
    auto r = load_scenario_text(head + tail, "inline.yaml");
    EXPECT_FALSE(r.ok()) << tail;
    return std::string(r.status().message());
  };
  EXPECT_EQ(bad("    - {<<: 5, name: c}\n"),
            "inline.yaml:9:12: workload.users.3.<<: a merge key '<<' takes a map or a list of "
            "maps, such as an alias *name of an anchored map, got '5'");
  EXPECT_EQ(bad("    - {<<: [*a, 3], name: c}\n"),
            "inline.yaml:9:12: workload.users.3.<<: a merge key '<<' takes a map or a list of "
            "maps, such as an alias *name of an anchored map, got a list");
  EXPECT_NE(bad("    - {\"<<\": *a, name: c}\n").find("workload.users.3.<<: unknown key '<<'"),
            std::string::npos);
  EXPECT_NE(bad("    - &c {name: c, <<: *c}\n").find("workload.users.3.<<: the map merges itself"),
            std::string::npos);
  // A key twice in a merged map is refused as in any other.
  EXPECT_EQ(bad("    - {<<: {weight: 1, weight: 2}, name: c}\n"),
            "inline.yaml:9:24: workload.users.3.weight: duplicate key 'weight' (first at line 9)");
}

// An override through a merge key changes that path only: the merged map's
// other keys stay (the override had replaced the whole map), and a merged
// list's items can be named.
TEST_F(scenario_test, an_override_through_a_merge_key_keeps_the_merged_keys) {
  const std::string text = R"(name: mini
duration: 10s
<<: &common {seed: 9, workload: {kind: test_kind, note: merged, users: [{name: a}, {name: b}]}}
)";
  auto s = load_scenario_text(text, "inline.yaml",
                              {"workload.users.1.weight=7", "workload.note=set"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_int("seed"), 9);
  EXPECT_EQ(s->get_string("workload.note"), "set");
  EXPECT_EQ(s->get_string("workload.users.0.name"), "a");
  EXPECT_EQ(s->get_string("workload.users.1.name"), "b");
  EXPECT_EQ(s->get_real("workload.users.1.weight"), 7.0);
  s = load_scenario_text(text, "inline.yaml", {"seed=3"});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_int("seed"), 3);
  EXPECT_EQ(s->get_string("workload.note"), "merged");
}

// Maps that merge each other many times over are read once each: nine
// levels of ten-fold merges (10^9 paths) validate at once, and aliases of
// aliases that reach too many maps for an override are refused.
TEST_F(scenario_test, merge_and_alias_fan_out_stays_bounded) {
  std::string text = "name: mini\nduration: 10s\nworkload: {kind: test_kind}\nclock:\n  <<: ";
  std::string inner = "&a0 {mode: virtual}";
  for (int level = 1; level <= 9; ++level) {
    std::string list = absl::StrCat("&a", level, " {<<: [", inner);
    for (int k = 0; k < 9; ++k) absl::StrAppend(&list, ", *a", level - 1);
    inner = list + "]}";
  }
  auto s = load_scenario_text(text + inner + "\n", "inline.yaml");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->get_string("clock.mode"), "virtual");

  std::string laughs = "name: mini\nduration: 10s\nworkload: {kind: test_kind}\nx0: &x0 [{}]\n";
  for (int level = 1; level <= 9; ++level) {
    absl::StrAppend(&laughs, "x", level, ": &x", level, " [");
    for (int k = 0; k < 10; ++k) absl::StrAppend(&laughs, k > 0 ? ", " : "", "*x", level - 1);
    laughs += "]\n";
  }
  auto r = load_scenario_text(laughs, "inline.yaml", {"seed=2"});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("aliases reach more than 1048576 maps and lists"),
            std::string::npos)
    << r.status();
}

TEST_F(scenario_test, copies_share_the_same_values) {
  auto s = load_scenario_text(minimal, "inline.yaml");
  ASSERT_TRUE(s.ok());
  scenario copy = *s;
  EXPECT_EQ(copy.resolved_yaml(), s->resolved_yaml());
  EXPECT_EQ(copy.get_duration("duration"), seconds(10));
}

TEST_F(scenario_test, wrong_getter_aborts_with_the_path) {
  auto s = load_scenario_text(minimal, "inline.yaml");
  ASSERT_TRUE(s.ok());
  EXPECT_DEATH(s->get_int("name"), "name: is a string, not a integer");
  EXPECT_DEATH(s->get_string("nope.key"), "nope.key: no such value");
}

} // namespace
} // namespace satemu::runtime
