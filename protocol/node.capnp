# Messages between the nodes of a distributed run (coordinator <-> worker).
# Every message crosses CAF as a `satemu::node_frame` holding one flat
# NodeMessage (protocol/node.hpp). The protocol is described in
# runtime/node.hpp; this file only says what each field holds.
#
# Evolution: add new kinds at the end of the union (the run protocol will add
# setup, grant, done, envelopes, results and abort); never renumber. A node
# that receives a kind it does not know answers with an `error` frame of code
# `unsupportedFrame`.
@0xd01a01516a471667;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("satemu::protocol::schema");

struct NodeMessage {
  union {
    hello @0 :Hello;
    challenge @1 :Challenge;
    response @2 :Response;
    accepted @3 :Accepted;
    refused @4 :Refused;
    ping @5 :Probe;
    pong @6 :Probe;
    end @7 :End;
    error @8 :Error;
  }

  # Coordinator -> worker, first frame of a connection.
  struct Hello {
    version @0 :UInt32;    # node protocol version the coordinator speaks
    nonce @1 :Data;        # coordinator's fresh random nonce (32 bytes)
    software @2 :Text;     # e.g. "satemu 0.1.0", for logs only
  }

  # Worker -> coordinator, answer to hello.
  struct Challenge {
    nonce @0 :Data;        # worker's fresh random nonce (32 bytes)
  }

  # Coordinator -> worker, answer to challenge.
  struct Response {
    mac @0 :Data;          # HMAC-SHA256(secret, "satemu-v1" || worker nonce || coordinator nonce)
  }

  # Worker -> coordinator: the response was right; the session is open.
  struct Accepted {
    proof @0 :Data;        # HMAC-SHA256(secret, "satemu-v1-worker" || coordinator nonce || worker nonce)
    threads @1 :UInt32;    # scheduler threads of the worker
    software @2 :Text;     # e.g. "satemu 0.1.0", for logs only
  }

  # Worker -> coordinator: the handshake failed; the worker closes the connection.
  struct Refused {
    reason @0 :Text;
  }

  # ping: either side asks for a sign of life; pong echoes `seq` and `data`.
  struct Probe {
    seq @0 :UInt64;
    data @1 :Data;
  }

  # Coordinator -> worker: the session is over, the worker exits 0.
  # Worker -> coordinator: acknowledges an `end` right before exiting.
  struct End {
    reason @0 :Text;
  }

  # Either side: a frame was rejected. The session stays open.
  struct Error {
    code @0 :UInt16;       # satemu::protocol::node_error_code (pinned values)
    message @1 :Text;
  }
}
