# SkyMemory KV-cache messages between ground users and the cache servers on
# satellites, carried hop by hop over the constellation.
# Kind: satemu::protocol::kind::kvcache.
@0xd2b6c41e9a7f3058;

using Cxx = import "/capnp/c++.capnp";
$Cxx.namespace("satemu::protocol::schema");

# One block of a prompt's KV cache: the block's chained hash, its place in
# the prompt, and its bytes, guarded by a checksum over all of them.
struct KvChunk {
  hash @0 :UInt64;       # chained hash of the block's tokens and its parent's hash
  index @1 :UInt32;      # block number within the prompt (0 = first)
  tokens @2 :UInt32;     # tokens in the block
  owner @3 :UInt32;      # user entity whose layout places the chunk
  checksum @4 :UInt64;   # kvChecksum(hash, index, tokens, data)
  data @5 :Data;         # the KV bytes (layers x kv heads x head dim x 2 x dtype x tokens)
}

enum KvError {
  notFound @0;           # a get for a chunk the server does not hold
  tooLarge @1;           # a put bigger than the server's whole capacity
  badChecksum @2;        # a put or migrated chunk that failed its checksum
}

struct KvMessage {
  request @0 :UInt64;    # request id, chosen by the user (0 for migrations)
  origin @1 :UInt32;     # entity that sent the message
  union {
    put @2 :KvChunk;               # store a chunk
    lookup @3 :List(UInt64);       # which of these hashes are held?
    lookupReply @4 :List(UInt64);  # the hashes of a lookup that are held
    get @5 :List(UInt64);          # send these chunks (one `chunk` message each)
    chunk @6 :KvChunk;             # a chunk answering a get
    migrate :group {               # move every chunk of `owner` to `target`
      owner @7 :UInt32;
      target @8 :UInt32;
    }
    migrateChunk @9 :KvChunk;      # a chunk moving between servers
    evictNotice @10 :List(UInt64); # chunks of the receiver evicted under capacity pressure
    error :group {
      code @11 :KvError;
      hash @12 :UInt64;
    }
  }
}
