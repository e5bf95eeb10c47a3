#include "runtime/compute.hpp"

namespace satemu::runtime {

compute_service::~compute_service() = default;

} // namespace satemu::runtime
