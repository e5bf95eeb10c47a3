// The node protocol's cryptography (runtime/node.hpp, node_crypto) with OpenSSL's libcrypto.
#include "runtime/node.hpp"

#include <array>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "openssl/crypto.h"
#include "openssl/err.h"
#include "openssl/evp.h"
#include "openssl/hmac.h"
#include "openssl/rand.h"

namespace satemu::runtime::node_crypto {

namespace {

std::string openssl_error() {
  const auto code = ERR_get_error();
  if (code == 0)
    return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

std::string le64(std::uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i)
    out[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xff);
  return out;
}

std::string frame_tag(std::string_view key, frame_direction dir, std::uint64_t seq,
                      std::string_view bytes) {
  const char d = static_cast<char>(dir);
  return hmac_sha256(key, {std::string_view(&d, 1), le64(seq), bytes});
}

} // namespace

absl::StatusOr<std::string> random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n > static_cast<std::size_t>(INT_MAX) ||
      RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1)
    return absl::InternalError(absl::StrCat("RAND_bytes failed: ", openssl_error()));
  return out;
}

std::string hmac_sha256(std::string_view key, std::initializer_list<std::string_view> parts) {
  // EVP_MAC would be the OpenSSL 3 way; HMAC_CTX is deprecated there, so the
  // parts are joined and fed to the one-shot HMAC(), which is not.
  std::string data;
  std::size_t total = 0;
  for (auto p : parts)
    total += p.size();
  data.reserve(total);
  for (auto p : parts)
    data.append(p.data(), p.size());
  std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out.data(),
           &len) == nullptr)
    throw std::runtime_error("HMAC-SHA256 failed: " + openssl_error());
  OPENSSL_cleanse(data.data(), data.size());
  return {reinterpret_cast<const char*>(out.data()), len};
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string coordinator_mac(std::string_view secret, std::string_view worker_nonce,
                            std::string_view coordinator_nonce) {
  return hmac_sha256(secret, {"satemu-v1", worker_nonce, coordinator_nonce});
}

std::string worker_proof(std::string_view secret, std::string_view coordinator_nonce,
                         std::string_view worker_nonce) {
  return hmac_sha256(secret, {"satemu-v1-worker", coordinator_nonce, worker_nonce});
}

std::string session_key(std::string_view secret, std::string_view worker_nonce,
                        std::string_view coordinator_nonce) {
  return hmac_sha256(secret, {"satemu-v1-session", worker_nonce, coordinator_nonce});
}

protocol::node_frame frame_sealer::seal(std::string bytes) {
  protocol::node_frame f;
  f.seq = next_seq_++;
  f.tag = frame_tag(key_, dir_, f.seq, bytes);
  f.bytes = std::move(bytes);
  return f;
}

absl::Status frame_opener::open(const protocol::node_frame& f) {
  if (f.tag.empty())
    return absl::PermissionDeniedError("frame carries no MAC inside an authenticated session");
  if (!equal_constant_time(f.tag, frame_tag(key_, dir_, f.seq, f.bytes)))
    return absl::PermissionDeniedError(
      absl::StrCat("frame ", f.seq, " has a wrong MAC (forged or corrupted)"));
  if (f.seq != next_seq_)
    return absl::PermissionDeniedError(absl::StrCat(
      "frame number ", f.seq, " where ", next_seq_, " was due (replayed or reordered)"));
  ++next_seq_;
  return absl::OkStatus();
}

} // namespace satemu::runtime::node_crypto
