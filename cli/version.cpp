#include "cli/version.hpp"

#include "build_id.hpp" // generated at every build (cli/build_id.cmake)

namespace satemu::cli {

std::string software_version() {
  std::string v = "satemu " SATEMU_VERSION;
  if (const std::string id = SATEMU_BUILD_ID; !id.empty())
    v += " " + id;
  return v;
}

} // namespace satemu::cli
