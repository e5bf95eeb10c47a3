// satemu scenario schema: the base keys, the registries, and explain.
#include "runtime/schema.hpp"
#include "runtime/suggest.hpp"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/output.hpp"
#include "runtime/quantity.hpp"
#include "runtime/time.hpp"

namespace satemu::runtime {

namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

key_spec make(std::string name, value_type type, std::string def, std::string help,
              std::string unit_hint = {}) {
  key_spec k;
  k.name = std::move(name);
  k.type = type;
  k.default_value = std::move(def);
  k.help = std::move(help);
  k.unit_hint = std::move(unit_hint);
  return k;
}

key_spec make_base() {
  return key_spec::map(
      "", "A satemu scenario",
      {
          key_spec::text("name", "", "Scenario name; the default output directory is out/<name>")
              .mandatory(),
          key_spec::integer("seed", "1",
                            "Base random seed, at most 2^63 - 1; every random stream derives "
                            "from (seed, entity id, stream)")
              .at_least(0),
          key_spec::map(
              "clock", "Time model",
              {key_spec::choice("mode", {"virtual", "realtime"}, "virtual",
                                "virtual: deterministic, as fast as the host allows; realtime: "
                                "emulated delays become wall-clock delays"),
               key_spec::real("dilation", "1.0",
                              "realtime only: wall seconds per emulated second")
                   .above(0)}),
          // Required by every workload that runs (make_workload checks it); the
          // analytic SkyMemory model, evaluated by `satemu sweep`, has no time.
          key_spec::dur("duration", "",
                        "Emulated time to run; required by every workload except the analytic "
                        "skymemory model (satemu sweep)")
            .above(0),
          key_spec::integer("threads", "0", "Worker threads; 0 = all cores").at_least(0).at_most(most_threads),
          key_spec::map(
              "output", "Where and what the run writes",
              {key_spec::text("dir", "''", "Output directory; empty means out/<name>"),
               key_spec::boolean("trace", "false", "Write the full event trace"),
               key_spec::choice("progress", {"auto", "on", "off"}, "auto",
                                "Progress line: auto = only on a terminal; on = also off "
                                "one, a line every 10 s")}),
          [] {
            key_spec w = key_spec::map(
                "workload", "What the emulated users do; each kind documents its own keys",
                {key_spec::choice("kind", {}, "", "Workload kind").mandatory()});
            w.kinds = "workload";
            return std::move(w).mandatory();
          }(),
      });
}

struct registry_state {
  std::mutex mu;
  key_spec root = make_base();
  std::map<std::string, std::map<std::string, kind_spec>, std::less<>> kinds;
};

registry_state& state() {
  // Never destroyed: registration may run from static initialisers and
  // lookups from other static destructors.
  static registry_state* s = new registry_state;
  return *s;
}

[[noreturn]] void die(const std::string& msg) {
  std::fprintf(stderr, "satemu: schema: %s\n", msg.c_str());
  std::abort();
}

// Keeps the `kind` choices of every map using `registry` in step with it.
void refresh_kind_choices(key_spec& spec, const std::string& registry,
                          const std::vector<std::string>& names) {
  if (spec.kinds == registry) {
    for (auto& child : spec.children) {
      if (child.name == "kind") child.choices = names;
    }
  }
  for (auto& child : spec.children) refresh_kind_choices(child, registry, names);
}

std::string number_text(double v, value_type t) {
  switch (t) {
    case value_type::duration:
      return to_string(duration::from_ns(static_cast<std::int64_t>(v)));
    case value_type::distance:
      return to_string(distance{v});
    case value_type::angle:
      return to_string(angle{v});
    case value_type::data_size:
      return to_string(data_size{static_cast<std::uint64_t>(v)});
    case value_type::data_rate:
      return to_string(data_rate{v});
    default:
      break;
  }
  if (std::floor(v) == v && std::fabs(v) < 1e15) return absl::StrCat(static_cast<long long>(v));
  return absl::StrCat(v);
}

std::string_view noun(value_type t) {
  switch (t) {
    case value_type::integer: return "integer";
    case value_type::real: return "real number";
    default: return to_string(t);
  }
}

std::string article(std::string_view word) {
  const bool vowel = !word.empty() && std::string_view("aeiou").find(word[0]) != std::string_view::npos;
  return absl::StrCat(vowel ? "an " : "a ", av(word));
}

// " >= 1", " in [0, 90]", " > 0 and <= 10"; empty when unbounded.
std::string range_text(const key_spec& s, value_type t) {
  std::string out;
  if (s.min && s.max && !s.min_exclusive) {
    return absl::StrCat(" in [", number_text(*s.min, t), ", ", number_text(*s.max, t), "]");
  }
  if (s.min) absl::StrAppend(&out, s.min_exclusive ? " > " : " >= ", number_text(*s.min, t));
  if (s.max) absl::StrAppend(&out, s.min ? " and" : "", " <= ", number_text(*s.max, t));
  return out;
}

std::string describe_scalar(const key_spec& s, value_type t) {
  switch (t) {
    case value_type::boolean:
      return "true or false";
    case value_type::string:
      return "a string";
    case value_type::choice:
      return s.choices.empty() ? "one of the registered kinds (none registered)"
                               : absl::StrCat("one of ", absl::StrJoin(s.choices, ", "));
    case value_type::map:
      return "a map";
    case value_type::list:
      return "a list";
    default:
      break;
  }
  if (s.min && *s.min == 0 && !s.max) {
    return absl::StrCat(s.min_exclusive ? "a positive " : "a non-negative ", av(noun(t)));
  }
  return absl::StrCat(article(noun(t)), range_text(s, t));
}

void explain_key(const key_spec& k, const std::string& path, std::string& out);

void explain_children(const std::vector<key_spec>& children, const std::string& prefix,
                      std::string& out) {
  for (const auto& c : children) explain_key(c, prefix.empty() ? c.name : prefix + "." + c.name, out);
}

void explain_key(const key_spec& k, const std::string& path, std::string& out) {
  std::string type;
  switch (k.type) {
    case value_type::map:
      type = "map";
      break;
    case value_type::list:
      type = k.children.empty()
                 ? absl::StrCat("list of ", av(to_string(k.element_type)))
                 : "list of maps";
      break;
    case value_type::choice:
      type = describe_scalar(k, k.type);
      break;
    default:
      type = k.unit_hint.empty() ? std::string(noun(k.type)) : k.unit_hint;
      break;
  }
  if (k.type != value_type::choice) {
    absl::StrAppend(&type, range_text(k, k.type == value_type::list ? k.element_type : k.type));
  }
  if (k.type == value_type::list && k.children.empty() && !k.choices.empty()) {
    absl::StrAppend(&type, ", each one of ", absl::StrJoin(k.choices, ", "));
  }
  if (k.type == value_type::list && k.min_items > 0) {
    absl::StrAppend(&type, ", at least ", k.min_items, " item", k.min_items == 1 ? "" : "s");
  }
  std::string presence;
  if (k.required) {
    presence = "required";
  } else if (!k.default_value.empty()) {
    presence = absl::StrCat("default ", k.default_value);
  } else if (k.type == value_type::map) {
    presence = k.omit_if_absent ? "optional section" : "";
    if (!k.workload_kinds.empty())
      absl::StrAppend(&presence, presence.empty() ? "" : ", ", "workload kind ",
                      absl::StrJoin(k.workload_kinds, " or "), " only");
  } else {
    presence = "optional";
  }
  absl::StrAppend(&out, path, "  ", type, presence.empty() ? "" : "; ", presence, "\n");
  if (!k.help.empty()) absl::StrAppend(&out, "    ", k.help, "\n");
  if (k.type == value_type::map) explain_children(k.children, path, out);
  if (k.type == value_type::list) explain_children(k.children, path + ".<i>", out);
}

void explain_kind(const std::string& registry, const kind_spec& kind, std::string& out) {
  absl::StrAppend(&out, "\n", registry, " kind '", kind.name, "'", kind.help.empty() ? "" : ": ",
                  kind.help, "\n");
  explain_children(kind.keys, registry, out);
}

} // namespace

std::string_view to_string(value_type t) {
  switch (t) {
    case value_type::boolean: return "boolean";
    case value_type::integer: return "integer";
    case value_type::real: return "real";
    case value_type::string: return "string";
    case value_type::duration: return "duration";
    case value_type::distance: return "distance";
    case value_type::angle: return "angle";
    case value_type::data_size: return "data size";
    case value_type::data_rate: return "data rate";
    case value_type::choice: return "choice";
    case value_type::map: return "map";
    case value_type::list: return "list";
  }
  return "?";
}

key_spec key_spec::boolean(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::boolean, std::move(def), std::move(help),
              "boolean (true, false)");
}
key_spec key_spec::integer(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::integer, std::move(def), std::move(help));
}
key_spec key_spec::real(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::real, std::move(def), std::move(help));
}
key_spec key_spec::text(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::string, std::move(def), std::move(help));
}
key_spec key_spec::dur(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::duration, std::move(def), std::move(help),
              "duration (ns, us, ms, s, min, h)");
}
key_spec key_spec::dist(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::distance, std::move(def), std::move(help),
              "distance (m, km)");
}
key_spec key_spec::ang(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::angle, std::move(def), std::move(help),
              "angle (deg, rad)");
}
key_spec key_spec::size(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::data_size, std::move(def), std::move(help),
              "data size (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB; bits: b, kb, Mb, Gb)");
}
key_spec key_spec::rate(std::string name, std::string def, std::string help) {
  return make(std::move(name), value_type::data_rate, std::move(def), std::move(help),
              "data rate (bps, kbps, Mbps, Gbps, Tbps, Bps, kBps, MBps, GBps, TBps)");
}
key_spec key_spec::choice(std::string name, std::vector<std::string> choices, std::string def,
                          std::string help) {
  key_spec k = make(std::move(name), value_type::choice, std::move(def), std::move(help));
  k.choices = std::move(choices);
  return k;
}
key_spec key_spec::map(std::string name, std::string help, std::vector<key_spec> children) {
  key_spec k = make(std::move(name), value_type::map, "", std::move(help));
  k.children = std::move(children);
  return k;
}
key_spec key_spec::list(std::string name, value_type element, std::string help) {
  key_spec k = make(std::move(name), value_type::list, "[]", std::move(help));
  k.element_type = element;
  return k;
}
key_spec key_spec::list_of_maps(std::string name, std::string help, std::vector<key_spec> fields) {
  key_spec k = make(std::move(name), value_type::list, "[]", std::move(help));
  k.element_type = value_type::map;
  k.children = std::move(fields);
  return k;
}

key_spec&& key_spec::mandatory() && {
  required = true;
  default_value.clear();
  return std::move(*this);
}
key_spec&& key_spec::at_least(double v) && {
  min = v;
  min_exclusive = false;
  return std::move(*this);
}
key_spec&& key_spec::above(double v) && {
  min = v;
  min_exclusive = true;
  return std::move(*this);
}
key_spec&& key_spec::at_most(double v) && {
  max = v;
  return std::move(*this);
}
key_spec&& key_spec::items_at_least(std::size_t n) && {
  min_items = n;
  return std::move(*this);
}
key_spec&& key_spec::suggesting(std::string word, std::string choice) && {
  synonyms.emplace_back(std::move(word), std::move(choice));
  return std::move(*this);
}
key_spec&& key_spec::names_input_file() && {
  input_file = true;
  return std::move(*this);
}
key_spec&& key_spec::read_by_workloads(std::vector<std::string> kinds,
                                        std::string others_note) && {
  workload_kinds = std::move(kinds);
  other_kinds_note = std::move(others_note);
  return std::move(*this);
}
key_spec&& key_spec::optional_section() && {
  omit_if_absent = true;
  return std::move(*this);
}
key_spec&& key_spec::with_unit_hint(std::string hint) && {
  unit_hint = std::move(hint);
  return std::move(*this);
}

const key_spec& base_schema() { return state().root; }

void register_section(key_spec section) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  for (const auto& c : s.root.children) {
    if (c.name == section.name) {
      if (c == section) return;
      die(absl::StrCat("top-level key '", section.name, "' registered twice with different specs"));
    }
  }
  // A section may use kinds registered before it.
  for (const auto& [registry, kinds] : s.kinds) {
    std::vector<std::string> names;
    for (const auto& [name, k] : kinds) names.push_back(name);
    refresh_kind_choices(section, registry, names);
  }
  s.root.children.push_back(std::move(section));
}

void register_kind(std::string registry, std::string kind, std::string help,
                   std::vector<key_spec> keys) {
  for (const auto& k : keys) {
    if (k.name == "kind") die(absl::StrCat(registry, " kind '", kind, "' declares a key 'kind'"));
  }
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  auto& kinds = s.kinds[registry];
  kind_spec spec{kind, std::move(help), std::move(keys)};
  if (auto it = kinds.find(kind); it != kinds.end()) {
    if (it->second == spec) return;
    die(absl::StrCat(registry, " kind '", kind, "' registered twice with different keys"));
  }
  kinds.emplace(kind, std::move(spec));
  std::vector<std::string> names;
  for (const auto& [name, k] : kinds) names.push_back(name);
  refresh_kind_choices(s.root, registry, names);
}

void register_workload_kind(std::string kind, std::string help, std::vector<key_spec> keys) {
  register_kind("workload", std::move(kind), std::move(help), std::move(keys));
}

const kind_spec* find_kind(std::string_view registry, std::string_view kind) {
  auto& s = state();
  auto r = s.kinds.find(registry);
  if (r == s.kinds.end()) return nullptr;
  auto k = r->second.find(std::string(kind));
  return k == r->second.end() ? nullptr : &k->second;
}

std::vector<std::string> kind_names(std::string_view registry) {
  std::vector<std::string> names;
  auto& s = state();
  auto r = s.kinds.find(registry);
  if (r == s.kinds.end()) return names;
  for (const auto& [name, k] : r->second) names.push_back(name);
  return names;
}

std::string describe_expected(const key_spec& spec) { return describe_scalar(spec, spec.type); }

absl::StatusOr<std::string> explain(std::optional<std::string> kind) {
  std::string out;
  if (kind) {
    const kind_spec* k = find_kind("workload", *kind);
    if (k == nullptr) {
      auto names = kind_names("workload");
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown workload kind '", *kind, "'", did_you_mean(*kind, names),
          "; registered kinds: ",
          names.empty() ? std::string("(none)") : absl::StrJoin(names, ", ")));
    }
    explain_kind("workload", *k, out);
    out.erase(0, 1);  // leading blank line
    return out;
  }
  out = "Scenario keys (dotted paths; <i> is a list index):\n\n";
  explain_children(base_schema().children, "", out);
  auto& s = state();
  for (const auto& [registry, kinds] : s.kinds) {
    for (const auto& [name, k] : kinds) explain_kind(registry, k, out);
  }
  return out;
}

} // namespace satemu::runtime
