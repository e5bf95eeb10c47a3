// satemu scenarios: loading, overrides, strict validation, resolved output.
#include "runtime/scenario.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <variant>

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "runtime/files.hpp"
#include "runtime/schema.hpp"
#include "runtime/suggest.hpp"

namespace satemu::runtime {

namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
inline absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
inline std::string_view sv(absl::string_view s) { return std::string_view(s.data(), s.size()); }

// Counts the documents of a YAML text, and the marks they start at.
struct document_starts : YAML::EventHandler {
  std::vector<YAML::Mark> marks;
  void OnDocumentStart(const YAML::Mark& mark) override { marks.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

// YAML::LoadAll, but an error where yaml-cpp 0.7 never ends: a token no node
// starts with, where a node should start (a ',' outside brackets, as in
// ",", "&a ," or "!tag ,"), makes it report an empty document without
// reading the token, and so another and another, each kept in memory
// (hundreds of MB a second). A document that starts where the one before
// it started read nothing: the token there is a YAML::ParserException.
std::vector<YAML::Node> load_all(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser parser(in);
  document_starts starts;
  while (parser.HandleNextDocument(starts)) {
    const auto& m = starts.marks;
    if (m.size() >= 2 && m.back().pos == m[m.size() - 2].pos) {
      const auto at = static_cast<std::size_t>(m.back().pos);
      const char c = at < text.size() ? text[at] : '\0';
      throw YAML::ParserException(
          m.back(), c > ' ' && c < 127 ? absl::StrCat("unexpected '", std::string(1, c), "'")
                                       : std::string("unexpected text"));
    }
  }
  return YAML::LoadAll(text);
}

// What a YAML error says; yaml-cpp calls nesting past its limit a "bad file".
std::string yaml_error_text(const YAML::Exception& e) {
  if (const auto* deep = dynamic_cast<const YAML::DeepRecursion*>(&e))
    return absl::StrCat("nested ", deep->depth(), " or more levels deep: too deep to read");
  return e.msg;
}

using value_variant = std::variant<std::monostate, bool, std::int64_t, double, std::string,
                                   duration, distance, angle, data_size, data_rate>;

// One node of the resolved tree.
struct rnode {
  value_type type = value_type::map;
  value_variant value;
  std::vector<std::string> names;  // map field names, schema order
  std::vector<rnode> children;     // map fields (parallel to names) or list items
  std::string location;            // "file:line:col" where the value was given; "" = default
  bool defaulted = false;          // the schema's default, not given by the text or a --set
  bool default_value = false;      // a non-map value equal to the schema's default
};

// Same type, value and (recursively) fields or items.
bool same_value(const rnode& a, const rnode& b) {
  if (a.type != b.type || !(a.value == b.value) || a.names != b.names ||
      a.children.size() != b.children.size())
    return false;
  for (std::size_t i = 0; i < a.children.size(); ++i)
    if (!same_value(a.children[i], b.children[i]))
      return false;
  return true;
}

std::string join_path(const std::string& path, std::string_view name) {
  return path.empty() ? std::string(name) : absl::StrCat(path, ".", av(name));
}

// did_you_mean() for a choice, where a synonym of a choice wins.
std::string choice_hint(std::string_view word, const key_spec& spec) {
  for (const auto& [synonym, choice] : spec.synonyms)
    if (word == synonym) return absl::StrCat(" (did you mean '", choice, "'?)");
  return did_you_mean(word, spec.choices);
}

std::string got_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "got nothing";
  if (n.IsMap()) return "got a map";
  if (n.IsSequence()) return "got a list";
  return "got " + in_quotes(n.Scalar());
}

bool in_range(const key_spec& s, double v) {
  if (s.min && (s.min_exclusive ? !(v > *s.min) : !(v >= *s.min))) return false;
  if (s.max && !(v <= *s.max)) return false;
  return true;
}

struct override_entry {
  std::string path;
  std::string text;  // "key.path=value", as given
};

std::string unknown_key_hint(const YAML::Node& doc, std::string_view key, std::string_view rest,
                             const std::vector<std::string>& near);
std::string workload_kind_of(const YAML::Node& doc);
bool read_by(const key_spec& key, const std::string& workload);

// Validates a YAML tree against the schema and builds the resolved tree.
class validator {
public:
  validator(std::string source, const std::vector<override_entry>& overrides)
      : source_(std::move(source)), overrides_(overrides) {}

  absl::Status root(const YAML::Node& doc, rnode& out) {
    doc_ = doc;
    return map(doc, doc.Mark(), base_schema(), "", out);
  }
  /// (key, path) of every input file named (see key_spec::input_file).
  std::vector<std::pair<std::string, std::string>>& input_files() { return input_files_; }

private:
  std::string location(const std::string& path, const YAML::Mark& mark) const {
    if (in_default_) return source_;
    for (auto it = overrides_.rbegin(); it != overrides_.rend(); ++it) {
      if (path == it->path || absl::StartsWith(path, it->path + ".")) {
        return absl::StrCat("--set ", it->text);
      }
    }
    if (mark.is_null()) return source_;
    return absl::StrCat(source_, ":", mark.line + 1, ":", mark.column + 1);
  }

  absl::Status error(const std::string& path, const YAML::Mark& mark, std::string_view msg) const {
    // A default that does not do (a list that needs items) means the key
    // must be given.
    return absl::InvalidArgumentError(
        absl::StrCat(location(path, mark), ": ", path.empty() ? "" : clipped(path) + ": ", av(msg),
                     in_default_ ? absl::StrCat(" (", default_path_, " is not given: set it)")
                                 : ""));
  }

  // Where a value is written: after its key, unless it is an alias (`*a`),
  // whose node is the anchor's, further up: then at the key.
  static YAML::Mark value_mark(const YAML::Node& n, const YAML::Mark& key_mark) {
    if (!n.IsDefined() || n.IsNull() || n.Mark().is_null()) return key_mark;
    return !key_mark.is_null() && n.Mark().pos < key_mark.pos ? key_mark : n.Mark();
  }

  absl::Status value(const YAML::Node& n, const YAML::Mark& key_mark, const key_spec& spec,
                     const std::string& path, rnode& out) {
    out.location = location(path, value_mark(n, key_mark));
    out.defaulted = in_default_;
    switch (spec.type) {
      case value_type::map:
        if (n.IsDefined() && !n.IsNull() && !n.IsMap()) {
          return error(path, value_mark(n, key_mark), absl::StrCat("expected a map, ", got_text(n)));
        }
        return map(n, value_mark(n, key_mark), spec, path, out);
      case value_type::list:
        return list(n, key_mark, spec, path, out);
      default:
        return scalar(n, key_mark, spec, spec.type, path, out);
    }
  }

  absl::Status scalar(const YAML::Node& n, const YAML::Mark& key_mark, const key_spec& spec,
                      value_type type, const std::string& path, rnode& out) {
    const YAML::Mark mark = value_mark(n, key_mark);
    key_spec as_type = spec;
    as_type.type = type;
    const std::string expected = describe_expected(as_type);
    auto bad = [&](std::string_view detail = {}) {
      if (!detail.empty()) {
        return error(path, mark, absl::StrCat(av(detail), " (", got_text(n), ")"));
      }
      return error(path, mark, absl::StrCat("expected ", expected, ", ", got_text(n)));
    };
    if (!n.IsDefined() || !n.IsScalar()) return bad();
    const std::string& text = n.Scalar();
    out.type = type;
    if (spec.input_file && type == value_type::string && !text.empty())
      input_files_.emplace_back(path, text);
    switch (type) {
      case value_type::boolean: {
        if (text == "true" || text == "True" || text == "TRUE") {
          out.value = true;
        } else if (text == "false" || text == "False" || text == "FALSE") {
          out.value = false;
        } else {
          return bad();
        }
        return absl::OkStatus();
      }
      case value_type::integer: {
        std::int64_t v = 0;
        if (!absl::SimpleAtoi(text, &v)) {
          // Digits past what 64 bits hold: say where integers end.
          if (!text.starts_with("-") && text.find_first_of("0123456789") != std::string::npos &&
              text.find_first_not_of("+0123456789") == std::string::npos)
            return bad(absl::StrCat("expected ", expected, "; integers end at ",
                                    std::numeric_limits<std::int64_t>::max()));
          return bad();
        }
        if (!in_range(spec, static_cast<double>(v))) return bad();
        out.value = v;
        return absl::OkStatus();
      }
      case value_type::real: {
        double v = 0;
        if (!absl::SimpleAtod(text, &v) || !std::isfinite(v) || !in_range(spec, v)) return bad();
        out.value = v;
        return absl::OkStatus();
      }
      case value_type::string:
        out.value = text;
        return absl::OkStatus();
      case value_type::choice: {
        if (std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
          if (spec.choices.empty()) {
            return error(path, mark,
                         absl::StrCat("unknown value ", in_quotes(text), "; nothing is registered"));
          }
          return error(path, mark,
                       absl::StrCat("expected one of ", absl::StrJoin(spec.choices, ", "),
                                    "; got ", in_quotes(text), choice_hint(text, spec)));
        }
        out.value = text;
        return absl::OkStatus();
      }
      case value_type::duration: {
        auto v = parse_duration(text);
        if (!v.ok()) return bad(sv(v.status().message()));
        if (!in_range(spec, static_cast<double>(v->ns()))) return bad();
        out.value = *v;
        return absl::OkStatus();
      }
      case value_type::distance: {
        // Negative only where the key's bound allows it (heights).
        auto v = parse_distance(text, spec.min && *spec.min < 0);
        if (!v.ok()) return bad(sv(v.status().message()));
        if (!in_range(spec, v->m)) return bad();
        out.value = *v;
        return absl::OkStatus();
      }
      case value_type::angle: {
        auto v = parse_angle(text);
        if (!v.ok()) return bad(sv(v.status().message()));
        if (!in_range(spec, v->deg)) return bad();
        out.value = *v;
        return absl::OkStatus();
      }
      case value_type::data_size: {
        auto v = parse_data_size(text);
        if (!v.ok()) return bad(sv(v.status().message()));
        if (!in_range(spec, static_cast<double>(v->bytes))) return bad();
        out.value = *v;
        return absl::OkStatus();
      }
      case value_type::data_rate: {
        auto v = parse_data_rate(text);
        if (!v.ok()) return bad(sv(v.status().message()));
        if (!in_range(spec, v->bps)) return bad();
        out.value = *v;
        return absl::OkStatus();
      }
      case value_type::map:
      case value_type::list:
        break;
    }
    return bad();
  }

  absl::Status list(const YAML::Node& n, const YAML::Mark& key_mark, const key_spec& spec,
                    const std::string& path, rnode& out) {
    out.type = value_type::list;
    const YAML::Mark mark = value_mark(n, key_mark);
    if (n.IsDefined() && !n.IsNull() && !n.IsSequence()) {
      return error(path, mark, absl::StrCat("expected a list, ", got_text(n)));
    }
    const std::size_t count = n.IsSequence() ? n.size() : 0;
    if (count < spec.min_items) {
      return error(path, mark,
                   absl::StrCat("expected at least ", spec.min_items, " item",
                                spec.min_items == 1 ? "" : "s", ", got ", count));
    }
    for (std::size_t i = 0; i < count; ++i) {
      const YAML::Node item = n[i];
      const std::string item_path = join_path(path, std::to_string(i));
      rnode r;
      if (!spec.children.empty()) {
        if (!item.IsMap()) {
          return error(item_path, value_mark(item, mark),
                       absl::StrCat("expected a map, ", got_text(item)));
        }
        if (auto s = map(item, item.Mark(), spec, item_path, r); !s.ok()) return s;
        // Where the item is, for errors about it as a whole.
        r.location = location(item_path, item.Mark());
      } else {
        if (auto s = scalar(item, mark, spec, spec.element_type, item_path, r); !s.ok()) return s;
        r.location = location(item_path, value_mark(item, mark));
      }
      out.children.push_back(std::move(r));
    }
    return absl::OkStatus();
  }

  struct entry {
    std::string key;
    YAML::Mark key_mark;
    YAML::Node value;
  };

  // Adds the keys of map `n` to `entries`, then those of the maps its merge
  // key `<<` names (YAML's merge key: `<<: *defaults` or `<<: [*a, *b]`)
  // that are not there yet, so given keys win over merged ones and earlier
  // maps over later ones.
  absl::Status entries_of(const YAML::Node& n, const std::string& path, std::vector<entry>& entries,
                          std::map<std::string, std::size_t, std::less<>>& index, int depth,
                          std::vector<YAML::Node>& seen) {
    // A map merged again adds nothing (earlier maps win): each is read once,
    // so maps that merge each other many times over stay linear.
    auto in = [](const std::vector<YAML::Node>& nodes, const YAML::Node& x) {
      return std::any_of(nodes.begin(), nodes.end(), [&](const YAML::Node& s) { return s.is(x); });
    };
    seen.push_back(n);
    std::optional<entry> merge;
    std::map<std::string, int, std::less<>> own_line;  // keys of `n` itself
    for (auto it = n.begin(); it != n.end(); ++it) {
      const YAML::Node k = it->first; // a copy: `it->` yields a temporary
      if (!k.IsScalar()) {
        return error(path, k.Mark(), "keys must be plain names");
      }
      // A plain `<<` (tag "?"); a quoted one is an ordinary key.
      if (k.Scalar() == "<<" && k.Tag() == "?") {
        if (merge) {
          return error(join_path(path, "<<"), k.Mark(),
                       absl::StrCat("duplicate merge key '<<' (first at line ",
                                    merge->key_mark.line + 1, "): list the maps in one, "
                                    "as <<: [*a, *b]"));
        }
        merge = entry{k.Scalar(), k.Mark(), it->second};
        continue;
      }
      // A key twice in one map is refused, merged in or not; one that an
      // earlier map already gives is skipped.
      if (const auto [first, added] = own_line.emplace(k.Scalar(), k.Mark().line + 1); !added) {
        return error(join_path(path, k.Scalar()), k.Mark(),
                     absl::StrCat("duplicate key ", in_quotes(k.Scalar()), " (first at line ",
                                  first->second, ")"));
      }
      if (index.emplace(k.Scalar(), entries.size()).second)
        entries.push_back({k.Scalar(), k.Mark(), it->second});
    }
    if (!merge) return absl::OkStatus();
    const std::string merge_path = join_path(path, "<<");
    const YAML::Node& v = merge->value;
    const bool maps = v.IsMap() || (v.IsSequence() && std::all_of(v.begin(), v.end(), [](const YAML::Node& m) {
                                      return m.IsMap();
                                    }));
    if (!maps) {
      return error(merge_path, value_mark(v, merge->key_mark),
                   absl::StrCat("a merge key '<<' takes a map or a list of maps, such as an alias "
                                "*name of an anchored map, ", got_text(v)));
    }
    // An anchor merged into itself (`&a {<<: *a}`) is refused; a map met
    // again further down (a chain that loops back) is skipped as read.
    constexpr int deepest = 32;
    if (depth == deepest) {
      return error(merge_path, merge->key_mark,
                   absl::StrCat("merge keys '<<' nested more than ", deepest,
                                " deep (does a map merge itself?)"));
    }
    std::vector<YAML::Node> sources;
    if (v.IsMap()) sources.push_back(v);
    else for (const YAML::Node& m : v) sources.push_back(m);
    for (const YAML::Node& m : sources) {
      if (m.is(n)) {
        return error(merge_path, merge->key_mark, "the map merges itself");
      }
      if (in(seen, m)) continue;
      if (auto s = entries_of(m, path, entries, index, depth + 1, seen); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // A section that the workload's kind does not read is refused (see
  // key_spec::workload_kinds). A missing or unknown kind is left to the
  // workload section's own check.
  absl::Status read_by_workload(const key_spec& section, const std::string& path,
                                const YAML::Mark& mark) {
    if (section.workload_kinds.empty())
      return absl::OkStatus();  // every kind reads it: no need to look the kind up
    const std::string kind = workload_kind_of(doc_);
    if (read_by(section, kind))
      return absl::OkStatus();
    const auto& kinds = section.workload_kinds;
    return error(path, mark,
                 absl::StrCat("workload kind '", kind, "' ",
                              section.other_kinds_note.empty()
                                  ? "does not read this section"
                                  : absl::StrCat(section.other_kinds_note,
                                                 " and would ignore this section"),
                              " (only ", absl::StrJoin(kinds, ", "),
                              kinds.size() == 1 ? " reads" : " read", " it); remove it"));
  }

  // `n` may be undefined or null (an absent or empty map): defaults apply.
  absl::Status map(const YAML::Node& n, const YAML::Mark& anchor, const key_spec& spec,
                   const std::string& path, rnode& out) {
    out.type = value_type::map;
    std::vector<entry> entries;
    std::map<std::string, std::size_t, std::less<>> index;  // key -> entry
    if (n.IsDefined() && n.IsMap()) {
      std::vector<YAML::Node> seen;
      if (auto s = entries_of(n, path, entries, index, 0, seen); !s.ok()) return s;
    }
    auto find_entry = [&](std::string_view key) -> const entry* {
      const auto it = index.find(key);
      return it == index.end() ? nullptr : &entries[it->second];
    };

    std::vector<const key_spec*> fields;
    for (const auto& c : spec.children) fields.push_back(&c);
    std::string kind_note;
    if (!spec.kinds.empty()) {
      // The `kind` value decides which further keys exist, so check it first.
      const entry* k = find_entry("kind");
      key_spec kind_key = key_spec::choice("kind", kind_names(spec.kinds), "", "");
      const std::string kind_path = join_path(path, "kind");
      if (k == nullptr) {
        return error(kind_path, anchor,
                     absl::StrCat("missing required key 'kind' (one of ",
                                  absl::StrJoin(kind_key.choices, ", "), ")"));
      }
      rnode kind_value;
      if (auto s = scalar(k->value, k->key_mark, kind_key, value_type::choice, kind_path, kind_value);
          !s.ok()) {
        return s;
      }
      const kind_spec* ks = find_kind(spec.kinds, std::get<std::string>(kind_value.value));
      for (const auto& c : ks->keys) fields.push_back(&c);
      kind_note = absl::StrCat(" for ", spec.kinds, " kind '", ks->name, "'");
    }

    std::vector<std::string> names;
    for (const auto* f : fields) names.push_back(f->name);
    for (const auto& e : entries) {
      if (std::find(names.begin(), names.end(), e.key) == names.end()) {
        return error(join_path(path, e.key), e.key_mark,
                     absl::StrCat("unknown key ", in_quotes(e.key), kind_note,
                                  unknown_key_hint(doc_, e.key, "", names)));
      }
    }

    for (const auto* f : fields) {
      const std::string child_path = join_path(path, f->name);
      rnode r;
      bool present = true;
      if (const entry* e = find_entry(f->name)) {
        if (auto s = read_by_workload(*f, child_path, e->key_mark); !s.ok()) return s;
        if (auto s = value(e->value, e->key_mark, *f, child_path, r); !s.ok()) return s;
        if (f->type != value_type::map && !f->default_value.empty()) {
          // A default that would not pass on its own (`[]` where a list
          // needs items) is never equalled.
          rnode d;
          bool has_default = true;
          r.default_value = absent(*f, child_path, anchor, d, has_default).ok() && has_default &&
                            same_value(r, d);
        }
      } else if (auto s = absent(*f, child_path, anchor, r, present); !s.ok()) {
        return s;
      }
      if (present) {
        out.names.push_back(f->name);
        out.children.push_back(std::move(r));
      }
    }
    return absl::OkStatus();
  }

  absl::Status absent(const key_spec& spec, const std::string& path, const YAML::Mark& anchor,
                      rnode& out, bool& present) {
    present = true;
    if (spec.required) {
      return error(path, anchor,
                   absl::StrCat("missing required key '", spec.name, "'",
                                spec.help.empty() ? "" : ": ", spec.help));
    }
    if (spec.type == value_type::map) {
      if (spec.omit_if_absent) {
        present = false;
        return absl::OkStatus();
      }
      return map(YAML::Node(), anchor, spec, path, out);
    }
    if (spec.default_value.empty()) {
      present = false;
      return absl::OkStatus();
    }
    YAML::Node def;
    try {
      def = YAML::Load(spec.default_value);
    } catch (const YAML::Exception& e) {
      return absl::InternalError(
          absl::StrCat("schema default of ", path, " is not YAML: ", e.what()));
    }
    const bool was = in_default_;
    const std::string saved = default_path_;
    if (!in_default_) default_path_ = path;
    in_default_ = true;
    absl::Status s = value(def, def.Mark(), spec, path, out);
    in_default_ = was;
    default_path_ = saved;
    return s;
  }

  std::string source_;
  YAML::Node doc_;  // the whole scenario, for hints that name keys elsewhere
  const std::vector<override_entry>& overrides_;
  bool in_default_ = false;
  std::string default_path_;
  std::vector<std::pair<std::string, std::string>> input_files_;
};

bool parse_index(std::string_view seg, std::size_t& index) {
  if (seg.empty() || !std::all_of(seg.begin(), seg.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  return absl::SimpleAtoi(av(seg), &index);
}

// The entry of key `seg` in map `node`: its own, or else (YAML's merge key
// `<<`) that of the first merged map holding it, as the validator reads
// it; none when neither has it.
std::optional<std::pair<YAML::Node, YAML::Node>> find_entry(const YAML::Node& node,
                                                            const std::string& seg,
                                                            int depth = 0) {
  if (!node.IsMap() || depth > 32) return std::nullopt;
  YAML::Node merge;
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    if (it->first.Scalar() == seg) return std::pair{YAML::Node(it->first), YAML::Node(it->second)};
    if (it->first.Scalar() == "<<" && it->first.Tag() == "?") merge = it->second;
  }
  if (merge.IsMap()) return find_entry(merge, seg, depth + 1);
  if (merge.IsSequence())
    for (const YAML::Node& m : merge)
      if (auto e = find_entry(m, seg, depth + 1)) return e;
  return std::nullopt;
}

// The workload kind that scenario `doc` names (merge keys included, as the
// validator reads them) where it is a registered one; else empty.
std::string workload_kind_of(const YAML::Node& doc) {
  const auto w = find_entry(doc, "workload");
  const auto k = w ? find_entry(w->second, "kind") : std::nullopt;
  if (k && k->second.IsScalar() && find_kind("workload", k->second.Scalar()) != nullptr)
    return k->second.Scalar();
  return "";
}

// Whether workload kind `workload` reads `key` (key_spec::workload_kinds):
// every kind reads a key that names none, and an empty kind reads every key.
bool read_by(const key_spec& key, const std::string& workload) {
  const auto& readers = key.workload_kinds;
  return workload.empty() || readers.empty() ||
         std::find(readers.begin(), readers.end(), workload) != readers.end();
}

// The keys of map `spec` where `doc` stands: its children, and the keys of
// the kind that `doc` names when `spec` has kinds; `kind` is that kind, or
// null when `doc` names no registered one.
std::vector<const key_spec*> keys_of(const key_spec& spec, const YAML::Node& doc,
                                     const kind_spec*& kind) {
  std::vector<const key_spec*> keys;
  for (const auto& c : spec.children) keys.push_back(&c);
  kind = nullptr;
  if (!spec.kinds.empty()) {
    const auto e = find_entry(doc, "kind");
    if (e && e->second.IsScalar()) kind = find_kind(spec.kinds, e->second.Scalar());
    if (kind != nullptr)
      for (const auto& c : kind->keys) keys.push_back(&c);
  }
  return keys;
}

// Whether `segments` names a key of the schema, reading kinds from `doc`;
// when not, `failed` is the segment it does not know and `candidates` the
// names that could stand there, and `value` (if given) is the key before
// `failed` where that is a value, which has no keys. `element`: `spec` is a
// list and `doc` one of its elements, a map of the list's children (walked
// in `spec` itself, so that `value` points into the schema).
bool schema_has_path(const key_spec& spec, YAML::Node doc, const std::vector<std::string>& segs,
                     std::size_t i, std::vector<std::string>& candidates, std::size_t& failed,
                     const key_spec** value = nullptr, bool element = false) {
  if (i == segs.size()) return true;
  const std::string& seg = segs[i];
  failed = i;
  candidates.clear();
  if (spec.type == value_type::list && !element) {
    std::size_t index = 0;
    if (!parse_index(seg, index)) return false;
    YAML::Node item = (doc.IsDefined() && doc.IsSequence() && index < doc.size()) ? doc[index]
                                                                                 : YAML::Node();
    if (spec.children.empty()) return i + 1 == segs.size();
    return schema_has_path(spec, item, segs, i + 1, candidates, failed, value, true);
  }
  if (spec.type != value_type::map && !element) {
    if (value != nullptr) *value = &spec;
    return false;
  }
  const kind_spec* kind = nullptr;
  const auto fields = keys_of(spec, doc, kind);
  // An unknown kind: validation will report the kind itself.
  const bool kind_unknown = !spec.kinds.empty() && kind == nullptr;
  for (const auto* f : fields) {
    candidates.push_back(f->name);
    if (f->name == seg) {
      const auto e = find_entry(doc, seg);
      return schema_has_path(*f, e ? e->second : YAML::Node(), segs, i + 1, candidates, failed,
                             value);
    }
  }
  return kind_unknown;
}

// Adds to `out` the dotted paths under `path` ("clock.dilation",
// "constellation.shells.<i>.planes", as explain writes them) of the keys
// named `name` in `spec` and below. Kinds are read from `doc` (keys_of;
// every kind's keys where `doc` names none); sections that the workload
// kind `workload` does not read are left out.
void paths_named(const key_spec& spec, const YAML::Node& doc, std::string_view name,
                 const std::string& path, const std::string& workload,
                 std::vector<std::string>& out) {
  const kind_spec* kind = nullptr;
  auto fields = keys_of(spec, doc, kind);
  if (!spec.kinds.empty() && kind == nullptr)
    for (const auto& k : kind_names(spec.kinds))
      for (const auto& c : find_kind(spec.kinds, k)->keys) fields.push_back(&c);
  for (const auto* f : fields) {
    if (!read_by(*f, workload)) continue;
    const std::string p = join_path(path, f->name);
    if (f->name == name && std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
    if (f->type == value_type::map) {
      const auto e = find_entry(doc, f->name);
      paths_named(*f, e ? e->second : YAML::Node(), name, p, workload, out);
    } else if (f->type == value_type::list) {
      paths_named(*f, YAML::Node(), name, p + ".<i>", workload, out);
    }
  }
}

// The hint of an error for the unknown key `key`, followed in a --set by
// `rest` (".0.planes" of "shells.0.planes"): the keys of that name elsewhere
// in the scenario's schema, as whole paths ("dilation": did you mean
// 'clock.dilation'?), else the nearest of `near`, the names that could
// stand there ("clokc": did you mean 'clock'?).
std::string unknown_key_hint(const YAML::Node& doc, std::string_view key, std::string_view rest,
                             const std::vector<std::string>& near) {
  std::vector<std::string> found;
  paths_named(base_schema(), doc, key, "", workload_kind_of(doc), found);
  std::vector<std::string> paths;
  for (const auto& p : found) {
    const std::string whole = absl::StrCat(p, av(rest));
    // A --set's rest must lead somewhere from there.
    const std::string indexed = absl::StrReplaceAll(whole, {{"<i>", "0"}});
    std::vector<std::string> segs = absl::StrSplit(indexed, '.');
    std::vector<std::string> unused;
    std::size_t failed = 0;
    if (schema_has_path(base_schema(), doc, segs, 0, unused, failed))
      paths.push_back(absl::StrCat("'", whole, "'"));
  }
  if (paths.empty()) return did_you_mean(key, near);
  constexpr std::size_t most = 4;
  const std::size_t shown = std::min(paths.size(), most);
  std::string list = absl::StrJoin(paths.begin(), paths.begin() + shown - 1, ", ");
  absl::StrAppend(&list, shown > 1 ? " or " : "", paths[shown - 1],
                  paths.size() > shown ? absl::StrCat(" (", paths.size() - shown, " more)") : "");
  return absl::StrCat(" (did you mean ", list, "?)");
}

// Every map and list of `node` and below, once per way to reach it: a node
// listed twice is shared through a YAML alias. False past `most` of them
// (aliases of aliases reach exponentially many).
bool list_containers(const YAML::Node& node, std::vector<YAML::Node>& out, std::size_t most,
                     int depth = 0) {
  if (depth > 256 || !(node.IsMap() || node.IsSequence())) return true;
  if (out.size() == most) return false;
  out.push_back(node);
  for (auto it = node.begin(); it != node.end(); ++it)
    if (!list_containers(node.IsMap() ? YAML::Node(it->second) : YAML::Node(*it), out, most,
                         depth + 1))
      return false;
  return true;
}

// `node` with `value` at `segs[i..]`, creating maps on the way; an error
// (without the --set prefix) if the path names a list element that does not
// exist, or a key of a list. A map is changed in
// place unless other paths share it (YAML aliases): then, like every list
// on the way, it is copied, so that the override changes only this path.
// Entries are replaced by removing and inserting them, never by assigning
// through a shared node.
absl::StatusOr<YAML::Node> with_path(const YAML::Node& node, const std::vector<std::string>& segs,
                                     std::size_t i, const YAML::Node& value,
                                     const std::vector<YAML::Node>& containers) {
  if (i == segs.size()) return value;
  const std::string& seg = segs[i];
  std::size_t index = 0;
  const bool numeric = parse_index(seg, index);
  if (node.IsSequence()) {
    const std::string list = absl::StrJoin(segs.begin(), segs.begin() + i, ".");
    if (!numeric)  // the schema has a map here (schema_has_path)
      return absl::InvalidArgumentError(
        absl::StrCat(list, " is a list in the scenario, where a map is expected"));
    if (index >= node.size())
      return absl::InvalidArgumentError(absl::StrCat(
        "no such list element in the scenario (", list, " has ", node.size(), ")"));
    auto item = with_path(node[index], segs, i + 1, value, containers);
    if (!item.ok()) return item.status();
    YAML::Node copy(YAML::NodeType::Sequence);
    copy.SetTag(node.Tag());
    copy.SetStyle(node.Style());
    for (std::size_t k = 0; k < node.size(); ++k) copy.push_back(k == index ? *item : node[k]);
    return copy;
  }
  if (numeric)  // schema maps have no numeric keys
    return absl::InvalidArgumentError("no such list element in the scenario");
  // The entry for `seg`, its key kept for its place in the file. One that
  // comes through a merge key `<<` is changed as a copy, which this map
  // then holds as its own key (own keys win over merged ones), so the
  // merged map's other keys stay.
  auto entry = find_entry(node, seg);
  bool own = false;
  if (entry)
    for (auto it = node.begin(); it != node.end() && !own; ++it)
      own = it->first.is(entry->first);
  const bool shared = node.IsMap() &&
                      std::count_if(containers.begin(), containers.end(),
                                    [&](const YAML::Node& c) { return c.is(node); }) > 1;
  auto child = with_path(entry ? entry->second : YAML::Node(), segs, i + 1, value, containers);
  if (!child.ok()) return child.status();
  if (entry && !own) entry->first = YAML::Node(seg);
  if (node.IsMap() && !shared) {
    YAML::Node map = node;  // the same node, changed in place
    if (entry) map.remove(entry->first);
    map.force_insert(entry ? entry->first : YAML::Node(seg), *child);
    return map;
  }
  YAML::Node map(YAML::NodeType::Map);
  if (node.IsMap()) {
    map.SetTag(node.Tag());
    map.SetStyle(node.Style());
    for (auto it = node.begin(); it != node.end(); ++it)
      if (!entry || !it->first.is(entry->first)) map.force_insert(it->first, it->second);
  }
  map.force_insert(entry ? entry->first : YAML::Node(seg), *child);
  return map;
}

// Sets `value` at `segs` in the map `doc` (see with_path).
absl::Status set_path(YAML::Node& doc, const std::vector<std::string>& segs,
                      const YAML::Node& value) {
  std::vector<YAML::Node> containers;
  constexpr std::size_t most = 1 << 20;
  if (!list_containers(doc, containers, most))
    return absl::InvalidArgumentError(absl::StrCat(
      "the scenario's aliases reach more than ", most,
      " maps and lists (aliases of aliases?): an override cannot tell which it changes"));
  auto changed = with_path(doc, segs, 0, value, containers);
  if (!changed.ok()) return changed.status();
  doc = *changed;
  return absl::OkStatus();
}

/// Where `text` first stops being well-formed UTF-8 (RFC 3629: no overlong
/// forms, surrogates or code points past U+10FFFF), if it does.
std::optional<std::size_t> invalid_utf8_at(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto b = static_cast<unsigned char>(text[i]);
    const int n = b < 0x80 ? 0 : b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2
                                                            : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
    if (n < 0 || text.size() - i <= static_cast<std::size_t>(n))
      return i;
    for (int k = 1; k <= n; ++k)
      if ((static_cast<unsigned char>(text[i + k]) & 0xC0) != 0x80)
        return i;
    if (n >= 2) {
      const auto c = static_cast<unsigned char>(text[i + 1]);
      if ((b == 0xE0 && c < 0xA0) || (b == 0xED && c > 0x9F) || (b == 0xF0 && c < 0x90) ||
          (b == 0xF4 && c > 0x8F))
        return i;
    }
    i += static_cast<std::size_t>(n) + 1;
  }
  return std::nullopt;
}

} // namespace

std::string override_key(std::string_view override_text) {
  const auto eq = override_text.find('=');
  if (eq == std::string_view::npos)
    return {};
  return std::string(absl::StripAsciiWhitespace(absl::string_view(override_text.data(), eq)));
}

namespace {

absl::Status apply_override(YAML::Node& doc, const std::string& text,
                            std::vector<override_entry>& applied) {
  if (auto at = invalid_utf8_at(text))
    return absl::InvalidArgumentError(absl::StrFormat(
      "--set %s: not valid UTF-8 (byte 0x%02X at offset %d)", text.substr(0, *at),
      static_cast<unsigned char>(text[*at]), *at));
  const std::size_t eq = text.find('=');
  const std::string key = override_key(text);
  if (key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set ", text, ": expected key.path=value, e.g. --set clock.mode=realtime"));
  }
  std::vector<std::string> segs = absl::StrSplit(key, '.');
  std::vector<std::string> candidates;
  std::size_t failed = segs.size() - 1;
  const key_spec* value_key = nullptr;
  if (std::any_of(segs.begin(), segs.end(), [](const std::string& s) { return s.empty(); }) ||
      !schema_has_path(base_schema(), doc, segs, 0, candidates, failed, &value_key)) {
    const std::string rest = absl::StrJoin(segs.begin() + failed + 1, segs.end(), ".");
    std::string hint =
      unknown_key_hint(doc, segs[failed], rest.empty() ? "" : "." + rest, candidates);
    if (hint.empty() && value_key != nullptr)
      hint = absl::StrCat(" (", absl::StrJoin(segs.begin(), segs.begin() + failed, "."),
                          " is a value, not a map: ", describe_expected(*value_key), ")");
    return absl::InvalidArgumentError(
      absl::StrCat("--set ", key, ": unknown key '", key, "'", hint));
  }
  // The path as the validator spells it (list index 01 is 1), so that
  // errors in the value are reported at this --set.
  for (auto& seg : segs)
    if (std::size_t index = 0; parse_index(seg, index)) seg = std::to_string(index);
  const std::string value_text = text.substr(eq + 1);
  YAML::Node value;
  if (absl::StripAsciiWhitespace(value_text).empty()) {
    value = YAML::Node(std::string());
  } else {
    try {
      const std::vector<YAML::Node> docs = load_all(value_text);
      if (docs.size() > 1)
        return absl::InvalidArgumentError(absl::StrCat(
            "--set ", key, ": the value holds ", docs.size(),
            " YAML documents ('---' starts one): give one value"));
      if (!docs.empty()) value = docs.front();
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat("--set ", key, ": cannot read value '", value_text, "': ",
                       yaml_error_text(e)));
    }
  }
  if (auto st = set_path(doc, segs, value); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", key, ": ", st.message()));
  }
  applied.push_back({absl::StrJoin(segs, "."), text});
  return absl::OkStatus();
}

std::string shortest(double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string canonical(const rnode& n) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return "";
        } else if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          return std::to_string(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return shortest(v);
        } else if constexpr (std::is_same_v<T, std::string>) {
          return v;
        } else {
          return to_string(v);
        }
      },
      n.value);
}

void emit(YAML::Emitter& out, const rnode& n) {
  switch (n.type) {
    case value_type::map:
      if (n.children.empty()) out << YAML::Flow;
      out << YAML::BeginMap;
      for (std::size_t i = 0; i < n.children.size(); ++i) {
        out << YAML::Key << n.names[i] << YAML::Value;
        emit(out, n.children[i]);
      }
      out << YAML::EndMap;
      return;
    case value_type::list: {
      const bool scalars = std::all_of(n.children.begin(), n.children.end(),
                                       [](const rnode& c) { return c.type != value_type::map; });
      if (scalars) out << YAML::Flow;
      out << YAML::BeginSeq;
      for (const auto& c : n.children) emit(out, c);
      out << YAML::EndSeq;
      return;
    }
    default:
      out << canonical(n);
      return;
  }
}

absl::StatusOr<std::string> read_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot open scenario file '", path, "': ", open_failure(path, errno)));
  }
  std::string text;
  char buf[65536];
  std::size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  const bool failed = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (failed) {
    return absl::NotFoundError(
        absl::StrCat("cannot read scenario file '", path, "': ", std::strerror(err)));
  }
  return text;
}

} // namespace

struct scenario::impl {
  std::string source_name;
  std::string resolved;
  rnode root;
  std::vector<std::pair<std::string, std::string>> input_files;

  const rnode* find(std::string_view path) const {
    const rnode* n = &root;
    for (absl::string_view seg_a : absl::StrSplit(av(path), '.')) {
      const std::string_view seg = sv(seg_a);
      if (n->type == value_type::map) {
        auto it = std::find(n->names.begin(), n->names.end(), seg);
        if (it == n->names.end()) return nullptr;
        n = &n->children[static_cast<std::size_t>(it - n->names.begin())];
      } else if (n->type == value_type::list) {
        std::size_t index = 0;
        if (!parse_index(seg, index) || index >= n->children.size()) return nullptr;
        n = &n->children[index];
      } else {
        return nullptr;
      }
    }
    return n;
  }

  [[noreturn]] void die(std::string_view path, std::string_view what) const {
    std::fprintf(stderr, "satemu: scenario %s: %.*s: %.*s\n", source_name.c_str(),
                 static_cast<int>(path.size()), path.data(), static_cast<int>(what.size()),
                 what.data());
    std::abort();
  }

  template <class T>
  const T& get(std::string_view path, std::string_view type_name) const {
    const rnode* n = find(path);
    if (n == nullptr) die(path, "no such value (a key the schema does not declare, or absent)");
    const T* v = std::get_if<T>(&n->value);
    if (v == nullptr) die(path, absl::StrCat("is a ", av(to_string(n->type)), ", not a ", av(type_name)));
    return *v;
  }
};

scenario::scenario(std::shared_ptr<const impl> p) : impl_(std::move(p)) {}
scenario::~scenario() = default;

bool scenario::has(std::string_view path) const { return impl_->find(path) != nullptr; }

std::string scenario::get_string(std::string_view path) const {
  return impl_->get<std::string>(path, "string");
}
std::int64_t scenario::get_int(std::string_view path) const {
  return impl_->get<std::int64_t>(path, "integer");
}
double scenario::get_real(std::string_view path) const {
  if (const rnode* n = impl_->find(path); n != nullptr && n->type == value_type::integer) {
    return static_cast<double>(std::get<std::int64_t>(n->value));
  }
  return impl_->get<double>(path, "real");
}
bool scenario::get_bool(std::string_view path) const { return impl_->get<bool>(path, "boolean"); }
duration scenario::get_duration(std::string_view path) const {
  return impl_->get<duration>(path, "duration");
}
distance scenario::get_distance(std::string_view path) const {
  return impl_->get<distance>(path, "distance");
}
angle scenario::get_angle(std::string_view path) const { return impl_->get<angle>(path, "angle"); }
data_size scenario::get_data_size(std::string_view path) const {
  return impl_->get<data_size>(path, "data size");
}
data_rate scenario::get_data_rate(std::string_view path) const {
  return impl_->get<data_rate>(path, "data rate");
}
std::size_t scenario::list_size(std::string_view path) const {
  const rnode* n = impl_->find(path);
  if (n == nullptr || n->type != value_type::list) impl_->die(path, "is not a list");
  return n->children.size();
}
const std::string& scenario::resolved_yaml() const { return impl_->resolved; }
const std::string& scenario::source_name() const { return impl_->source_name; }

const std::vector<std::pair<std::string, std::string>>& scenario::input_files() const {
  return impl_->input_files;
}

namespace {

// A map departs when any of its keys does.
bool any_departs(const rnode& n) {
  if (n.type != value_type::map)
    return !n.defaulted && !n.default_value;
  return std::any_of(n.children.begin(), n.children.end(), any_departs);
}

} // namespace

bool scenario::departs_from_default(std::string_view path) const {
  const rnode* n = impl_->find(path);
  return n != nullptr && any_departs(*n);
}

std::string scenario::where(std::string_view path) const {
  const rnode* n = impl_->find(path);
  if (n == nullptr || n->location.empty() || n->defaulted)
    return impl_->source_name;
  // A map that a --set made has no place of its own: its first key given has.
  if (n->type == value_type::map && n->location == impl_->source_name)
    for (const auto& c : n->children)
      if (!c.defaulted && !c.location.empty() && c.location != impl_->source_name)
        return c.location;
  return n->location;
}

absl::StatusOr<scenario> load_scenario_text(std::string_view yaml, std::string source_name,
                                            const std::vector<std::string>& overrides) {
  try {
    // Names and every other text end up in JSON, CSV and CZML outputs.
    if (auto at = invalid_utf8_at(yaml)) {
      const auto before = yaml.substr(0, *at);
      const auto line = std::count(before.begin(), before.end(), '\n') + 1;
      const auto nl = before.rfind('\n');
      const auto column = *at - (nl == std::string_view::npos ? 0 : nl + 1) + 1;
      return absl::InvalidArgumentError(absl::StrFormat(
        "%s:%d:%d: not valid UTF-8 (byte 0x%02X): save the scenario as UTF-8", source_name, line,
        column, static_cast<unsigned char>(yaml[*at])));
    }
    YAML::Node doc;
    try {
      // One document: a second one (after '---' or '...') would be ignored.
      auto docs = load_all(std::string(yaml));
      if (docs.size() > 1)
        return absl::InvalidArgumentError(absl::StrCat(
          source_name, ":", docs[1].Mark().is_null() ? 1 : docs[1].Mark().line + 1,
          ": a second YAML document (after '---' or '...'): a scenario is one document"));
      if (!docs.empty())
        doc = docs[0];
    } catch (const YAML::ParserException& e) {
      std::string where = e.mark.is_null()
                              ? source_name
                              : absl::StrCat(source_name, ":", e.mark.line + 1, ":", e.mark.column + 1);
      // YAML indents with spaces only: a tab there is a common slip whose
      // parser message does not say so.
      std::string hint;
      if (!e.mark.is_null()) {
        const std::vector<absl::string_view> lines = absl::StrSplit(av(yaml), '\n');
        for (int l = std::max(0, e.mark.line - 1); l <= e.mark.line; ++l) {
          const auto i = static_cast<std::size_t>(l);
          if (i >= lines.size())
            break;
          const auto text = lines[i];
          const auto indent = text.substr(0, text.find_first_not_of(" \t"));
          if (absl::StrContains(indent, '\t')) {
            hint = absl::StrCat(" (line ", l + 1, " is indented with a tab: YAML indents with "
                                "spaces only)");
            break;
          }
        }
      }
      return absl::InvalidArgumentError(
        absl::StrCat(where, ": malformed YAML: ", yaml_error_text(e), hint));
    }
    if (!doc.IsDefined() || doc.IsNull()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source_name, ":1:1: the scenario is empty; it needs at least name, "
                                    "duration and workload"));
    }
    if (!doc.IsMap()) {
      const YAML::Mark m = doc.Mark();
      return absl::InvalidArgumentError(absl::StrCat(source_name, ":", m.line + 1, ":",
                                                     m.column + 1,
                                                     ": expected a map of scenario keys at the top level"));
    }
    std::vector<override_entry> applied;
    for (const auto& o : overrides) {
      if (auto s = apply_override(doc, o, applied); !s.ok()) return s;
    }
    auto p = std::make_shared<scenario::impl>();
    p->source_name = source_name;
    validator v(p->source_name, applied);
    if (auto s = v.root(doc, p->root); !s.ok()) return s;
    p->input_files = std::move(v.input_files());
    YAML::Emitter out;
    emit(out, p->root);
    p->resolved = std::string(out.c_str()) + "\n";
    return scenario(std::move(p));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source_name, ": ", e.what()));
  }
}

absl::StatusOr<scenario> load_scenario_file(const std::string& path,
                                            const std::vector<std::string>& overrides) {
  auto text = read_file(path);
  if (!text.ok()) return text.status();
  return load_scenario_text(*text, path, overrides);
}

} // namespace satemu::runtime
