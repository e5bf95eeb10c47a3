#include "cli/report_command.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "cli/flags.hpp"
#include "cli/json_file.hpp"
#include "cli/run_command.hpp"
#include "nlohmann/json.hpp"
#include "runtime/files.hpp"

namespace satemu::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* footer =
  "RUN is a run's output directory (its summary.json; of a run that did not complete,\n"
  "summary.partial.json, with a note on stderr) or a summary file. Nested keys are joined\n"
  "with dots (metrics.latency_ms.p50), array elements numbered (nodes[0].threads); a key a\n"
  "run does not have reads '-'. The table rounds numbers to 6 significant digits; --csv\n"
  "writes them as the summaries hold them.\n"
  "\n"
  "Exit codes: 0 done, 1 internal error, 2 bad flags, a RUN without a readable summary, a\n"
  "--keys pattern that matches no key of the runs, or a --csv FILE that cannot be written.";

/// One run's summary, as read.
struct run_summary {
  std::string label;
  nlohmann::json figures;
};

absl::StatusOr<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return absl::NotFoundError(
      absl::StrCat(path, ": cannot open: ", runtime::open_failure(path, errno)));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read"));
  return text.str();
}

absl::StatusOr<run_summary> load_run(const std::string& arg) {
  std::string label = arg;
  while (label.size() > 1 && label.back() == '/')
    label.pop_back();
  std::error_code ec;
  std::string file = arg;
  if (fs::is_directory(arg, ec)) {
    file = (fs::path(arg) / "summary.json").string();
    if (!fs::exists(file, ec)) {
      const auto partial = (fs::path(arg) / "summary.partial.json").string();
      if (!fs::exists(partial, ec))
        return absl::NotFoundError(absl::StrCat(
          arg, ": holds neither summary.json nor summary.partial.json (not a satemu output "
               "directory, or its run ended before it wrote any output)"));
      file = partial;
    }
  }
  auto text = read_text(file);
  if (!text.ok())
    return text.status();
  run_summary run{std::move(label), {}};
  // Flattening recurses once per level: a file nested deeper than any
  // summary is refused as it is parsed (what is deeper is not kept).
  constexpr int max_depth = 64;
  bool too_deep = false;
  try {
    run.figures = nlohmann::json::parse(*text, [&](int depth, nlohmann::json::parse_event_t,
                                                   nlohmann::json&) {
      too_deep = too_deep || depth > max_depth;
      return !too_deep;
    });
  } catch (const nlohmann::json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
    std::string why = e.what();
    if (const auto at = why.find("] "); at != std::string::npos)
      why.erase(0, at + 2);
    return absl::InvalidArgumentError(absl::StrCat(file, ": not a JSON summary: ", why));
  }
  if (too_deep)
    return absl::InvalidArgumentError(absl::StrCat(
      file, ": not a satemu summary (nested deeper than ", max_depth, " levels)"));
  if (!run.figures.is_object())
    return absl::InvalidArgumentError(
      absl::StrCat(file, ": not a satemu summary (expected a JSON object)"));
  if (const auto done = run.figures.find("complete");
      done != run.figures.end() && done->is_boolean() && !done->get<bool>()) {
    std::string why;
    if (const auto it = run.figures.find("error"); it != run.figures.end() && it->is_string())
      why = absl::StrCat(": ", it->get<std::string>());
    std::fprintf(stderr, "satemu: note: %s: the run did not complete%s\n", run.label.c_str(),
                 why.c_str());
  }
  return run;
}

/// A flattened key: its parts, an array index as "[N]".
using key_path = std::vector<std::string>;

/// The index of an array element's part ("[12]"), or none for an object
/// key (which may look like one: a key is never compared as a number then).
std::optional<std::uint64_t> index_of(const std::string& part) {
  if (part.size() < 3 || part.size() > 21 || part.front() != '[' || part.back() != ']')
    return std::nullopt;
  std::uint64_t n = 0;
  for (std::size_t i = 1; i + 1 < part.size(); ++i) {
    if (part[i] < '0' || part[i] > '9')
      return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(part[i] - '0');
  }
  return n;
}

/// Object keys in byte order; the elements of an array in index order.
struct key_order {
  bool operator()(const key_path& a, const key_path& b) const {
    const auto n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; ++i) {
      if (a[i] == b[i])
        continue;
      const auto ia = index_of(a[i]);
      const auto ib = index_of(b[i]);
      if (ia && ib)
        return *ia < *ib;
      return a[i] < b[i];
    }
    return a.size() < b.size();
  }
};

std::string key_text(const key_path& key) {
  std::string text;
  for (const auto& part : key) {
    if (!text.empty() && (part.empty() || part.front() != '['))
      text += '.';
    text += part;
  }
  return text;
}

/// A value as the table shows it (`rounded`) and as the summary holds it.
struct cell {
  std::string rounded;
  std::string exact;
};

cell cell_of(const nlohmann::json& v) {
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    return {s, s};
  }
  const auto exact = v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (v.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return {buf, exact};
  }
  return {exact, exact};
}

using table = std::map<key_path, std::vector<std::optional<cell>>, key_order>;

void flatten(const nlohmann::json& v, key_path& key, std::size_t run, std::size_t runs,
             table& rows) {
  const bool leaf = !(v.is_object() || v.is_array()) || v.empty();
  if (leaf && !key.empty()) {
    auto& row = rows[key];
    row.resize(runs);
    row[run] = cell_of(v);
    return;
  }
  if (v.is_object()) {
    for (const auto& [name, child] : v.items()) {
      key.push_back(name);
      flatten(child, key, run, runs, rows);
      key.pop_back();
    }
  } else if (v.is_array()) {
    for (std::size_t i = 0; i < v.size(); ++i) {
      key.push_back(absl::StrCat("[", i, "]"));
      flatten(v[i], key, run, runs, rows);
      key.pop_back();
    }
  }
}

/// `text` against a glob whose `*` stands for any characters and `?` for
/// one; everything else, brackets too (`nodes[0].*`), stands for itself.
bool glob_match(const std::string& glob, const std::string& text) {
  std::size_t g = 0, t = 0;
  std::size_t star = std::string::npos, resume = 0;
  while (t < text.size()) {
    if (g < glob.size() && (glob[g] == '?' || glob[g] == text[t])) {
      ++g;
      ++t;
    } else if (g < glob.size() && glob[g] == '*') {
      star = g++;
      resume = t;
    } else if (star != std::string::npos) {
      g = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (g < glob.size() && glob[g] == '*')
    ++g;
  return g == glob.size();
}

bool matches(const std::string& pattern, const std::string& key) {
  if (glob_match(pattern, key))
    return true;
  // The keys under one it matches: "metrics.latency_ms" takes
  // metrics.latency_ms.p50, "sweeps[?]" sweeps[0].csv.
  for (std::size_t i = 1; i < key.size(); ++i) {
    if ((key[i] == '.' || key[i] == '[') && glob_match(pattern, key.substr(0, i)))
      return true;
  }
  return false;
}

bool all_same(const std::vector<std::optional<cell>>& row) {
  for (const auto& c : row) {
    if (!c || !row.front() || c->exact != row.front()->exact)
      return false;
  }
  return true;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos)
    return s;
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

/// The rows shown: each key's text and its cells.
using shown_rows = std::vector<std::pair<std::string, const std::vector<std::optional<cell>>*>>;

std::string csv_text(const std::vector<run_summary>& runs, const shown_rows& rows) {
  std::string out = "key";
  for (const auto& r : runs)
    absl::StrAppend(&out, ",", csv_field(r.label));
  out += "\n";
  for (const auto& [key, row] : rows) {
    out += csv_field(key);
    for (const auto& c : *row)
      absl::StrAppend(&out, ",", c ? csv_field(c->exact) : "");
    out += "\n";
  }
  return out;
}

} // namespace

CLI::App* add_report_subcommand(CLI::App& app, report_args& a) {
  auto* r = app.add_subcommand(
    "report", "Show the figures of runs' summaries side by side: one row per key, one column "
              "per run");
  r->add_option("runs", a.runs, "Runs' output directories or summary files")->required();
  r->add_flag("--diff", a.diff, "Only the keys whose values differ between the runs");
  r->add_option("--keys", a.keys,
                "Only the keys that match these patterns, e.g. 'metrics.latency_ms.*' ('*' any "
                "characters, '?' one; a pattern also takes the keys under what it matches: "
                "metrics.latency_ms)")
    ->allow_extra_args(false);
  r->add_option("--csv", a.csv, "Also write the table as CSV to this file ('-': to stdout, "
                                "instead of the table)")
    ->check(not_empty("a file name"));
  r->footer(footer);
  return r;
}

int report_command(const report_args& a) {
  if (a.diff && a.runs.size() < 2) {
    std::fprintf(stderr, "satemu: error: --diff compares runs: give two or more\n");
    return exit_bad_input;
  }
  // A file that cannot be written is refused before the table is printed.
  if (!a.csv.empty() && a.csv != "-") {
    if (auto st = write_flag_file("--csv", a.csv, nullptr); !st.ok())
      return report_error(st);
  }
  std::vector<run_summary> runs;
  for (const auto& arg : a.runs) {
    auto run = load_run(arg);
    if (!run.ok())
      return report_error(run.status());
    runs.push_back(std::move(*run));
  }

  table all;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    key_path key;
    flatten(runs[i].figures, key, i, runs.size(), all);
  }

  std::vector<bool> pattern_used(a.keys.size(), false);
  shown_rows rows;
  std::size_t same = 0;
  for (const auto& [key, row] : all) {
    const auto text = key_text(key);
    bool wanted = a.keys.empty();
    for (std::size_t p = 0; p < a.keys.size(); ++p) {
      if (matches(a.keys[p], text))
        pattern_used[p] = wanted = true;
    }
    if (!wanted)
      continue;
    if (a.diff && all_same(row)) {
      ++same;
      continue;
    }
    rows.emplace_back(text, &row);
  }
  for (std::size_t p = 0; p < a.keys.size(); ++p) {
    if (!pattern_used[p]) {
      std::fprintf(stderr,
                   "satemu: error: --keys %s: matches no key of %s (keys read like "
                   "metrics.latency_ms.p50; satemu report without --keys lists them all)\n",
                   a.keys[p].c_str(), runs.size() == 1 ? "this run" : "these runs");
      return exit_bad_input;
    }
  }

  const bool table_out = a.csv != "-";
  if (table_out) {
    std::size_t key_width = 3;
    for (const auto& [key, row] : rows)
      key_width = std::max(key_width, key.size());
    std::vector<std::size_t> widths;
    for (std::size_t i = 0; i < runs.size(); ++i) {
      std::size_t w = std::max<std::size_t>(runs[i].label.size(), 1);
      for (const auto& [key, row] : rows)
        w = std::max(w, (*row)[i] ? (*row)[i]->rounded.size() : 1);
      widths.push_back(w);
    }
    auto line = [&](const std::string& first, auto&& column) {
      std::string out = first;
      out.resize(key_width, ' ');
      for (std::size_t i = 0; i < runs.size(); ++i) {
        std::string c = column(i);
        if (i + 1 < runs.size())
          c.resize(widths[i], ' ');
        absl::StrAppend(&out, "  ", c);
      }
      std::cout << out << "\n";
    };
    line("key", [&](std::size_t i) { return runs[i].label; });
    for (const auto& [key, row] : rows)
      line(key, [&](std::size_t i) { return (*row)[i] ? (*row)[i]->rounded : "-"; });
  }
  std::cout.flush();
  if (a.diff && same > 0)
    std::fprintf(stderr, "satemu: %zu key%s with the same value in every run not shown\n", same,
                 same == 1 ? "" : "s");
  if (!a.csv.empty()) {
    const auto text = csv_text(runs, rows);
    if (!table_out) {
      std::cout << text;
    } else {
      if (auto st = write_flag_file("--csv", a.csv, &text); !st.ok())
        return report_error(st);
    }
  }
  std::cout.flush();
  return exit_ok;
}

} // namespace satemu::cli
