/// "Did you mean" hints: the known word nearest to one the program does not
/// know (a scenario key, a choice, a command or a flag).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace satemu::runtime {

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and transpositions of two neighbours, each counting one.
std::size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate nearest to `word` within two edits and fewer edits than the
/// candidate has characters (the first of equally near ones), or "".
std::string nearest(std::string_view word, const std::vector<std::string>& candidates);

/// " (did you mean 'clock'?)" for nearest(), or "".
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

} // namespace satemu::runtime
