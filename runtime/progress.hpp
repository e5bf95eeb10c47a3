/// satemu progress line: emulated time, events per second and ETA on a
/// terminal, for runs longer than a few seconds.
#pragma once

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
  /// Clears the line (terminal) so later messages start on a clean line.
  void finish();

  static mode parse(const std::string& s);

private:
  bool enabled_;
  bool tty_;
  bool shown_ = false;
  double last_print_ = 0;
  vtime end_;
  std::FILE* out_;
  double delay_s_ = 3.0;
};

} // namespace satemu::runtime
