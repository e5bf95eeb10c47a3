# Packets of constant-rate flows between ground endpoints, carried hop by hop
# over the constellation. Kind: satemu::protocol::kind::flow.
@0xe4f1a7b2c3d49586;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("satemu::protocol::schema");

struct FlowPacket {
  flow @0 :UInt32;       # flow number, per scenario
  seq @1 :UInt64;        # packet number within the flow
  origin @2 :UInt32;     # entity that sent the packet
  target @3 :UInt32;     # entity the packet is for
  sentNs @4 :Int64;      # emulated time the packet left its origin [ns]
  pathChanged @5 :Bool;  # route at sending differs from the flow's previous packet's
  body @6 :Data;         # filler up to the configured packet size
}
