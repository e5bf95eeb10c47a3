// jemalloc's options, read when it starts (MALLOC_CONF in the environment
// still overrides them). Compiled into the programs that link jemalloc
// (CMake target satemu_malloc).
//
// tcache_max: each thread keeps freed blocks of up to 4 MiB for reuse, not
// only those of up to 32 KiB. Messages of tens of KiB to megabytes (a KV
// chunk of 16 tokens is 512 KiB for Llama-3.2-1B, 2 MiB for Mixtral-8x7B)
// otherwise went to the arena on every allocation and had their pages
// faulted in again: encoding and decoding a 64 KiB mesh message took 38 us
// instead of 1.9 us, a 3 MiB KV put 2.2 ms instead of 0.63 ms, and
// skymemory-starlink ran in 9.4 s instead of 4.5 s (bench/README.md).
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "tcache_max:4194304";
}
