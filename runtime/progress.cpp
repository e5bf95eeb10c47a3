#include "runtime/progress.hpp"

#include <unistd.h>

#include <algorithm>

namespace satemu::runtime {

progress_line::progress_line(mode m, vtime end, std::FILE* out)
  : tty_(isatty(fileno(out)) != 0), end_(end), out_(out) {
  enabled_ = m == mode::on || (m == mode::automatic && tty_);
}

progress_line::mode progress_line::parse(const std::string& s) {
  if (s == "on")
    return mode::on;
  if (s == "off")
    return mode::off;
  return mode::automatic;
}

void progress_line::update(const progress_info& p) {
  if (!enabled_ || p.wall_seconds < delay_s_)
    return;
  // Off a terminal every line stays in the log: print less often.
  if (!tty_ && p.wall_seconds - last_print_ < 10.0)
    return;
  last_print_ = p.wall_seconds;
  const double done = end_.ns() > 0 ? std::clamp(p.now.seconds() / end_.seconds(), 0.0, 1.0) : 0;
  const double rate = p.wall_seconds > 0 ? static_cast<double>(p.events) / p.wall_seconds : 0;
  char eta[32] = "?";
  if (done > 0.001)
    std::snprintf(eta, sizeof eta, "%.0fs", p.wall_seconds * (1 - done) / done);
  std::fprintf(out_, "%s[satemu] emulated %.3fs / %.3fs (%4.1f%%)  %.3g events/s  ETA %s%s",
               tty_ ? "\r\033[K" : "", p.now.seconds(), end_.seconds(), done * 100, rate, eta,
               tty_ ? "" : "\n");
  std::fflush(out_);
  shown_ = true;
}

void progress_line::finish() {
  if (shown_ && tty_) {
    std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
}

} // namespace satemu::runtime
