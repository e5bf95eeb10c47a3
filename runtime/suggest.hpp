/// What error messages say of words the program does not know: "did you
/// mean" hints (the known word nearest to a scenario key, a choice, a
/// command or a flag), and the word itself, quoted and clipped.
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

/// The most bytes of a text that messages show whole.
inline constexpr std::size_t shown_whole_up_to = 80;

/// `text` as a message shows it: whole when it is at most `whole_up_to`
/// bytes, else its first `whole_up_to - 20` (not cutting a UTF-8
/// character) and "...". Control characters (a newline) show as escapes
/// (\n, \x01), so that a message stays one line. A stray quote in a
/// scenario file can make the rest of the file one key: its error then
/// shows the key's start, not the whole file.
std::string clipped(std::string_view text, std::size_t whole_up_to = shown_whole_up_to);

/// clipped(text) in single quotes, followed by " (N bytes)" when clipped.
std::string in_quotes(std::string_view text);

} // namespace satemu::runtime
