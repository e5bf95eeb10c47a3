// Tests for runtime/schema: builders, registries and explain.
#include "runtime/schema.hpp"

#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace satemu::runtime {
namespace {

// A workload kind of its own, so that this file does not depend on others.
void register_explain_kind() {
  register_workload_kind(
      "explain_kind", "A kind used by the schema tests",
      {key_spec::integer("batch", "8", "Requests per batch").at_least(1),
       key_spec::dur("think_time", "250ms", "Pause between requests").above(0),
       key_spec::rate("uplink", "", "Uplink rate; absent means unlimited")});
}

bool has_line_starting(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0 || text.find("\n" + prefix) != std::string::npos;
}

// Every dotted path below `spec`, as explain writes them.
void collect_paths(const key_spec& spec, const std::string& prefix, std::vector<std::string>& out) {
  for (const auto& c : spec.children) {
    std::string path = prefix.empty() ? c.name : prefix + "." + c.name;
    out.push_back(path);
    if (c.type == value_type::map) collect_paths(c, path, out);
    if (c.type == value_type::list) collect_paths(c, path + ".<i>", out);
  }
}

TEST(schema, base_schema_declares_the_top_level_keys) {
  std::vector<std::string> names;
  for (const auto& c : base_schema().children) names.push_back(c.name);
  for (const char* key : {"name", "seed", "clock", "duration", "threads", "output", "workload"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), key), names.end()) << key;
  }
}

TEST(schema, explain_lists_every_base_key_with_type_default_and_help) {
  register_explain_kind();
  auto text = explain();
  ASSERT_TRUE(text.ok()) << text.status();
  std::vector<std::string> paths;
  collect_paths(base_schema(), "", paths);
  ASSERT_GE(paths.size(), 13u);
  for (const auto& p : paths) {
    EXPECT_TRUE(has_line_starting(*text, p + "  ")) << p << " missing from:\n" << *text;
  }
  for (const char* p : {"clock.mode", "clock.dilation", "output.dir", "output.trace",
                        "output.progress", "workload.kind"}) {
    EXPECT_TRUE(has_line_starting(*text, std::string(p) + "  ")) << p;
  }
  EXPECT_NE(text->find("clock.mode  one of virtual, realtime; default virtual"), std::string::npos)
      << *text;
  EXPECT_NE(text->find("realtime only: wall seconds per emulated second"), std::string::npos);
  // Required by the workloads that run, not by the schema (satemu sweep
  // needs none).
  EXPECT_NE(text->find("duration  duration (ns, us, ms, s, min, h) > 0s; optional\n    Emulated time to run; "
                       "required by every workload except"),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("name  string; required"), std::string::npos) << *text;
  EXPECT_NE(text->find("seed  integer >= 0; default 1"), std::string::npos) << *text;
  // The registered kind, its keys and the kind choice.
  EXPECT_NE(text->find("workload kind 'explain_kind': A kind used by the schema tests"),
            std::string::npos);
  EXPECT_TRUE(has_line_starting(*text, "workload.batch  integer >= 1; default 8"));
  EXPECT_TRUE(has_line_starting(*text, "workload.think_time  duration"));
  EXPECT_TRUE(has_line_starting(*text, "workload.uplink  data rate"));
  EXPECT_NE(text->find("explain_kind"), std::string::npos);
}

TEST(schema, explain_one_kind_lists_only_its_keys) {
  register_explain_kind();
  auto text = explain("explain_kind");
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_TRUE(has_line_starting(*text, "workload.batch  "));
  EXPECT_TRUE(has_line_starting(*text, "workload.think_time  "));
  EXPECT_EQ(text->find("clock.mode"), std::string::npos);
  EXPECT_EQ(text->find("output.dir"), std::string::npos);
}

TEST(schema, explain_unknown_kind_is_an_error) {
  register_explain_kind();
  auto text = explain("no_such_kind");
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(text.status().message()).find("no_such_kind"), std::string::npos);
  EXPECT_NE(std::string(text.status().message()).find("explain_kind"), std::string::npos);
}

TEST(schema, kinds_register_once_and_feed_the_kind_choice) {
  register_explain_kind();
  register_explain_kind();  // identical: a no-op
  const kind_spec* k = find_kind("workload", "explain_kind");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->keys.size(), 3u);
  EXPECT_EQ(find_kind("workload", "nope"), nullptr);
  auto names = kind_names("workload");
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  const key_spec* workload = nullptr;
  for (const auto& c : base_schema().children) {
    if (c.name == "workload") workload = &c;
  }
  ASSERT_NE(workload, nullptr);
  ASSERT_FALSE(workload->children.empty());
  EXPECT_EQ(workload->children[0].name, "kind");
  EXPECT_EQ(workload->children[0].choices, names);
}

TEST(schema_death, conflicting_kind_registration_aborts) {
  register_explain_kind();
  EXPECT_DEATH(register_workload_kind("explain_kind", "other", {}),
               "registered twice with different keys");
}

TEST(schema, builders_and_modifiers) {
  key_spec d = key_spec::dur("duration", "60s", "Emulated time").mandatory().above(0);
  EXPECT_EQ(d.type, value_type::duration);
  EXPECT_TRUE(d.required);
  EXPECT_TRUE(d.default_value.empty());
  EXPECT_TRUE(d.min_exclusive);
  EXPECT_EQ(d.unit_hint, "duration (ns, us, ms, s, min, h)");
  key_spec l = key_spec::list_of_maps("users", "Ground users",
                                      {key_spec::text("name", "", "Name").mandatory()})
                   .items_at_least(1);
  EXPECT_EQ(l.type, value_type::list);
  EXPECT_EQ(l.default_value, "[]");
  EXPECT_EQ(l.min_items, 1u);
  EXPECT_EQ(l.children.size(), 1u);
}

TEST(schema, describe_expected_reads_naturally) {
  EXPECT_EQ(describe_expected(key_spec::real("x", "", "").above(0)), "a positive real number");
  EXPECT_EQ(describe_expected(key_spec::integer("x", "", "").at_least(0)),
            "a non-negative integer");
  EXPECT_EQ(describe_expected(key_spec::integer("x", "", "").at_least(1).at_most(9)),
            "an integer in [1, 9]");
  EXPECT_EQ(describe_expected(key_spec::dur("x", "", "").at_least(1e6)), "a duration >= 1ms");
  EXPECT_EQ(describe_expected(key_spec::ang("x", "", "").at_least(0).at_most(90)),
            "an angle in [0deg, 90deg]");
  EXPECT_EQ(describe_expected(key_spec::choice("x", {"a", "b"}, "a", "")), "one of a, b");
  EXPECT_EQ(describe_expected(key_spec::boolean("x", "false", "")), "true or false");
}

} // namespace
} // namespace satemu::runtime
