// Node addresses, secret files, and the coordinator's link to a worker.
#include "runtime/node.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "caf/all.hpp"
#include "caf/io/all.hpp"
#include "runtime/detail/node_caf.hpp"

namespace satemu::runtime {

void print_worker_log(std::string_view line) {
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  char stamp[32] = "?";
  if (localtime_r(&now, &local) != nullptr)
    std::strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &local);
  std::fprintf(stderr, "[satemu worker] %s %.*s\n", stamp, static_cast<int>(line.size()),
               line.data());
  std::fflush(stderr);
}

// --- addresses --------------------------------------------------------------

namespace {

bool is_host_char(char c, bool bracketed) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
    return true;
  if (c == '.' || c == '-')
    return true;
  // IPv6 literals (and a zone index such as %eth0) only inside brackets.
  return bracketed && (c == ':' || c == '%' || c == '_');
}

std::string in_quotes(std::string_view s) {
  return absl::StrCat("\"", absl::string_view(s.data(), s.size()), "\"");
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

} // namespace

std::string node_address::to_string() const {
  if (host.find(':') != std::string::npos)
    return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

absl::StatusOr<node_address> parse_node_address(std::string_view text) {
  const auto bad = [&](std::string_view what) {
    return absl::InvalidArgumentError(
      absl::StrCat("bad address ", in_quotes(text), ": ", absl::string_view(what.data(), what.size()),
                   " (expected HOST:PORT, e.g. 127.0.0.1:7000 or [::1]:7000)"));
  };
  if (text.empty())
    return bad("empty");
  std::string_view host;
  std::string_view port;
  bool bracketed = false;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos)
      return bad("'[' without a closing ']'");
    host = text.substr(1, close - 1);
    const auto rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':')
      return bad("missing ':PORT' after ']'");
    port = rest.substr(1);
    bracketed = true;
    if (host.empty())
      return bad("empty host between '[' and ']'");
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return bad("missing ':PORT'");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return bad(absl::StrCat("host ", in_quotes(host),
                              " has a ':'; write an IPv6 address in brackets, e.g. [::1]:7000"));
  }
  for (char c : host)
    if (!is_host_char(c, bracketed))
      return bad(absl::StrCat("host ", in_quotes(host), " has the character '",
                              std::string(1, c), "'"));
  if (host.size() > 253)
    return bad("host longer than 253 characters");
  if (port.empty())
    return bad("empty port");
  if (port.size() > 5)
    return bad(absl::StrCat("port ", in_quotes(port), " is out of range 0..65535"));
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9')
      return bad(absl::StrCat("port ", in_quotes(port), " is not a number"));
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535)
    return bad(absl::StrCat("port ", in_quotes(port), " is out of range 0..65535"));
  node_address out;
  out.host = host.empty() ? std::string("127.0.0.1") : std::string(host);
  out.port = static_cast<std::uint16_t>(value);
  return out;
}

absl::StatusOr<std::vector<node_address>> parse_worker_list(std::string_view text) {
  std::vector<node_address> out;
  if (trim(text).empty())
    return absl::InvalidArgumentError(
      "empty worker list (expected HOST:PORT,HOST:PORT,...)");
  std::size_t index = 0;
  while (true) {
    ++index;
    const auto comma = text.find(',');
    const auto entry = trim(text.substr(0, comma));
    if (entry.empty())
      return absl::InvalidArgumentError(
        absl::StrCat("worker list: entry ", index, " is empty"));
    auto addr = parse_node_address(entry);
    if (!addr.ok())
      return absl::InvalidArgumentError(absl::StrCat(
        "worker list: entry ", index, ": ", addr.status().message()));
    if (addr->port == 0)
      return absl::InvalidArgumentError(absl::StrCat(
        "worker list: entry ", index, " (", in_quotes(entry), "): port 0 names no worker"));
    for (std::size_t i = 0; i < out.size(); ++i)
      if (out[i] == *addr)
        return absl::InvalidArgumentError(absl::StrCat("worker list: entry ", index, " (",
                                                       addr->to_string(),
                                                       ") repeats entry ", i + 1));
    out.push_back(std::move(*addr));
    if (comma == std::string_view::npos)
      break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

// --- secrets -----------------------------------------------------------------

absl::StatusOr<std::string> read_secret_file(const std::string& path) {
  constexpr std::size_t max_bytes = 64 * 1024;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return absl::NotFoundError(
      absl::StrCat("secret file ", in_quotes(path), ": cannot open: ", std::strerror(errno)));
  std::string secret;
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return absl::InvalidArgumentError(
      absl::StrCat("secret file ", in_quotes(path), ": not a regular file"));
  }
  char buf[4096];
  while (true) {
    const auto n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      const int err = errno;
      ::close(fd);
      return absl::InvalidArgumentError(
        absl::StrCat("secret file ", in_quotes(path), ": cannot read: ", std::strerror(err)));
    }
    if (n == 0)
      break;
    secret.append(buf, static_cast<std::size_t>(n));
    if (secret.size() > max_bytes) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(
        "secret file ", in_quotes(path), " is larger than ", max_bytes, " bytes; is it the right file?"));
    }
  }
  ::close(fd);
  if (!secret.empty() && secret.back() == '\n') {
    secret.pop_back();
    if (!secret.empty() && secret.back() == '\r')
      secret.pop_back();
  }
  if (secret.empty())
    return absl::InvalidArgumentError(absl::StrCat(
      "secret file ", in_quotes(path),
      " is empty; put the run's shared secret in it, e.g. head -c 32 /dev/urandom | base64 > ",
      path));
  return secret;
}

namespace {

/// "<what> FILE is readable by other users (mode 0644); chmod 600 it" when it is.
void warn_if_others_can_read(const std::string& what, const std::string& path,
                             std::vector<std::string>& out) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
    out.push_back(absl::StrFormat("%s %s is readable by other users (mode %04o); chmod 600 it",
                                  what, in_quotes(path), st.st_mode & 07777));
}

} // namespace

std::vector<std::string> secret_file_warnings(const std::string& path, const std::string& secret) {
  std::vector<std::string> out;
  warn_if_others_can_read("secret file", path, out);
  if (secret.size() < 16)
    out.push_back(absl::StrCat("the secret in ", in_quotes(path), " is only ", secret.size(),
                               secret.size() == 1 ? " byte" : " bytes",
                               "; use at least 16 random bytes"));
  return out;
}

std::vector<std::string> listen_warnings(const node_address& listen, bool tls) {
  const auto& h = listen.host;
  if (tls || h.starts_with("127.") || h == "::1" || h == "localhost")
    return {};
  return {absl::StrCat(
    "--listen ", h, " can be reached from the network, and without TLS frames are "
    "authenticated but not encrypted; moreover CAF's transport holds a message of whatever "
    "length its header declares (up to 4 GiB) before the worker can check who sent it, so "
    "anyone who reaches the port can exhaust this worker's memory: use --tls-cert, --tls-key "
    "and --tls-ca, or a network only the run's nodes reach")};
}

// --- TLS files -----------------------------------------------------------------

namespace {

/// OpenSSL's pending errors as one line (empties its error queue).
std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    absl::StrAppend(&out, out.empty() ? "" : "; ", buf);
  }
  return out.empty() ? std::string("no details from OpenSSL") : out;
}

/// An ASN.1 time as OpenSSL prints it ("Jan  1 00:00:00 2021 GMT").
std::string asn1_time_text(const ASN1_TIME* t) {
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  if (!out || ASN1_TIME_print(out.get(), t) != 1)
    return "an unreadable time";
  char* data = nullptr;
  const long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

/// An encrypted key would make OpenSSL ask for its passphrase on the
/// terminal, inside CAF's middleman: refuse it here instead.
int refuse_passphrase(char*, int, int, void*) {
  return -1;
}

} // namespace

std::vector<std::string> tls_file_warnings(const tls_options& tls) {
  std::vector<std::string> out;
  warn_if_others_can_read("TLS key", tls.key, out);
  return out;
}

absl::Status check_tls_files(const tls_options& tls) {
  const std::pair<const char*, const std::string*> files[] = {
    {"--tls-cert", &tls.cert}, {"--tls-key", &tls.key}, {"--tls-ca", &tls.ca}};
  for (const auto& [flag, path] : files) {
    if (path->empty())
      return absl::InvalidArgumentError(absl::StrCat(flag, ": empty file name"));
    const int fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      return absl::NotFoundError(absl::StrCat(flag, " ", in_quotes(*path),
                                              ": cannot open: ", std::strerror(errno)));
    ::close(fd);
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  if (!ctx)
    return absl::InternalError(absl::StrCat("cannot create an OpenSSL context: ", openssl_errors()));
  SSL_CTX_set_default_passwd_cb(ctx.get(), refuse_passphrase);
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert.c_str()) != 1)
    return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", in_quotes(tls.cert),
                                                   ": not a PEM certificate (", openssl_errors(),
                                                   ")"));
  // Out of its validity the peer refuses it, and the handshake says only
  // that it failed: say why here.
  if (const X509* cert = SSL_CTX_get0_certificate(ctx.get()); cert != nullptr) {
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", in_quotes(tls.cert),
                                                     ": the certificate expired on ",
                                                     asn1_time_text(X509_get0_notAfter(cert))));
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
      return absl::InvalidArgumentError(absl::StrCat("--tls-cert ", in_quotes(tls.cert),
                                                     ": the certificate is not valid before ",
                                                     asn1_time_text(X509_get0_notBefore(cert))));
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(nullptr, EVP_PKEY_free);
  if (std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_file(tls.key.c_str(), "r"), BIO_free); in)
    key.reset(PEM_read_bio_PrivateKey(in.get(), nullptr, refuse_passphrase, nullptr));
  if (!key)
    return absl::InvalidArgumentError(absl::StrCat(
      "--tls-key ", in_quotes(tls.key),
      ": not an unencrypted PEM private key (", openssl_errors(), ")"));
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1)
    return absl::InvalidArgumentError(absl::StrCat("--tls-key ", in_quotes(tls.key),
                                                   " does not belong to the certificate ",
                                                   in_quotes(tls.cert), " (", openssl_errors(),
                                                   ")"));
  if (SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1)
    return absl::InvalidArgumentError(absl::StrCat("--tls-ca ", in_quotes(tls.ca),
                                                   ": no PEM CA certificate (", openssl_errors(),
                                                   ")"));
  return absl::OkStatus();
}

// --- the coordinator's link --------------------------------------------------

namespace {

using clock = std::chrono::steady_clock;

/// What the link actor hands the user's thread.
struct link_inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<protocol::node_frame> frames;
  bool down = false;
  std::string down_reason;
};

/// Receives the worker's frames for a `worker_link` and watches the worker.
class link_actor final : public caf::event_based_actor {
public:
  link_actor(caf::actor_config& cfg, caf::actor worker, std::shared_ptr<link_inbox> inbox)
    : caf::event_based_actor(cfg), worker_(std::move(worker)), inbox_(std::move(inbox)) {
  }

  caf::behavior make_behavior() override {
    monitor(worker_);
    set_down_handler([this](caf::down_msg& dm) {
      if (dm.source != worker_.address())
        return;
      {
        std::lock_guard<std::mutex> guard(inbox_->mu);
        inbox_->down = true;
        inbox_->down_reason = detail::render(system(), dm.reason);
      }
      inbox_->cv.notify_all();
      quit();
    });
    // Anything but frames from our worker is dropped: this actor trusts no one.
    set_default_handler([](caf::scheduled_actor*, caf::message_view&) -> caf::result<caf::message> {
      return caf::sec::unexpected_message;
    });
    return {
      [this](protocol::node_frame& f) {
        const auto& sender = current_sender();
        if (sender == nullptr || sender->node() != worker_.node())
          return;
        {
          std::lock_guard<std::mutex> guard(inbox_->mu);
          inbox_->frames.push_back(std::move(f));
        }
        inbox_->cv.notify_all();
      },
    };
  }

private:
  caf::actor worker_;
  std::shared_ptr<link_inbox> inbox_;
};

/// What a failed connect most likely means when TLS is on one side only or
/// the certificates do not match; empty when nothing useful can be said.
std::string connect_hint(const caf::error& err, bool tls) {
  constexpr const char* tls_failed =
    "the TLS handshake failed: is the worker started with --tls-cert, --tls-key and --tls-ca, "
    "and is each side's certificate signed by the CA the other side trusts?";
  // CAF's OpenSSL module reports a handshake that fails at once like a
  // refused TCP connection, but `probe` has just connected.
  if (err == caf::sec::cannot_connect_to_node && tls)
    return absl::StrCat(" (", tls_failed, ")");
  if (err == caf::sec::disconnect_during_handshake)
    return tls ? absl::StrCat(" (", tls_failed, ")")
               : " (the connection closed before CAF's handshake: if the worker uses TLS, pass "
                 "--tls-cert, --tls-key and --tls-ca here too; otherwise, is it a satemu worker "
                 "of this version?)";
  if (err == caf::sec::request_timeout)
    return tls ? " (no answer: a TLS handshake or CAF's handshake did not complete)"
               : " (no answer to CAF's handshake: if the worker uses TLS, pass --tls-cert, "
                 "--tls-key and --tls-ca here too)";
  return {};
}

} // namespace

struct worker_link::impl {
  std::shared_ptr<node_system> system;
  node_address addr;
  std::string name; // "worker 127.0.0.1:7000", for messages
  caf::actor worker;
  caf::actor self;
  std::shared_ptr<link_inbox> inbox = std::make_shared<link_inbox>();
  bool authenticated = false;
  bool closed = false;
  std::uint32_t worker_threads = 0;
  std::string worker_software;
  std::string worker_node;
  node_crypto::frame_sealer sealer;
  node_crypto::frame_opener opener;

  ~impl() {
    disconnect();
  }

  /// `close_connection` false leaves the connection to the worker's
  /// process open, for another link that shares it.
  void disconnect(bool close_connection = true) {
    if (self) {
      caf::anon_send_exit(self, caf::exit_reason::user_shutdown);
      self = nullptr;
    }
    if (worker) {
      if (close_connection)
        detail::close_connection(system->get(), worker.node());
      worker = nullptr;
    }
    closed = true;
  }

  absl::Status gone_status() {
    std::lock_guard<std::mutex> guard(inbox->mu);
    return absl::UnavailableError(
      absl::StrCat(name, " went down (", inbox->down_reason, ")"));
  }

  absl::Status send_frame(protocol::node_frame f) {
    if (closed)
      return absl::FailedPreconditionError(absl::StrCat("link to ", name, " is closed"));
    if (f.bytes.size() > protocol::max_node_frame_bytes)
      return absl::InvalidArgumentError(absl::StrCat("frame of ", f.bytes.size(),
                                                     " bytes exceeds the limit of ",
                                                     protocol::max_node_frame_bytes));
    {
      std::lock_guard<std::mutex> guard(inbox->mu);
      if (inbox->down)
        return absl::UnavailableError(
          absl::StrCat(name, " went down (", inbox->down_reason, ")"));
    }
    caf::send_as(self, worker, std::move(f));
    return absl::OkStatus();
  }

  absl::Status send_bytes(std::string bytes) {
    if (authenticated)
      return send_frame(sealer.seal(std::move(bytes)));
    protocol::node_frame f;
    f.bytes = std::move(bytes);
    return send_frame(std::move(f));
  }

  absl::StatusOr<protocol::node_message> receive_until(clock::time_point deadline) {
    if (closed)
      return absl::FailedPreconditionError(absl::StrCat("link to ", name, " is closed"));
    protocol::node_frame f;
    {
      std::unique_lock<std::mutex> guard(inbox->mu);
      inbox->cv.wait_until(guard, deadline,
                           [&] { return !inbox->frames.empty() || inbox->down; });
      if (inbox->frames.empty()) {
        if (inbox->down)
          return absl::UnavailableError(
            absl::StrCat(name, " went down (", inbox->down_reason, ")"));
        return absl::DeadlineExceededError(absl::StrCat("no frame from ", name, " in time"));
      }
      f = std::move(inbox->frames.front());
      inbox->frames.pop_front();
    }
    if (authenticated) {
      if (auto st = opener.open(f); !st.ok())
        return absl::PermissionDeniedError(
          absl::StrCat("rejected a frame from ", name, ": ", st.message()));
    } else if (!f.tag.empty() || f.seq != 0) {
      return absl::PermissionDeniedError(
        absl::StrCat("rejected a frame from ", name, ": it carries a session MAC before the handshake"));
    } else if (f.bytes.size() > protocol::max_handshake_frame_bytes) {
      return absl::PermissionDeniedError(
        absl::StrCat("rejected a frame from ", name, ": ", f.bytes.size(),
                     " bytes before the handshake ended (at most ",
                     protocol::max_handshake_frame_bytes, ")"));
    }
    auto m = protocol::decode_node_message(f.bytes);
    if (!m.ok())
      return absl::InvalidArgumentError(
        absl::StrCat("malformed frame from ", name, ": ", m.status().message()));
    return m;
  }
};

worker_link::worker_link(std::unique_ptr<impl> p) : impl_(std::move(p)) {
}
worker_link::worker_link(worker_link&&) noexcept = default;
worker_link& worker_link::operator=(worker_link&&) noexcept = default;
worker_link::~worker_link() = default;

const node_address& worker_link::address() const noexcept {
  return impl_->addr;
}

bool worker_link::authenticated() const noexcept {
  return impl_->authenticated;
}

std::uint32_t worker_link::worker_threads() const noexcept {
  return impl_->worker_threads;
}

const std::string& worker_link::worker_software() const noexcept {
  return impl_->worker_software;
}

const std::string& worker_link::worker_node() const noexcept { return impl_->worker_node; }

void worker_link::detach() {
  if (impl_)
    impl_->disconnect(false);
}

absl::Status worker_link::health() const {
  std::lock_guard<std::mutex> guard(impl_->inbox->mu);
  if (impl_->inbox->down)
    return absl::UnavailableError(
      absl::StrCat(impl_->name, " went down (", impl_->inbox->down_reason, ")"));
  return absl::OkStatus();
}

absl::Status worker_link::probe(const node_address& addr, milliseconds timeout,
                                const std::atomic<bool>* stop) {
  const auto name = absl::StrCat("worker ", addr.to_string());
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(addr.port);
  if (const int rc = ::getaddrinfo(addr.host.c_str(), port.c_str(), &hints, &found); rc != 0)
    return absl::UnavailableError(absl::StrCat("cannot connect to ", name, ": cannot resolve '",
                                               addr.host, "' (", ::gai_strerror(rc), ")"));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owner(found, &::freeaddrinfo);
  const auto deadline = clock::now() + timeout;
  auto stopped = [stop] { return stop != nullptr && stop->load(); };
  int last_error = ETIMEDOUT;
  // Each address the name resolves to in turn, as CAF would.
  for (const addrinfo* ai = found; ai != nullptr && clock::now() < deadline && !stopped();
       ai = ai->ai_next) {
    const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                            ai->ai_protocol);
    if (fd < 0) {
      last_error = errno;
      continue;
    }
    int err = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      err = ETIMEDOUT;
      while (clock::now() < deadline && !stopped()) {
        const auto left = std::chrono::ceil<milliseconds>(deadline - clock::now());
        pollfd p{fd, POLLOUT, 0};
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 100)));
        if (n < 0 && errno != EINTR) {
          err = errno;
          break;
        }
        if (n > 0) {
          socklen_t len = sizeof err;
          if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
          break;
        }
      }
    }
    ::close(fd);
    if (err == 0)
      return absl::OkStatus();
    last_error = err;
  }
  if (stopped())
    return absl::CancelledError(absl::StrCat("interrupted while connecting to ", name));
  if (last_error == ETIMEDOUT)
    return absl::UnavailableError(absl::StrFormat(
      "cannot connect to %s: no TCP connection within %.3g s (is the host up, and does no "
      "firewall drop the port?)",
      name, std::chrono::duration<double>(timeout).count()));
  return absl::UnavailableError(
    absl::StrCat("cannot connect to ", name, ": ", std::strerror(last_error),
                 last_error == ECONNREFUSED ? " (is a satemu worker listening there?)" : ""));
}

absl::StatusOr<worker_link> worker_link::open(const node_address& addr, milliseconds timeout,
                                              std::shared_ptr<node_system> system,
                                              const std::atomic<bool>* stop) {
  // CAF's connect blocks its middleman, and so the actor system's shutdown,
  // until the kernel gives up on a host that drops the packets: first find
  // whether anything answers.
  if (auto st = probe(addr, timeout, stop); !st.ok())
    return st;
  if (!system) {
    node_options o;
    o.threads = 2;
    auto s = node_system::start(o);
    if (!s.ok())
      return s.status();
    system = std::move(*s);
  }
  auto p = std::make_unique<impl>();
  p->system = system;
  p->addr = addr;
  p->name = absl::StrCat("worker ", addr.to_string());
  auto& sys = *system->get().sys;
  absl::Status st = absl::OkStatus();
  {
    caf::scoped_actor self{sys};
    self
      ->request(detail::connector(system->get()), caf::timespan{timeout},
                caf::connect_atom::value, addr.host, addr.port)
      .receive(
        [&](caf::node_id& nid, caf::strong_actor_ptr& ptr, std::set<std::string>&) {
          p->worker_node = caf::to_string(nid);
          if (ptr == nullptr)
            st = absl::UnavailableError(absl::StrCat(
              "nothing is published at ", addr.to_string(), " (not a satemu worker?)"));
          else
            p->worker = caf::actor_cast<caf::actor>(std::move(ptr));
        },
        [&](caf::error& err) {
          st = absl::UnavailableError(absl::StrCat("cannot connect to ", p->name, ": ",
                                                   detail::render(sys, err),
                                                   connect_hint(err, system->get().tls)));
        });
  }
  if (!st.ok())
    return st;
  p->self = sys.spawn<link_actor>(p->worker, p->inbox);
  return worker_link(std::move(p));
}

absl::StatusOr<worker_link> worker_link::connect(const node_address& addr, const std::string& secret,
                                                 milliseconds timeout,
                                                 std::shared_ptr<node_system> system,
                                                 const std::atomic<bool>* stop) {
  auto link = open(addr, timeout, std::move(system), stop);
  if (!link.ok())
    return link.status();
  if (auto st = link->authenticate(secret, timeout, stop); !st.ok())
    return st;
  return link;
}

absl::Status worker_link::authenticate(const std::string& secret, milliseconds timeout,
                                       const std::atomic<bool>* stop) {
  auto& p = *impl_;
  if (p.authenticated)
    return absl::OkStatus();
  if (secret.empty())
    return absl::InvalidArgumentError("empty shared secret");
  const auto deadline = clock::now() + timeout;
  auto fail = [&](absl::Status st) {
    p.disconnect();
    return st;
  };
  auto expect = [&](std::string_view step) -> absl::StatusOr<protocol::node_message> {
    // With a stop flag, in slices, so that a stop is seen while a silent
    // worker is awaited.
    auto slice_end = [&] {
      return stop ? std::min(deadline, clock::now() + milliseconds(100)) : deadline;
    };
    auto m = p.receive_until(slice_end());
    while (!m.ok() && absl::IsDeadlineExceeded(m.status()) && clock::now() < deadline) {
      if (stop && stop->load())
        return absl::CancelledError(absl::StrCat(
          "interrupted while waiting for ", p.name, " to answer the ",
          absl::string_view(step.data(), step.size())));
      m = p.receive_until(slice_end());
    }
    if (!m.ok()) {
      if (absl::IsDeadlineExceeded(m.status()))
        return absl::DeadlineExceededError(absl::StrCat(
          p.name, " did not answer the ", absl::string_view(step.data(), step.size()),
          " within ", timeout.count(), " ms"));
      return m.status();
    }
    if (auto* r = std::get_if<protocol::node_refused>(&*m))
      return absl::PermissionDeniedError(
        absl::StrCat(p.name, " refused the connection: ", r->reason));
    return m;
  };
  auto nonce_c = node_crypto::random_bytes(protocol::node_nonce_bytes);
  if (!nonce_c.ok())
    return fail(nonce_c.status());
  if (auto st = send(protocol::node_hello{protocol::node_protocol_version, *nonce_c,
                                          "satemu coordinator"});
      !st.ok())
    return fail(st);
  auto m = expect("hello");
  if (!m.ok())
    return fail(m.status());
  auto* ch = std::get_if<protocol::node_challenge>(&*m);
  if (ch == nullptr)
    return fail(absl::PermissionDeniedError(
      absl::StrCat(p.name, " answered the hello with ", std::string(protocol::node_kind_name(*m)))));
  if (ch->nonce.size() != protocol::node_nonce_bytes)
    return fail(absl::PermissionDeniedError(absl::StrCat(
      p.name, " sent a challenge of ", ch->nonce.size(), " bytes (expected ",
      protocol::node_nonce_bytes, ")")));
  const auto nonce_w = ch->nonce;
  if (auto st = send(protocol::node_response{node_crypto::coordinator_mac(secret, nonce_w, *nonce_c)});
      !st.ok())
    return fail(st);
  m = expect("response");
  if (!m.ok())
    return fail(m.status());
  auto* acc = std::get_if<protocol::node_accepted>(&*m);
  if (acc == nullptr)
    return fail(absl::PermissionDeniedError(
      absl::StrCat(p.name, " answered the response with ", std::string(protocol::node_kind_name(*m)))));
  if (!node_crypto::equal_constant_time(acc->proof, node_crypto::worker_proof(secret, *nonce_c, nonce_w)))
    return fail(absl::PermissionDeniedError(
      absl::StrCat(p.name, " accepted but could not prove that it knows the secret")));
  const auto key = node_crypto::session_key(secret, nonce_w, *nonce_c);
  p.sealer = node_crypto::frame_sealer(key, node_crypto::frame_direction::to_worker);
  p.opener = node_crypto::frame_opener(key, node_crypto::frame_direction::to_coordinator);
  p.worker_threads = acc->threads;
  p.worker_software = acc->software.substr(0, 80);
  p.authenticated = true;
  return absl::OkStatus();
}

absl::Status worker_link::send(const protocol::node_message& m) {
  auto bytes = protocol::encode_node_message(m);
  if (!bytes.ok())
    return bytes.status();
  return impl_->send_bytes(std::move(*bytes));
}

absl::Status worker_link::send_bytes(std::string bytes) {
  return impl_->send_bytes(std::move(bytes));
}

absl::StatusOr<protocol::node_message> worker_link::receive(milliseconds timeout) {
  return impl_->receive_until(clock::now() + timeout);
}

absl::Status worker_link::close(milliseconds timeout) {
  auto& p = *impl_;
  if (p.closed)
    return absl::OkStatus();
  absl::Status result = absl::OkStatus();
  if (p.authenticated) {
    auto st = send(protocol::node_end{"coordinator closed the link"});
    if (!st.ok()) {
      result = st;
    } else {
      // Frames still in flight before the acknowledgement are dropped: the
      // session is over.
      const auto deadline = clock::now() + timeout;
      while (true) {
        auto m = p.receive_until(deadline);
        if (m.ok() && std::holds_alternative<protocol::node_end>(*m))
          break;
        if (!m.ok() && absl::IsUnavailable(m.status()))
          break; // the worker exited right after the end: done either way
        if (!m.ok() && absl::IsDeadlineExceeded(m.status())) {
          result = absl::DeadlineExceededError(absl::StrCat(
            p.name, " did not acknowledge the end within ", timeout.count(), " ms"));
          break;
        }
      }
    }
  }
  p.disconnect();
  return result;
}

} // namespace satemu::runtime
