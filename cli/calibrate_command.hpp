// `satemu calibrate`: time this host's kernels and fit its roofline.
#pragma once

#include <string>

namespace satemu::cli {

struct calibrate_args {
  std::string backend = "auto";
  bool quick = false;
  /// Also write the samples and the fit here (JSON), when not empty.
  std::string json;
};

int calibrate_command(const calibrate_args& a);

} // namespace satemu::cli
