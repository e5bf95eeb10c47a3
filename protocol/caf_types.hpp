/// @file caf_types.hpp
/// Registers the protocol's message types with CAF so that they can cross
/// process boundaries.

#pragma once

namespace caf {
class actor_system_config;
} // namespace caf

namespace satemu::protocol {

/// Adds `envelope` as "satemu::envelope" and, through CAF's own rule,
/// `std::vector<envelope>` as "std::vector<satemu::envelope>" (plus the
/// stream type CAF adds alongside), and `node_frame` as "satemu::node_frame"
/// (likewise with its vector and stream). Call once per config before the actor
/// system starts; every process of a run must register the same types.
void register_protocol_types(caf::actor_system_config& cfg);

} // namespace satemu::protocol
