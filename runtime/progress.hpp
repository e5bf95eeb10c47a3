/// satemu progress line: emulated time, events per second and ETA on a
/// terminal, for runs longer than a few seconds.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

#include "runtime/kernel.hpp"

namespace satemu::runtime {

class progress_line {
public:
  enum class mode { automatic, on, off };
  /// `automatic` shows the line only when `out` is a terminal.
  progress_line(mode m, vtime end, std::FILE* out = stderr);

  /// Called with each progress snapshot; prints after `delay_s` of wall time.
  void update(const progress_info& p);
  /// The same for work counted in items (`what`, e.g. "points"): `done` of
  /// `total` after `wall_seconds`.
  void update_count(std::uint64_t done, std::uint64_t total, double wall_seconds,
                    const char* what);
  /// Clears the line (terminal) so later messages start on a clean line.
  void finish();

  static mode parse(const std::string& s);

private:
  /// Whether a line is due at `wall_seconds`; if so it counts as printed.
  bool due(double wall_seconds);
  /// Prints `text` as the line, with an ETA from the fraction `done`.
  void print(const std::string& text, double done, double wall_seconds);

  bool enabled_;
  bool tty_;
  bool shown_ = false;
  double last_print_ = 0;
  vtime end_;
  std::FILE* out_;
  double delay_s_ = 3.0;
};

} // namespace satemu::runtime
