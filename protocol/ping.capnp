# Ping requests and replies between ground endpoints, carried hop by hop over
# the constellation. Kind: satemu::protocol::kind::ping.
@0xc9a3b8cd385d341e;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("satemu::protocol::schema");

struct Ping {
  id @0 :UInt64;          # sequence number of the sample, per pinging endpoint
  origin @1 :UInt32;      # entity that sent the request
  target @2 :UInt32;      # entity the request is for
  sentNs @3 :Int64;       # emulated time the request left its origin [ns]
  reply @4 :Bool;         # false: request; true: the target's answer
  arrivedNs @5 :Int64;    # reply only: when the request reached the target [ns]
  requestHops @6 :UInt16; # reply only: links the request crossed
  body @7 :Data;          # filler up to the configured size
  pathChanged @8 :Bool;   # route differs from the previous request's to the target (echoed)
}
