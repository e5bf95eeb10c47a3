# Messages between the nodes of a distributed run (coordinator <-> worker).
# Every message crosses CAF as a `satemu::node_frame` holding one flat
# NodeMessage (protocol/node.hpp). The protocol is described in
# runtime/node.hpp; this file only says what each field holds.
#
# Evolution: add new kinds at the end of the union; never renumber. A node
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
    setup @9 :Setup;
    ready @10 :Ready;
    grant @11 :Grant;
    report @12 :Report;
    results @13 :Results;
    abort @14 :Abort;
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

  # --- The run (runtime/distributed.hpp) ---

  # Coordinator -> worker: host your share of this run.
  struct Setup {
    scenario @0 :Text;         # the resolved scenario (YAML), as the coordinator loaded it
    node @1 :UInt32;           # this worker's node index, 0-based
    nodes @2 :UInt32;          # number of worker nodes
    nodeOf @3 :List(UInt32);   # per entity id: the node that hosts it
    threads @4 :UInt32;        # scheduler threads for the run; 0 = the worker's own choice
  }

  # A file the scenario names, as one node read it.
  struct InputFile {
    key @0 :Text;              # the scenario key naming it, e.g. constellation.tle.file
    digest @1 :UInt64;         # a 64-bit digest of its bytes
  }

  # Worker -> coordinator: built and ready for the first grant.
  struct Ready {
    entities @0 :UInt64;       # entities this node hosts
    total @1 :UInt64;          # entities the scenario has (a cross-check)
    lookaheadNs @2 :Int64;     # the lookahead the worker derived (a cross-check)
    inputs @3 :List(InputFile);  # the files the scenario names (a cross-check: the same bytes)
  }

  # Coordinator -> worker: run every event before windowEnd, after taking in
  # the envelopes other nodes sent this node. With stop set, end the run and
  # send results instead.
  struct Grant {
    windowEnd @0 :Int64;
    stop @1 :Bool;
    interrupted @2 :Bool;      # with stop: the run ends early (partial outputs)
    batches @3 :List(Data);    # envelope batches (protocol/envelope_batch.hpp)
    windowStart @4 :Int64;     # the window's start: no envelope is due before it
  }

  # Worker -> coordinator: the window is done (the first one after the start).
  struct Report {
    nextNs @0 :Int64;          # earliest pending event of this node's entities; max Int64 = none
    events @1 :UInt64;         # events processed in the window
    batches @2 :List(Batch);   # envelopes for other nodes' entities
  }

  struct Batch {
    node @0 :UInt32;           # the node that hosts the receiving entities
    firstNs @1 :Int64;         # earliest delivery time in the batch
    count @2 :UInt64;          # envelopes in the batch
    data @3 :Data;             # protocol/envelope_batch.hpp encoding
  }

  # Worker -> coordinator, after a stop grant: what the node's entities ended with.
  struct Results {
    entities @0 :Data;         # per hosted entity: runtime/distributed.hpp encoding
    workload @1 :Data;         # the workload's node-wide state (e.g. topology epochs built)
    events @2 :UInt64;
    windows @3 :UInt64;        # windows this node worked in (it had events)
    crossEnvelopes @4 :UInt64; # envelopes it sent to other nodes
    crossBytes @5 :UInt64;     # their encoded size
    barrierWaitNs @6 :Int64;   # wall time spent waiting for grants
    computeRequests @7 :UInt64; # compute requests its GPU worker ran
    computeBatches @8 :UInt64;  # in this many batches
  }

  # Either side: the run cannot go on (the worker cannot build the scenario,
  # a grant was malformed, the coordinator gives up). The session stays
  # open for an `end`.
  struct Abort {
    reason @0 :Text;
  }
}
