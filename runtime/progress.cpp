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

bool progress_line::due(double wall_seconds) {
  if (!enabled_ || wall_seconds < delay_s_)
    return false;
  // Off a terminal every line stays in the log: print less often.
  if (!tty_ && wall_seconds - last_print_ < 10.0)
    return false;
  last_print_ = wall_seconds;
  return true;
}

void progress_line::print(const std::string& text, double done, double wall_seconds) {
  char eta[32] = "?";
  if (done > 0.001)
    std::snprintf(eta, sizeof eta, "%.0fs", wall_seconds * (1 - done) / done);
  std::fprintf(out_, "%s[satemu] %s  ETA %s%s", tty_ ? "\r\033[K" : "", text.c_str(), eta,
               tty_ ? "" : "\n");
  std::fflush(out_);
  shown_ = true;
}

void progress_line::update(const progress_info& p) {
  if (!due(p.wall_seconds))
    return;
  const double done = end_.ns() > 0 ? std::clamp(p.now.seconds() / end_.seconds(), 0.0, 1.0) : 0;
  const double rate = p.wall_seconds > 0 ? static_cast<double>(p.events) / p.wall_seconds : 0;
  char text[160];
  std::snprintf(text, sizeof text, "emulated %.3fs / %.3fs (%4.1f%%)  %.3g events/s",
                p.now.seconds(), end_.seconds(), done * 100, rate);
  print(text, done, p.wall_seconds);
}

void progress_line::update_count(std::uint64_t done, std::uint64_t total, double wall_seconds,
                                 const char* what) {
  if (!due(wall_seconds))
    return;
  const double f = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0;
  char text[160];
  std::snprintf(text, sizeof text, "%llu / %llu %s (%4.1f%%)",
                static_cast<unsigned long long>(done), static_cast<unsigned long long>(total),
                what, f * 100);
  print(text, f, wall_seconds);
}

void progress_line::finish() {
  if (shown_ && tty_) {
    std::fprintf(out_, "\r\033[K");
    std::fflush(out_);
  }
}

} // namespace satemu::runtime
