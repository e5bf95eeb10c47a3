#include "cli/json_file.hpp"

#include <ostream>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "runtime/files.hpp"

namespace satemu::cli {

std::string json_text(const nlohmann::json& j) {
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

absl::Status write_flag_file(const char* flag, const std::string& path, const std::string* text) {
  auto st = runtime::write_file_atomically(path, [&](std::ostream& out) {
    if (text == nullptr)
      return absl::CancelledError("only a check");
    out << *text;
    return absl::OkStatus();
  });
  if (st.ok() || (text == nullptr && st.code() == absl::StatusCode::kCancelled))
    return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(flag, " ", st.message()));
}

} // namespace satemu::cli
