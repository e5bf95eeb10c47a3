/// satemu scenario schema: every scenario key, declared once.
///
/// A `key_spec` gives a key's name, type, unit, default, range and help text.
/// The base schema holds the top-level keys (`name`, `seed`, `clock`,
/// `duration`, `threads`, `output`, `workload`); later layers add whole
/// sections with `register_section`, and each workload adds the keys of its
/// `workload.kind` with `register_workload_kind`. Validation
/// (runtime/scenario.hpp) and `satemu validate --explain` both read this
/// schema, so a key documented here is exactly a key that is accepted.
///
/// Registration is meant for program start-up, before any scenario is loaded;
/// it is serialised by a mutex, reading is not.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace satemu::runtime {

/// The type of a scenario value.
enum class value_type {
  boolean,    ///< true | false
  integer,    ///< 64-bit signed
  real,       ///< double
  string,     ///< any scalar, kept as text
  duration,   ///< runtime::duration, base unit ns
  distance,   ///< runtime::distance, base unit m
  angle,      ///< runtime::angle, base unit deg
  data_size,  ///< runtime::data_size, base unit bytes
  data_rate,  ///< runtime::data_rate, base unit bps
  choice,     ///< one of `key_spec::choices`, kept as text
  map,        ///< fields described by `key_spec::children`
  list,       ///< elements described by `element_type` / `children`
};

/// Short name of a type, e.g. "duration", "data rate".
std::string_view to_string(value_type t);

/// One scenario key. Build with the static builders and chain modifiers:
///
///     key_spec::map("clock", "Time model", {
///         key_spec::choice("mode", {"virtual", "realtime"}, "virtual", "..."),
///         key_spec::real("dilation", "1.0", "...").above(0)}),
///     key_spec::dur("duration", "", "Emulated time to run").mandatory().above(0),
struct key_spec {
  std::string name;
  value_type type = value_type::string;
  /// Default as YAML text ("60s", "[]"); empty means no default. A key with no
  /// default that is not required may be absent (`scenario::has` is false).
  std::string default_value;
  bool required = false;
  std::string help;
  /// Bounds for integer/real, for quantities in their base unit (ns, m, deg,
  /// bytes, bps), and for the elements of a list of scalars.
  std::optional<double> min, max;
  /// `min` excludes its bound (`> min` rather than `>= min`).
  bool min_exclusive = false;
  /// Allowed values of a choice (or of the elements of a list of choices).
  std::vector<std::string> choices;
  /// Words that are not choices but name one, as (word, choice): an error for
  /// the word suggests that choice rather than the nearest spelling.
  std::vector<std::pair<std::string, std::string>> synonyms;
  /// Fields of a map, and of each element of a list of maps.
  std::vector<key_spec> children;
  /// Printed by explain, e.g. "duration (ns, us, ms, s, min, h)".
  std::string unit_hint;
  /// For a list whose `children` is empty: the type of each element.
  value_type element_type = value_type::string;
  /// For a list: the smallest number of elements.
  std::size_t min_items = 0;
  /// For a map: when absent from the scenario it stays absent (`has` is
  /// false) instead of being created with its defaults.
  bool omit_if_absent = false;
  /// For a map: the name of a kind registry (e.g. "workload"). The map's
  /// `kind` child picks a registered kind, whose keys join `children`.
  std::string kinds;
  /// For a text key: its value names a file the run reads (listed by
  /// scenario::input_files, so that a distributed run can check that every
  /// node reads the same bytes).
  bool input_file = false;
  /// For a top-level section: the workload kinds that read it, and why the
  /// others do not (e.g. "runs no model"). A scenario of another kind that
  /// has the section is refused, naming its kind, before the section's own
  /// keys are checked. Empty: every kind.
  std::vector<std::string> workload_kinds;
  std::string other_kinds_note;

  bool operator==(const key_spec&) const = default;

  // Builders. `def` is the default as YAML text ("" = none).
  static key_spec boolean(std::string name, std::string def, std::string help);
  static key_spec integer(std::string name, std::string def, std::string help);
  static key_spec real(std::string name, std::string def, std::string help);
  static key_spec text(std::string name, std::string def, std::string help);
  static key_spec dur(std::string name, std::string def, std::string help);
  static key_spec dist(std::string name, std::string def, std::string help);
  static key_spec ang(std::string name, std::string def, std::string help);
  static key_spec size(std::string name, std::string def, std::string help);
  static key_spec rate(std::string name, std::string def, std::string help);
  static key_spec choice(std::string name, std::vector<std::string> choices, std::string def,
                         std::string help);
  static key_spec map(std::string name, std::string help, std::vector<key_spec> children);
  /// A list of scalars of type `element` (default "[]").
  static key_spec list(std::string name, value_type element, std::string help);
  /// A list of maps with fields `fields` (default "[]").
  static key_spec list_of_maps(std::string name, std::string help, std::vector<key_spec> fields);

  // Modifiers, for chaining on a builder's result.
  /// Required: the key must be present (clears any default).
  key_spec&& mandatory() &&;
  /// value >= v (base unit for quantities; element count is `items_at_least`).
  key_spec&& at_least(double v) &&;
  /// value > v.
  key_spec&& above(double v) &&;
  /// value <= v.
  key_spec&& at_most(double v) &&;
  /// A list needs at least n elements.
  key_spec&& items_at_least(std::size_t n) &&;
  /// A map that stays absent when not given (see `omit_if_absent`).
  key_spec&& optional_section() &&;
  /// Overrides the unit text printed by explain.
  key_spec&& with_unit_hint(std::string hint) &&;
  /// An error for `word` suggests `choice` (see `synonyms`).
  key_spec&& suggesting(std::string word, std::string choice) &&;
  /// The value names a file the run reads (see `input_file`).
  key_spec&& names_input_file() &&;
  /// A top-level section only `kinds` of workload read (see `workload_kinds`).
  key_spec&& read_by_workloads(std::vector<std::string> kinds, std::string others_note) &&;
};

/// One kind of a kinded map (e.g. a workload kind) and its extra keys.
struct kind_spec {
  std::string name;
  std::string help;
  std::vector<key_spec> keys;
  bool operator==(const kind_spec&) const = default;
};

/// The top-level map: base keys plus every registered section. Its
/// `workload.kind` choices are the registered workload kinds.
const key_spec& base_schema();

/// Adds a top-level section (or key). Registering the same spec again is a
/// no-op; a different spec under an existing name aborts (a programming
/// error, caught at start-up).
void register_section(key_spec section);

/// Adds a kind to the registry `registry` (the `kinds` field of some map).
/// Same rules as register_section: identical re-registration is a no-op,
/// a conflicting one aborts. `keys` must not contain `kind`.
void register_kind(std::string registry, std::string kind, std::string help,
                   std::vector<key_spec> keys);

/// register_kind("workload", ...): the keys of `workload: {kind: <kind>, ...}`.
void register_workload_kind(std::string kind, std::string help, std::vector<key_spec> keys);

/// The registered kind, or nullptr.
const kind_spec* find_kind(std::string_view registry, std::string_view kind);

/// Names of the kinds in `registry`, sorted.
std::vector<std::string> kind_names(std::string_view registry);

/// Text describing every key: dotted path, type and unit, default or
/// "required", allowed values or range, and help. Without `kind`: the base
/// schema followed by every registered workload kind. With `kind`: only that
/// workload kind's keys; InvalidArgument if it is not registered.
absl::StatusOr<std::string> explain(std::optional<std::string> kind = std::nullopt);

/// "a positive real number", "a duration >= 1ms", "one of a, b": how a
/// value of `spec` is described in error messages and by explain.
std::string describe_expected(const key_spec& spec);

} // namespace satemu::runtime
