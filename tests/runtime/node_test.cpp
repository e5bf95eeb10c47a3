// The node layer without the satemu binary: address and worker-list
// parsing, secret files, node frames (encoding, checked decoding of
// malformed and truncated input), the protocol's MACs against RFC 4231 and
// against tampering, and a worker and a coordinator link in two processes
// (this test program again, started by fork and exec), checking that frame
// bytes cross intact, over plain TCP and over mutual TLS (which must hide
// them from the wire and refuse peers without TLS or with a certificate from
// another CA). The command-line worker is tested in tests/cli/worker_test.cpp.
#include "runtime/node.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "protocol/caf_types.hpp"
#include "protocol/node.hpp"
#include "tests/self_spawn.hpp"
#include "tests/tls_certs.hpp"

namespace satemu::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::node_message;

/// CAF's application identifier of satemu nodes (runtime/detail/node_caf.hpp),
/// sent in clear in CAF's handshake unless TLS wraps it.
constexpr const char* detail_app_identifier = "satemu-node-v1";

bool contains(const absl::Status& st, const std::string& needle) {
  return std::string(st.message()).find(needle) != std::string::npos;
}

// --- addresses ---------------------------------------------------------------

TEST(node_address, parses_host_and_port) {
  auto a = parse_node_address("127.0.0.1:7000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 7000);
  EXPECT_EQ(a->to_string(), "127.0.0.1:7000");

  a = parse_node_address("worker-3.example.org:65535");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "worker-3.example.org");
  EXPECT_EQ(a->port, 65535);

  a = parse_node_address("[::1]:80");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "::1");
  EXPECT_EQ(a->to_string(), "[::1]:80");

  a = parse_node_address("0.0.0.0:0");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "0.0.0.0");
  EXPECT_EQ(a->port, 0);
}

TEST(node_address, empty_host_means_loopback) {
  auto a = parse_node_address(":9000");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9000);
}

TEST(node_address, errors_name_the_bad_part) {
  struct bad_case {
    const char* text;
    const char* says;
  };
  for (const auto& c : std::initializer_list<bad_case>{
         {"", "empty"},
         {"localhost", "missing ':PORT'"},
         {"localhost:", "empty port"},
         {"localhost:http", "port \"http\" is not a number"},
         {"localhost:65536", "port \"65536\" is out of range"},
         {"localhost:1234567", "port \"1234567\" is out of range"},
         {"localhost:-1", "port \"-1\" is not a number"},
         {"::1:80", "write an IPv6 address in brackets"},
         {"[::1", "without a closing ']'"},
         {"[::1]80", "missing ':PORT' after ']'"},
         {"[]:80", "empty host"},
         {"bad host:80", "host \"bad host\" has the character ' '"},
         {"a/b:80", "has the character '/'"},
       }) {
    auto a = parse_node_address(c.text);
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(a.status(), c.says)) << c.text << " -> " << a.status();
    EXPECT_TRUE(contains(a.status(), std::string("\"") + c.text + "\"")) << a.status();
  }
}

TEST(worker_list, parses_entries_with_spaces) {
  auto l = parse_worker_list("127.0.0.1:7001, 127.0.0.1:7002 ,[::1]:7003");
  ASSERT_TRUE(l.ok()) << l.status();
  ASSERT_EQ(l->size(), 3u);
  EXPECT_EQ((*l)[0], (node_address{"127.0.0.1", 7001}));
  EXPECT_EQ((*l)[1], (node_address{"127.0.0.1", 7002}));
  EXPECT_EQ((*l)[2], (node_address{"::1", 7003}));
}

TEST(worker_list, errors_name_the_entry) {
  struct bad_case {
    const char* text;
    const char* says;
  };
  for (const auto& c : std::initializer_list<bad_case>{
         {"", "empty worker list"},
         {"  ", "empty worker list"},
         {"a:1,,b:2", "entry 2 is empty"},
         {"a:1,", "entry 2 is empty"},
         {"a:1,b", "entry 2: bad address \"b\": missing ':PORT'"},
         {"a:1,b:x", "entry 2: bad address \"b:x\": port \"x\" is not a number"},
         {"a:0", "entry 1 (\"a:0\"): port 0 names no worker"},
         {"a:1,b:2,a:1", "entry 3 (a:1) repeats entry 1"},
       }) {
    auto l = parse_worker_list(c.text);
    ASSERT_FALSE(l.ok()) << c.text;
    EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(l.status(), c.says)) << c.text << " -> " << l.status();
  }
}

// --- secret files ------------------------------------------------------------

class secret_file : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("satemu_node_test_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::string& content, mode_t mode = 0600) {
    const auto p = dir_ / name;
    {
      std::ofstream out(p, std::ios::binary | std::ios::trunc);
      out << content;
    }
    ::chmod(p.c_str(), mode);
    return p.string();
  }
  fs::path dir_;
};

TEST_F(secret_file, strips_one_trailing_newline) {
  EXPECT_EQ(*read_secret_file(write("a", "s3cret\n")), "s3cret");
  EXPECT_EQ(*read_secret_file(write("b", "s3cret\r\n")), "s3cret");
  EXPECT_EQ(*read_secret_file(write("c", "s3cret")), "s3cret");
  EXPECT_EQ(*read_secret_file(write("d", "s3cret\n\n")), "s3cret\n");
  EXPECT_EQ(*read_secret_file(write("e", std::string("a\0b\n", 4))), std::string("a\0b", 3));
  EXPECT_EQ(*read_secret_file(write("f", " spaces kept ")), " spaces kept ");
}

TEST_F(secret_file, missing_file_is_not_found_and_named) {
  const auto p = (dir_ / "nope").string();
  auto s = read_secret_file(p);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(contains(s.status(), p)) << s.status();
  EXPECT_TRUE(contains(s.status(), "No such file")) << s.status();
}

TEST_F(secret_file, empty_secret_is_an_error) {
  for (const char* content : {"", "\n", "\r\n"}) {
    const auto p = write("empty", content);
    auto s = read_secret_file(p);
    ASSERT_FALSE(s.ok()) << content;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(s.status(), "is empty")) << s.status();
    EXPECT_TRUE(contains(s.status(), p)) << s.status();
  }
}

TEST_F(secret_file, directory_and_huge_file_are_errors) {
  auto s = read_secret_file(dir_.string());
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.status(), "not a regular file")) << s.status();
  s = read_secret_file(write("huge", std::string(100000, 'x')));
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(contains(s.status(), "larger than")) << s.status();
}

TEST_F(secret_file, warns_about_readable_or_short_secrets) {
  const auto good = write("good", "0123456789abcdef0123\n", 0600);
  EXPECT_TRUE(secret_file_warnings(good, *read_secret_file(good)).empty());
  const auto open = write("open", "0123456789abcdef0123\n", 0644);
  auto w = secret_file_warnings(open, *read_secret_file(open));
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("readable by other users"), std::string::npos) << w[0];
  const auto shortp = write("short", "abc", 0600);
  w = secret_file_warnings(shortp, "abc");
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("only 3 bytes"), std::string::npos) << w[0];
}

// A worker reachable from the network without TLS is warned about.
TEST(listen_address, beyond_loopback_without_tls_is_warned_about) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "localhost"}) {
    EXPECT_TRUE(listen_warnings({host, 7000}, false).empty()) << host;
  }
  for (const char* host : {"0.0.0.0", "10.0.0.2", "::", "node1.example"}) {
    const auto w = listen_warnings({host, 7000}, false);
    ASSERT_EQ(w.size(), 1u) << host;
    EXPECT_NE(w[0].find(std::string("--listen ") + host + " can be reached from the network"),
              std::string::npos)
      << w[0];
    EXPECT_NE(w[0].find("exhaust this worker's memory"), std::string::npos) << w[0];
    EXPECT_TRUE(listen_warnings({host, 7000}, true).empty()) << host;
  }
}

// --- frames ------------------------------------------------------------------

std::vector<node_message> one_of_each() {
  std::string binary;
  for (int i = 0; i < 256; ++i)
    binary.push_back(static_cast<char>(i));
  // Text fields carry NULs inside too.
  const std::string with_nul("name: x\n\0# after a NUL\n", 23);
  return {
    protocol::node_hello{protocol::node_protocol_version, std::string(32, '\x01'), "satemu 0.1"},
    protocol::node_challenge{std::string(32, '\xfe')},
    protocol::node_response{std::string(32, '\0')},
    protocol::node_accepted{std::string(32, 'p'), 16, with_nul},
    protocol::node_refused{"authentication failed (wrong secret)"},
    protocol::node_ping{7, binary},
    protocol::node_pong{~std::uint64_t{0}, ""},
    protocol::node_end{with_nul},
    protocol::node_error{protocol::node_error_code::unsupported_frame, "no"},
    protocol::node_setup{with_nul, 1, 3, {0, 1, 2, 1}, 4},
    protocol::node_ready{2, 4, 1'000'000, {{"constellation.tle.file", 0x0123456789abcdefULL},
                                           {with_nul, 1}}},
    protocol::node_grant{5'000'000, true, true, {binary, "", std::string(9, 'e')}, 4'000'001},
    protocol::node_report{-1, 12, {{2, 7, 3, binary}, {0, 9, 1, ""}}},
    protocol::node_results{binary, "w", 1, 2, 3, 4, 5, 6, 7},
    protocol::node_abort{"cannot build"},
  };
}

TEST(node_frame, every_kind_round_trips) {
  const auto all = one_of_each();
  ASSERT_EQ(all.size(), std::variant_size_v<node_message>);
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].index(), i);
    const auto bytes = protocol::encode_node_message(all[i]).value();
    EXPECT_EQ(bytes.size() % 8, 0u);
    auto back = protocol::decode_node_message(bytes);
    ASSERT_TRUE(back.ok()) << protocol::node_kind_name(all[i]) << ": " << back.status();
    EXPECT_EQ(*back, all[i]) << protocol::node_kind_name(all[i]);
  }
}

TEST(node_frame, messages_too_big_for_a_frame_are_refused_before_encoding) {
  // One field at Cap'n Proto's limit encodes; one byte more is refused
  // (Cap'n Proto would throw), and so are two such fields (above 1 GiB).
  protocol::node_grant g;
  g.batches.emplace_back(protocol::max_node_blob_bytes, 'a');
  auto bytes = protocol::encode_node_message(g);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_GT(bytes->size(), protocol::max_node_blob_bytes);
  bytes = absl::StatusOr<std::string>();
  g.batches.emplace_back(protocol::max_node_blob_bytes, 'b');
  auto two = protocol::encode_node_message(g);
  EXPECT_EQ(two.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(two.status(), "a grant message of")) << two.status();
  EXPECT_TRUE(contains(two.status(), "bytes one frame carries")) << two.status();
  g.batches.pop_back();
  g.batches.front().push_back('c');
  auto wide = protocol::encode_node_message(g);
  EXPECT_EQ(wide.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(contains(wide.status(), "a field of 536870911 bytes")) << wide.status();
  auto scenario = protocol::encode_node_message(protocol::node_setup{g.batches.front(), 0, 1, {}, 0});
  EXPECT_TRUE(contains(scenario.status(), "a setup message would hold a field")) << scenario.status();
}

TEST(node_frame, decodes_from_unaligned_bytes) {
  const auto bytes = protocol::encode_node_message(protocol::node_ping{3, "abc"}).value();
  std::string shifted = "x" + bytes;
  auto back = protocol::decode_node_message(std::string_view(shifted).substr(1));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(std::get<protocol::node_ping>(*back).data, "abc");
}

TEST(node_frame, random_bytes_are_rejected) {
  std::mt19937_64 rng(42);
  for (std::size_t n : {1u, 7u, 8u, 16u, 24u, 64u, 100u, 256u, 4096u}) {
    for (int rep = 0; rep < 50; ++rep) {
      std::string junk(n, '\0');
      for (auto& c : junk)
        c = static_cast<char>(rng());
      auto m = protocol::decode_node_message(junk);
      EXPECT_FALSE(m.ok()) << n << " bytes, rep " << rep;
      if (!m.ok()) {
        EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << m.status();
      }
    }
  }
  EXPECT_TRUE(contains(protocol::decode_node_message("").status(), "empty frame"));
  EXPECT_TRUE(contains(protocol::decode_node_message("abc").status(), "not a multiple of 8"));
}

TEST(node_frame, every_truncation_is_rejected) {
  const auto bytes = protocol::encode_node_message(
    protocol::node_hello{protocol::node_protocol_version, std::string(32, 'n'), "satemu"})
                       .value();
  ASSERT_GT(bytes.size(), 48u);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    auto m = protocol::decode_node_message(std::string_view(bytes).substr(0, n));
    EXPECT_FALSE(m.ok()) << "prefix of " << n << " bytes";
  }
  // Trailing bytes are a defect too.
  auto m = protocol::decode_node_message(bytes + std::string(8, '\0'));
  EXPECT_FALSE(m.ok());
  EXPECT_TRUE(contains(m.status(), "trailing")) << m.status();
}

TEST(node_frame, unknown_kind_is_unimplemented) {
  auto bytes = protocol::encode_node_message(protocol::node_hello{protocol::node_protocol_version,
                                                                  std::string(32, 'n'), ""})
                 .value();
  // Flat layout: segment table (1 word), root pointer (1 word), then the
  // NodeMessage data section, whose first 16 bits are the union's tag.
  ASSERT_EQ(bytes[16], 0);
  ASSERT_EQ(bytes[17], 0);
  bytes[16] = 99;
  auto m = protocol::decode_node_message(bytes);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented) << m.status();
  EXPECT_TRUE(contains(m.status(), "unknown node message kind 99")) << m.status();
}

// --- cryptography --------------------------------------------------------------

std::string hex(const std::string& s) {
  std::string out;
  char buf[3];
  for (unsigned char c : s) {
    std::snprintf(buf, sizeof(buf), "%02x", c);
    out += buf;
  }
  return out;
}

TEST(node_crypto, hmac_sha256_matches_rfc4231) {
  // RFC 4231, test case 2, given as two parts to check the concatenation.
  EXPECT_EQ(hex(node_crypto::hmac_sha256("Jefe", {"what do ya want ", "for nothing?"})),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // Test case 1.
  EXPECT_EQ(hex(node_crypto::hmac_sha256(std::string(20, '\x0b'), {"Hi There"})),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

TEST(node_crypto, handshake_macs_are_bound_to_both_nonces_and_the_label) {
  const std::string wn(32, 'w');
  const std::string cn(32, 'c');
  const auto mac = node_crypto::coordinator_mac("secret", wn, cn);
  EXPECT_EQ(mac.size(), protocol::node_mac_bytes);
  EXPECT_EQ(mac, node_crypto::hmac_sha256("secret", {"satemu-v1", wn, cn}));
  EXPECT_NE(mac, node_crypto::coordinator_mac("Secret", wn, cn));
  EXPECT_NE(mac, node_crypto::coordinator_mac("secret", cn, wn));
  EXPECT_NE(mac, node_crypto::coordinator_mac("secret", std::string(32, 'x'), cn));
  EXPECT_NE(mac, node_crypto::worker_proof("secret", wn, cn));
  EXPECT_NE(mac, node_crypto::session_key("secret", wn, cn));
  EXPECT_TRUE(node_crypto::equal_constant_time(mac, node_crypto::coordinator_mac("secret", wn, cn)));
  EXPECT_FALSE(node_crypto::equal_constant_time(mac, mac.substr(0, 31)));
}

TEST(node_crypto, nonces_are_fresh) {
  auto a = node_crypto::random_bytes(32);
  auto b = node_crypto::random_bytes(32);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_NE(*a, *b);
}

TEST(node_crypto, sealed_frames_open_in_order) {
  const auto key = node_crypto::session_key("secret", std::string(32, 'w'), std::string(32, 'c'));
  node_crypto::frame_sealer seal(key, node_crypto::frame_direction::to_worker);
  node_crypto::frame_opener open(key, node_crypto::frame_direction::to_worker);
  for (int i = 1; i <= 3; ++i) {
    auto f = seal.seal("frame " + std::to_string(i));
    EXPECT_EQ(f.seq, static_cast<std::uint64_t>(i));
    EXPECT_EQ(f.tag.size(), 32u);
    EXPECT_TRUE(open.open(f).ok());
  }
}

TEST(node_crypto, tampered_replayed_reordered_or_reflected_frames_are_rejected) {
  const auto key = node_crypto::session_key("secret", std::string(32, 'w'), std::string(32, 'c'));
  node_crypto::frame_sealer seal(key, node_crypto::frame_direction::to_worker);
  node_crypto::frame_opener open(key, node_crypto::frame_direction::to_worker);
  auto f1 = seal.seal("one");
  auto f2 = seal.seal("two");

  auto tampered = f1;
  tampered.bytes[0] ^= 1;
  auto st = open.open(tampered);
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(contains(st, "wrong MAC")) << st;

  auto bad_tag = f1;
  bad_tag.tag[31] ^= 1;
  EXPECT_TRUE(contains(open.open(bad_tag), "wrong MAC"));

  auto untagged = f1;
  untagged.tag.clear();
  EXPECT_TRUE(contains(open.open(untagged), "no MAC"));

  auto renumbered = f1;
  renumbered.seq = 2;
  EXPECT_TRUE(contains(open.open(renumbered), "wrong MAC"));

  // Frame 2 before frame 1: its MAC is right but it is not due.
  st = open.open(f2);
  EXPECT_TRUE(contains(st, "frame number 2 where 1 was due")) << st;

  // Rejections did not advance the expected number.
  EXPECT_TRUE(open.open(f1).ok());
  EXPECT_TRUE(contains(open.open(f1), "where 2 was due")); // replay
  EXPECT_TRUE(open.open(f2).ok());

  // A frame sealed for the other direction, or under another key, fails.
  node_crypto::frame_sealer back(key, node_crypto::frame_direction::to_coordinator);
  node_crypto::frame_opener open2(key, node_crypto::frame_direction::to_worker);
  EXPECT_TRUE(contains(open2.open(back.seal("x")), "wrong MAC"));
  node_crypto::frame_sealer other(node_crypto::session_key("other", std::string(32, 'w'),
                                                           std::string(32, 'c')),
                                  node_crypto::frame_direction::to_worker);
  EXPECT_TRUE(contains(open2.open(other.seal("x")), "wrong MAC"));
}

// --- two processes -------------------------------------------------------------

/// What the child of forked_worker::start reads from its environment.
constexpr const char* worker_secret_var = "SATEMU_TEST_WORKER_SECRET";
constexpr const char* worker_handshake_ms_var = "SATEMU_TEST_WORKER_HANDSHAKE_MS";
constexpr const char* worker_log_var = "SATEMU_TEST_WORKER_LOG";
constexpr const char* worker_tls_var[] = {"SATEMU_TEST_WORKER_TLS_CERT",
                                          "SATEMU_TEST_WORKER_TLS_KEY",
                                          "SATEMU_TEST_WORKER_TLS_CA"};

/// Runs a worker in a child process, this test program again running the
/// test node_worker_child.DISABLED_serves (tests/self_spawn.hpp says why not a plain
/// fork); the parent gets the worker's port through a pipe.
struct forked_worker {
  pid_t pid = -1;
  std::uint16_t port = 0;

  static forked_worker start(const std::string& secret,
                             std::chrono::milliseconds handshake_timeout = 10s,
                             const std::string& log_path = "",
                             std::optional<tls_options> tls = std::nullopt) {
    std::vector<std::pair<std::string, std::string>> vars{
      {worker_secret_var, secret},
      {worker_handshake_ms_var, std::to_string(handshake_timeout.count())},
      {worker_log_var, log_path}};
    if (tls) {
      vars.emplace_back(worker_tls_var[0], tls->cert);
      vars.emplace_back(worker_tls_var[1], tls->key);
      vars.emplace_back(worker_tls_var[2], tls->ca);
    }
    const auto child = satemu::testing::spawn_self("node_worker_child.DISABLED_serves", vars);
    if (child.pid < 0)
      return {};
    std::uint16_t port = 0;
    if (::read(child.report, &port, sizeof(port)) != sizeof(port))
      port = 0;
    ::close(child.report);
    return {child.pid, port};
  }

  /// Exit code of the child, waiting at most `limit`; -1 if it did not exit
  /// (it is then killed).
  int wait_exit(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid)
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      std::this_thread::sleep_for(20ms);
    }
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    return -1;
  }
};

// The child of forked_worker::start, not a test by itself: disabled, so
// that only the child runs it.
TEST(node_worker_child, DISABLED_serves) {
  const int fd = satemu::testing::report_fd();
  if (fd < 0)
    GTEST_SKIP() << "the worker process of the two-process tests, not a test by itself";
  alarm(60);
  const auto env = [](const char* name) {
    const char* v = std::getenv(name);
    return std::string(v != nullptr ? v : "");
  };
  worker_options o;
  o.secret = env(worker_secret_var);
  o.node.threads = 1;
  if (!env(worker_tls_var[0]).empty())
    o.node.tls =
      tls_options{env(worker_tls_var[0]), env(worker_tls_var[1]), env(worker_tls_var[2])};
  o.handshake_timeout = std::chrono::milliseconds(std::atol(env(worker_handshake_ms_var).c_str()));
  o.log = [log_path = env(worker_log_var)](const std::string& line) {
    if (log_path.empty()) {
      std::fprintf(stderr, "[child worker] %s\n", line.c_str());
      return;
    }
    std::ofstream(log_path, std::ios::app) << line << "\n";
  };
  auto w = worker_node::start(std::move(o));
  std::uint16_t port = w.ok() ? w->address().port : 0;
  if (::write(fd, &port, sizeof(port)) != sizeof(port))
    _exit(90);
  ::close(fd);
  if (!w.ok())
    _exit(91);
  auto st = w->wait(std::chrono::seconds(50));
  _exit(st.ok() ? 0 : absl::IsUnavailable(st) ? 3 : 4);
}

TEST(node_link, frames_cross_two_processes_intact) {
  const std::string secret = "two-process test secret";
  auto w = forked_worker::start(secret);
  ASSERT_GT(w.pid, 0);
  ASSERT_NE(w.port, 0) << "the child worker did not start";
  {
    auto link = worker_link::connect({"127.0.0.1", w.port}, secret, 10s);
    ASSERT_TRUE(link.ok()) << link.status();
    EXPECT_TRUE(link->authenticated());
    EXPECT_EQ(link->worker_threads(), 1u);
    // Every byte value, sizes around word boundaries, and 1 MiB, echoed back.
    std::mt19937_64 rng(7);
    std::uint64_t seq = 0;
    for (std::size_t n : {0u, 1u, 7u, 8u, 9u, 255u, 256u, 4097u, 1u << 20}) {
      std::string data(n, '\0');
      for (std::size_t i = 0; i < n; ++i)
        data[i] = static_cast<char>(i < 256 ? i : rng());
      ASSERT_TRUE(link->send(protocol::node_ping{++seq, data}).ok());
      auto m = link->receive(10s);
      ASSERT_TRUE(m.ok()) << n << ": " << m.status();
      auto* pong = std::get_if<protocol::node_pong>(&*m);
      ASSERT_NE(pong, nullptr) << protocol::node_kind_name(*m);
      EXPECT_EQ(pong->seq, seq);
      ASSERT_EQ(pong->data.size(), n);
      EXPECT_TRUE(pong->data == data) << "payload of " << n << " bytes changed on the way";
    }
    auto st = link->close(10s);
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_EQ(w.wait_exit(20s), 0) << "the worker should end cleanly after `end`";
}

TEST(node_link, wrong_secret_is_refused_by_the_worker) {
  auto w = forked_worker::start("right secret");
  ASSERT_NE(w.port, 0);
  {
    auto link = worker_link::connect({"127.0.0.1", w.port}, "wrong secret", 10s);
    ASSERT_FALSE(link.ok());
    EXPECT_EQ(link.status().code(), absl::StatusCode::kPermissionDenied) << link.status();
    EXPECT_TRUE(contains(link.status(), "refused the connection: authentication failed"))
      << link.status();
  }
  {
    auto link = worker_link::connect({"127.0.0.1", w.port}, "right secret", 10s);
    ASSERT_TRUE(link.ok()) << link.status();
    EXPECT_TRUE(link->close(10s).ok());
  }
  EXPECT_EQ(w.wait_exit(20s), 0);
}

TEST(node_link, coordinator_notices_a_killed_worker) {
  auto w = forked_worker::start("s");
  ASSERT_NE(w.port, 0);
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 10s);
  ASSERT_TRUE(link.ok()) << link.status();
  kill(w.pid, SIGKILL);
  EXPECT_EQ(w.wait_exit(10s), 128 + SIGKILL);
  auto m = link->receive(10s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable) << m.status();
  EXPECT_TRUE(contains(m.status(), "worker 127.0.0.1:" + std::to_string(w.port) + " went down"))
    << m.status();
  EXPECT_FALSE(link->send(protocol::node_ping{1, ""}).ok());
}

TEST(node_link, coordinator_notices_a_silent_worker_after_the_connection_timeout) {
  auto w = forked_worker::start("s");
  ASSERT_NE(w.port, 0);
  node_options o;
  o.threads = 1;
  o.heartbeat_interval = 100ms;
  o.connection_timeout = 1000ms;
  auto sys = node_system::start(o);
  ASSERT_TRUE(sys.ok()) << sys.status();
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 10s, *sys);
  ASSERT_TRUE(link.ok()) << link.status();
  // A stopped process keeps its connection open but sends nothing.
  ASSERT_EQ(kill(w.pid, SIGSTOP), 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto m = link->receive(20s);
  const auto waited = std::chrono::steady_clock::now() - t0;
  kill(w.pid, SIGKILL);
  w.wait_exit(10s);
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable) << m.status();
  EXPECT_LT(waited, 10s) << "the connection timeout did not fire";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Polls `path` for `needle` for at most 10 s.
bool file_shows(const std::string& path, const std::string& needle) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (slurp(path).find(needle) != std::string::npos)
      return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

std::string temp_log(const char* name) {
  auto p = fs::temp_directory_path() /
           (std::string("satemu_node_") + name + "_" + std::to_string(getpid()) + ".log");
  fs::remove(p);
  return p.string();
}

TEST(node_link, a_stalled_handshake_is_refused_after_the_timeout) {
  const auto log = temp_log("stall");
  auto w = forked_worker::start("s", 300ms, log);
  ASSERT_NE(w.port, 0);
  {
    auto link = worker_link::open({"127.0.0.1", w.port}, 10s);
    ASSERT_TRUE(link.ok()) << link.status();
    ASSERT_TRUE(link->send(protocol::node_hello{protocol::node_protocol_version, std::string(32, 'c'), ""}).ok());
    auto m = link->receive(10s);
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_TRUE(std::holds_alternative<protocol::node_challenge>(*m));
    // ... and no response: the worker gives up on us.
    m = link->receive(10s);
    ASSERT_TRUE(m.ok()) << m.status();
    auto* refused = std::get_if<protocol::node_refused>(&*m);
    ASSERT_NE(refused, nullptr) << protocol::node_kind_name(*m);
    EXPECT_EQ(refused->reason, "handshake not completed within 300 ms");
    EXPECT_EQ(link->receive(10s).status().code(), absl::StatusCode::kUnavailable);
  }
  EXPECT_TRUE(file_shows(log, ": handshake not completed within 300 ms")) << slurp(log);
  // Still serving.
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 10s);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(link->close(10s).ok());
  EXPECT_EQ(w.wait_exit(20s), 0);
  fs::remove(log);
}

// Before a peer has authenticated, a frame bigger than a handshake message
// is refused by its size, before it is decoded.
TEST(node_link, a_big_frame_before_authentication_is_refused) {
  auto w = forked_worker::start("s");
  ASSERT_NE(w.port, 0);
  const std::string big(protocol::max_handshake_frame_bytes, 'x');
  auto refusal = [&](bool hello_first, const protocol::node_message& m) -> std::string {
    auto link = worker_link::open({"127.0.0.1", w.port}, 10s);
    EXPECT_TRUE(link.ok()) << link.status();
    if (!link.ok())
      return "";
    if (hello_first) {
      EXPECT_TRUE(link->send(protocol::node_hello{protocol::node_protocol_version,
                                                  std::string(32, 'c'), ""})
                    .ok());
      auto c = link->receive(10s);
      EXPECT_TRUE(c.ok() && std::holds_alternative<protocol::node_challenge>(*c));
    }
    EXPECT_TRUE(link->send(m).ok());
    auto r = link->receive(10s);
    EXPECT_TRUE(r.ok()) << r.status();
    if (!r.ok())
      return "";
    auto* refused = std::get_if<protocol::node_refused>(&*r);
    return refused != nullptr ? refused->reason : std::string(protocol::node_kind_name(*r));
  };
  // The first frame of a new peer, and a frame later in the handshake.
  const auto size = [](const protocol::node_message& m) {
    return std::to_string(protocol::encode_node_message(m).value().size());
  };
  const protocol::node_hello hello{protocol::node_protocol_version, std::string(32, 'c'), big};
  EXPECT_EQ(refusal(false, hello),
            "a frame of " + size(hello) + " bytes before authentication (at most 65536)");
  const protocol::node_response response{big};
  EXPECT_EQ(refusal(true, response),
            "a frame of " + size(response) + " bytes before authentication (at most 65536)");
  // A hello just under the limit is read (and refused for its nonce).
  EXPECT_EQ(refusal(false, protocol::node_hello{protocol::node_protocol_version, std::string(3, 'c'),
                                                std::string(60000, 'x')}),
            "hello with a nonce of 3 bytes (expected 32)");
  // Still serving.
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 10s);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(link->close(10s).ok());
  EXPECT_EQ(w.wait_exit(20s), 0);
}

TEST(node_link, messages_that_are_not_frames_are_dropped_and_logged) {
  const auto log = temp_log("nonframe");
  auto w = forked_worker::start("s", 10s, log);
  ASSERT_NE(w.port, 0);
  {
    // A bare CAF node (with satemu's application id, or BASP turns it away)
    // talks to the gate directly.
    caf::actor_system_config cfg;
    cfg.set("scheduler.max-threads", 1);
    cfg.set("logger.verbosity", caf::atom("quiet"));
    cfg.load<caf::io::middleman>();
    cfg.set("middleman.app-identifiers", std::vector<std::string>{"satemu-node-v1"});
    protocol::register_protocol_types(cfg);
    caf::actor_system sys{cfg};
    auto gate = sys.middleman().remote_actor("127.0.0.1", w.port);
    ASSERT_TRUE(gate) << sys.render(gate.error());
    caf::anon_send(*gate, std::string("let me in"), 42);
    // An anonymous frame has no one to answer to.
    protocol::node_frame f;
    f.bytes = protocol::encode_node_message(protocol::node_hello{protocol::node_protocol_version,
                                                                 std::string(32, 'c'), ""})
                .value();
    caf::anon_send(*gate, f);
    EXPECT_TRUE(file_shows(log, "dropped a message that is not a frame")) << slurp(log);
    EXPECT_TRUE(file_shows(log, "dropped a frame without a sender")) << slurp(log);
  }
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 10s);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(link->close(10s).ok());
  EXPECT_EQ(w.wait_exit(20s), 0);
  fs::remove(log);
}

TEST(node_link, nothing_listening_is_unavailable) {
  // A port that was free a moment ago: bind and release it.
  auto w = forked_worker::start("s");
  ASSERT_NE(w.port, 0);
  kill(w.pid, SIGKILL);
  w.wait_exit(10s);
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 5s);
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kUnavailable) << link.status();
  EXPECT_TRUE(contains(link.status(), "cannot connect to worker 127.0.0.1:")) << link.status();
  EXPECT_TRUE(contains(link.status(), "Connection refused")) << link.status();
}

/// A port whose host drops the packets, as a firewall or a wrong host
/// would: a listener with a backlog of 0 holding one connection it never
/// accepts, so that the kernel ignores every further SYN.
struct blackhole {
  int listener = -1, filler = -1;
  std::uint16_t port = 0;
  blackhole() {
    listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(listener, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(listener, 0) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(filler, reinterpret_cast<sockaddr*>(&a), len) == 0)
      port = ntohs(a.sin_port);
  }
  ~blackhole() {
    close(filler);
    close(listener);
  }
};

// CAF's connect blocks until the kernel gives up (about 2 minutes), and
// the actor system's shutdown with it: the probe ends the wait on time.
TEST(node_link, a_host_that_drops_the_packets_fails_within_the_timeout) {
  blackhole b;
  ASSERT_NE(b.port, 0);
  const auto t0 = std::chrono::steady_clock::now();
  auto link = worker_link::connect({"127.0.0.1", b.port}, "s", 1s);
  const auto took = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kUnavailable) << link.status();
  EXPECT_TRUE(contains(link.status(), "no TCP connection within 1 s")) << link.status();
  EXPECT_LT(took, 10s);
}

TEST(node_link, a_stop_ends_the_wait_for_a_host_that_drops_the_packets) {
  blackhole b;
  ASSERT_NE(b.port, 0);
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  auto link = worker_link::connect({"127.0.0.1", b.port}, "s", 60s, nullptr, &stop);
  const auto took = std::chrono::steady_clock::now() - t0;
  stopper.join();
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kCancelled) << link.status();
  EXPECT_LT(took, 10s);
}

// A second link from one node system to a worker it already has a session
// with reaches the same process (the coordinator refuses such a list by the
// node id) and gets no answer to its hello; a stop still ends the wait.
TEST(node_link, two_links_to_one_worker_name_its_node_and_a_stop_ends_a_silent_handshake) {
  auto w = forked_worker::start("s");
  ASSERT_NE(w.port, 0);
  node_options o;
  o.threads = 1;
  auto sys = node_system::start(o);
  ASSERT_TRUE(sys.ok()) << sys.status();
  auto first = worker_link::connect({"127.0.0.1", w.port}, "s", 10s, *sys);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = worker_link::open({"localhost", w.port}, 10s, *sys);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(first->worker_node().empty());
  EXPECT_EQ(first->worker_node(), second->worker_node());
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    std::this_thread::sleep_for(200ms);
    stop = true;
  });
  const auto t0 = std::chrono::steady_clock::now();
  const auto st = second->authenticate("s", 60s, &stop);
  const auto took = std::chrono::steady_clock::now() - t0;
  stopper.join();
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_TRUE(contains(st, "interrupted while waiting for worker localhost:")) << st;
  EXPECT_LT(took, 5s);
  // Another worker process is another node.
  auto other = forked_worker::start("s");
  ASSERT_NE(other.port, 0);
  auto third = worker_link::open({"127.0.0.1", other.port}, 10s, *sys);
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_NE(third->worker_node(), first->worker_node());
  kill(w.pid, SIGKILL);
  kill(other.pid, SIGKILL);
  w.wait_exit(10s);
  other.wait_exit(10s);
}

TEST(node_link, a_host_name_that_does_not_resolve_is_named) {
  auto st = worker_link::probe({"no-such-host.invalid", 7000}, 5s);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_TRUE(contains(st, "cannot resolve 'no-such-host.invalid'")) << st;
}

// --- TLS -------------------------------------------------------------------------

class node_tls : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           (std::string("satemu_tls_") + info->name() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    ASSERT_TRUE(testing::make_test_certs(dir_, certs_))
      << "openssl failed:\n" << read(dir_ / "openssl.log");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  tls_options worker_tls() const {
    return {certs_.worker_cert, certs_.worker_key, certs_.ca};
  }
  tls_options coord_tls() const {
    return {certs_.coord_cert, certs_.coord_key, certs_.ca};
  }

  /// A coordinator's node system with `tls`.
  static std::shared_ptr<node_system> system_with(std::optional<tls_options> tls) {
    node_options o;
    o.threads = 2;
    o.tls = std::move(tls);
    auto s = node_system::start(o);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : nullptr;
  }

  fs::path dir_;
  testing::test_certs certs_;
};

TEST_F(node_tls, a_key_others_can_read_is_warned_about) {
  auto t = worker_tls();
  fs::permissions(t.key, fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_TRUE(tls_file_warnings(t).empty());
  fs::permissions(t.key, fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  const auto w = tls_file_warnings(t);
  ASSERT_EQ(w.size(), 1u);
  EXPECT_NE(w[0].find("TLS key"), std::string::npos) << w[0];
  EXPECT_NE(w[0].find("readable by other users (mode 0644)"), std::string::npos) << w[0];
}

TEST_F(node_tls, bad_files_are_named) {
  auto t = worker_tls();
  EXPECT_TRUE(check_tls_files(t).ok()) << check_tls_files(t);

  t.key = (dir_ / "missing.key").string();
  auto st = check_tls_files(t);
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound) << st;
  EXPECT_TRUE(contains(st, "--tls-key") && contains(st, "missing.key")) << st;

  t = worker_tls();
  t.cert = certs_.worker_key; // a key is not a certificate
  st = check_tls_files(t);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_TRUE(contains(st, "--tls-cert") && contains(st, "not a PEM certificate")) << st;

  t = worker_tls();
  t.key = certs_.coord_key;
  st = check_tls_files(t);
  EXPECT_TRUE(contains(st, "does not belong to the certificate")) << st;

  t = worker_tls();
  t.ca = certs_.worker_key;
  st = check_tls_files(t);
  EXPECT_TRUE(contains(st, "--tls-ca") && contains(st, "no PEM CA certificate")) << st;

  // Out of its validity the peer would refuse it, saying only that the
  // handshake failed.
  t = worker_tls();
  t.cert = certs_.expired_cert;
  t.key = certs_.expired_key;
  st = check_tls_files(t);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_TRUE(contains(st, "--tls-cert") &&
              contains(st, "the certificate expired on Jan  1 00:00:00 2021 GMT"))
    << st;

  // An encrypted key would make OpenSSL prompt on the terminal.
  const auto enc = (dir_ / "enc.key").string();
  ASSERT_EQ(std::system(("openssl pkey -in '" + certs_.worker_key + "' -aes128 -passout pass:x -out '" +
                         enc + "' 2>/dev/null")
                          .c_str()),
            0);
  t = worker_tls();
  t.key = enc;
  st = check_tls_files(t);
  EXPECT_TRUE(contains(st, "not an unencrypted PEM private key")) << st;

  // node_system refuses to start with a bad file rather than fail later.
  node_options o;
  o.threads = 1;
  o.tls = t;
  EXPECT_FALSE(node_system::start(o).ok());
}

/// Relays TCP connections from a local port to `target`, one at a time,
/// until one whose client sends bytes (the first is the connection probe,
/// which closes at once, though a plain worker may greet it first), and
/// records every byte of that one in either direction.
class tcp_tap {
public:
  explicit tcp_tap(std::uint16_t target) {
    listen_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(listen_, 1) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, target] {
      bool client_spoke = false;
      while (!client_spoke && relay(target, client_spoke)) {
      }
    });
  }
  ~tcp_tap() {
    if (thread_.joinable())
      thread_.join();
    ::close(listen_);
  }
  std::uint16_t port() const {
    return port_;
  }
  /// Everything seen, once the relayed connection has closed.
  const std::string& bytes() {
    if (thread_.joinable())
      thread_.join();
    return seen_;
  }

private:
  /// Relays one connection, recording it in `seen_` (in place of the last
  /// one) and whether its client sent anything; false when none was made.
  bool relay(std::uint16_t target, bool& client_spoke) {
    seen_.clear();
    const int in = ::accept(listen_, nullptr, nullptr);
    const int out = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(target);
    if (in < 0 || ::connect(out, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(in);
      ::close(out);
      return false;
    }
    pollfd fds[2] = {{in, POLLIN, 0}, {out, POLLIN, 0}};
    char buf[65536];
    // Ends when either side closes, or after 30 s of silence.
    while (::poll(fds, 2, 30000) > 0) {
      bool closed = false;
      for (int i = 0; i < 2; ++i) {
        if (fds[i].revents == 0)
          continue;
        const auto n = ::read(fds[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          closed = true;
          break;
        }
        seen_.append(buf, static_cast<std::size_t>(n));
        client_spoke = client_spoke || i == 0;
        // No SIGPIPE when the probe has gone.
        if (::send(fds[1 - i].fd, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) {
          closed = true;
          break;
        }
      }
      if (closed)
        break;
    }
    ::close(in);
    ::close(out);
    return true;
  }

  int listen_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string seen_;
};

/// Pings the worker through a recording relay with `payload`; returns what
/// the relay saw. `tls` on both sides or on neither. The coordinator's
/// system is made after the fork, so the child is forked from a process with
/// no other threads (a lock held by one of them would stay held in the child).
std::string ping_through_tap(std::optional<tls_options> worker_tls,
                             const std::function<std::shared_ptr<node_system>()>& make_coord,
                             const std::string& payload) {
  const std::string secret = "tls test secret";
  auto w = forked_worker::start(secret, 10s, "", worker_tls);
  EXPECT_NE(w.port, 0) << "the child worker did not start";
  if (w.port == 0)
    return {};
  tcp_tap tap(w.port);
  const auto coord = make_coord();
  {
    auto link = worker_link::connect({"127.0.0.1", tap.port()}, secret, 10s, coord);
    EXPECT_TRUE(link.ok()) << link.status();
    if (link.ok()) {
      EXPECT_TRUE(link->send(protocol::node_ping{1, payload}).ok());
      auto m = link->receive(10s);
      EXPECT_TRUE(m.ok()) << m.status();
      if (m.ok()) {
        auto* pong = std::get_if<protocol::node_pong>(&*m);
        EXPECT_TRUE(pong != nullptr && pong->data == payload);
      }
      EXPECT_TRUE(link->close(10s).ok());
    }
  }
  EXPECT_EQ(w.wait_exit(20s), 0);
  return tap.bytes();
}

TEST_F(node_tls, frames_cross_mutual_tls_and_the_wire_shows_none_of_them) {
  const std::string payload = "satemu-cleartext-marker-0123456789";
  // The same relay shows the payload without TLS: the check below can fail.
  const auto plain =
      ping_through_tap(std::nullopt, [] { return system_with(std::nullopt); }, payload);
  EXPECT_NE(plain.find(payload), std::string::npos);
  EXPECT_NE(plain.find(detail_app_identifier), std::string::npos);

  const auto wire =
      ping_through_tap(worker_tls(), [this] { return system_with(coord_tls()); }, payload);
  ASSERT_GT(wire.size(), 1000u);
  EXPECT_EQ(wire.find(payload), std::string::npos) << "the payload crossed the wire in clear";
  EXPECT_EQ(wire.find(detail_app_identifier), std::string::npos) << "CAF's handshake in clear";
  // A TLS record: handshake (22), version 3.x.
  EXPECT_EQ(wire[0], '\x16');
  EXPECT_EQ(wire[1], '\x03');
}

TEST_F(node_tls, a_worker_refuses_peers_without_tls_or_from_another_ca_and_keeps_serving) {
  const std::string secret = "tls test secret";
  const auto log = (dir_ / "worker.log").string();
  auto w = forked_worker::start(secret, 10s, log, worker_tls());
  ASSERT_NE(w.port, 0) << "the child worker did not start";
  const node_address addr{"127.0.0.1", w.port};

  auto link = worker_link::connect(addr, secret, 5s, system_with(std::nullopt));
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kUnavailable) << link.status();
  EXPECT_TRUE(contains(link.status(), "worker 127.0.0.1:" + std::to_string(w.port)) &&
              contains(link.status(), "--tls-cert"))
    << link.status();

  // Another CA's certificate, trusting the worker's CA: the worker refuses it.
  link = worker_link::connect(addr, secret, 5s,
                              system_with(tls_options{certs_.rogue_cert, certs_.rogue_key, certs_.ca}));
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kUnavailable) << link.status();
  EXPECT_TRUE(contains(link.status(), "TLS handshake failed")) << link.status();

  // A coordinator that trusts only the other CA refuses the worker.
  link = worker_link::connect(addr, secret, 5s,
                              system_with(tls_options{certs_.coord_cert, certs_.coord_key,
                                                      certs_.other_ca}));
  ASSERT_FALSE(link.ok());
  EXPECT_TRUE(contains(link.status(), "TLS handshake failed")) << link.status();

  // TLS does not replace the secret.
  link = worker_link::connect(addr, "wrong secret", 5s, system_with(coord_tls()));
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kPermissionDenied) << link.status();

  link = worker_link::connect(addr, secret, 5s, system_with(coord_tls()));
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(link->close(10s).ok());
  EXPECT_EQ(w.wait_exit(20s), 0) << read(log);
}

TEST_F(node_tls, a_tls_coordinator_cannot_reach_a_plain_worker) {
  auto w = forked_worker::start("s", 10s, "", std::nullopt);
  ASSERT_NE(w.port, 0);
  auto link = worker_link::connect({"127.0.0.1", w.port}, "s", 5s, system_with(coord_tls()));
  ASSERT_FALSE(link.ok());
  EXPECT_EQ(link.status().code(), absl::StatusCode::kUnavailable) << link.status();
  EXPECT_TRUE(contains(link.status(), "TLS handshake failed")) << link.status();
  link = worker_link::connect({"127.0.0.1", w.port}, "s", 5s);
  ASSERT_TRUE(link.ok()) << link.status();
  EXPECT_TRUE(link->close(10s).ok());
  EXPECT_EQ(w.wait_exit(20s), 0);
}

} // namespace
} // namespace satemu::runtime
