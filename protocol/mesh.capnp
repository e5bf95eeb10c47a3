# The kernel's own test traffic: point-to-point messages between entities,
# used by the mesh workload and by benchmarks. Kind: satemu::protocol::kind::mesh.
@0x80a6c29933588ac4;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("satemu::protocol::schema");

struct MeshMessage {
  origin @0 :UInt32;     # entity id that created the message
  target @1 :UInt32;     # entity id it is addressed to
  createdNs @2 :Int64;   # emulated creation time [ns]
  id @3 :UInt64;         # unique per origin
  body @4 :Data;         # opaque filler of the requested size
}
