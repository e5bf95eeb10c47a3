// `satemu calibrate`: time this host's kernels and fit its roofline.
#pragma once

#include <string>

namespace satemu::cli {

struct calibrate_args {
  std::string backend = "auto";
  bool quick = false;
  /// cpu backend: threads of its kernels (0 = one per core), as compute.threads.
  int threads = 1;
  /// Also write the samples and the fit here (JSON), when not empty.
  std::string json;
};

int calibrate_command(const calibrate_args& a);

} // namespace satemu::cli
