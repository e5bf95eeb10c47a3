/// satemu scenarios: loading, validation and typed access.
///
/// A scenario file is YAML checked strictly against the schema
/// (runtime/schema.hpp): unknown keys, wrong types, bad units and values out
/// of range are errors that name the file, line, column and key path:
///
///     scenarios/x.yaml:12:5: clock.dilation: expected a positive real number, got '-1'
///
/// Bad input gives InvalidArgument, a file that cannot be opened NotFound.
/// A loaded `scenario` is the validated tree with every default filled in;
/// its getters cannot fail for keys the schema declares.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/quantity.hpp"
#include "runtime/time.hpp"

namespace satemu::runtime {

/// A validated scenario: immutable, cheap to copy, safe to read from many
/// threads.
///
/// Paths are dotted key paths (`clock.mode`, `workload.requests`); list
/// elements are addressed by a zero-based index segment
/// (`ground.users.0.name`). Every getter requires that the path names a
/// present value of that type (`has(path)`; keys that are required or have
/// a default are always present). Asking for anything else is a programming
/// error and aborts with the path in the message. `get_real` also reads
/// integers, `get_string` also reads choices.
class scenario {
public:
  scenario(const scenario&) = default;
  scenario(scenario&&) noexcept = default;
  scenario& operator=(const scenario&) = default;
  scenario& operator=(scenario&&) noexcept = default;
  ~scenario();

  /// Whether `path` names a present value (of any type).
  bool has(std::string_view path) const;
  /// Whether `path` holds something other than the schema's default: given
  /// with another value (a key without a default: given at all). A resolved
  /// scenario's text gives every key, but its defaults do not depart; so a
  /// rule that refuses a key only when it departs accepts a resolved file.
  bool departs_from_default(std::string_view path) const;

  std::string get_string(std::string_view path) const;
  std::int64_t get_int(std::string_view path) const;
  double get_real(std::string_view path) const;
  bool get_bool(std::string_view path) const;
  runtime::duration get_duration(std::string_view path) const;
  runtime::distance get_distance(std::string_view path) const;
  runtime::angle get_angle(std::string_view path) const;
  runtime::data_size get_data_size(std::string_view path) const;
  runtime::data_rate get_data_rate(std::string_view path) const;
  /// Number of elements of the list at `path`.
  std::size_t list_size(std::string_view path) const;

  /// The whole scenario, defaults filled in and quantities in canonical form
  /// ("550km", "10Gbps", "1.5s"), keys in schema order. Loading this text
  /// gives a scenario with the same resolved text.
  const std::string& resolved_yaml() const;

  /// The file path (or the name given to load_scenario_text).
  const std::string& source_name() const;

  /// The files the run reads, as (key, path) in schema order: every
  /// non-empty value of a key that names an input file (a TLE file, model
  /// weights; key_spec::input_file).
  const std::vector<std::pair<std::string, std::string>>& input_files() const;

  /// Where the value at `path` was given, as "file:line:col" (or the
  /// `--set` override that gave it); just the file when it is a default.
  /// For errors that only the combination of several keys reveals.
  std::string where(std::string_view path) const;

  struct impl;

private:
  explicit scenario(std::shared_ptr<const impl> p);
  friend absl::StatusOr<scenario> load_scenario_text(std::string_view yaml,
                                                     std::string source_name,
                                                     const std::vector<std::string>& overrides);
  std::shared_ptr<const impl> impl_;
};

/// Reads, overrides and validates the scenario file at `path`.
///
/// `overrides` are `key.path=value` strings (from `--set`): the value is read
/// as a YAML scalar or flow value (`5ms`, `{mode: realtime}`; an empty value
/// is the empty string) and replaces or adds that key before validation.
/// Errors caused by an override name it as `--set key.path=value`.
/// NotFound when the file cannot be opened; InvalidArgument for bad input.
absl::StatusOr<scenario> load_scenario_file(const std::string& path,
                                            const std::vector<std::string>& overrides = {});

/// As load_scenario_file, from text; `source_name` is used in messages.
absl::StatusOr<scenario> load_scenario_text(std::string_view yaml, std::string source_name,
                                            const std::vector<std::string>& overrides = {});

/// The key an override `key.path=value` sets, as it is read (spaces around
/// it do not count); empty without '='.
std::string override_key(std::string_view override_text);

} // namespace satemu::runtime
