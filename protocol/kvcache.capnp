# SkyMemory KV-cache messages between ground users, the cache servers on
# satellites and, when the LLM runs on a satellite, between a user and the
# satellite serving its prompt; carried hop by hop over the constellation.
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

# What the satellite that ran a user's prompt sends down (the LLM on a
# satellite): the first output token, then the last. Besides the token it
# carries the satellite's account of the request, for the user's records.
struct KvAnswer {
  last @0 :Bool;          # false: the first output token; true: the last
  receivedNs @1 :Int64;   # virtual time the satellite got the prompt
  sentNs @2 :Int64;       # virtual time this answer left the satellite
  cachedTokens @3 :UInt32;
  chunksFetched @4 :UInt32;
  chunksCorrupt @5 :UInt32;
  chunksMissing @6 :UInt32;
  bytesFetched @7 :UInt64;
  bytesPut @8 :UInt64;
  fetchNs @9 :Int64;
  prefillNs @10 :Int64;
  timedOut @11 :Bool;     # a lookup or get of the request timed out
  hidden @12 :Data;       # compute real: the last prompt token's final hidden state, fp32
  deviceWaitNs @13 :Int64; # before fetchNs, the wait for the satellite's device
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
    prompt :group {                # user -> serving satellite: run this prompt
      tokens @13 :List(UInt32);    # the prompt's tokens
      servers @14 :List(UInt32);   # the user's layout: block i on servers[i mod n]; empty = no cache
    }
    answer @15 :KvAnswer;          # satellite -> user: an output token of `request`
  }
}
