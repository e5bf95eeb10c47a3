// Shared by the node tests: a throwaway PKI made with the `openssl` command
// line tool in a test's temporary directory. Two CAs; the worker's and the
// coordinator's certificates are signed by the first, a rogue certificate
// by the second. EC P-256 keys: the whole set takes a fraction of a second.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace satemu::testing {

struct test_certs {
  std::string ca, worker_cert, worker_key, coord_cert, coord_key;
  /// A second CA and a certificate it signed.
  std::string other_ca, rogue_cert, rogue_key;
  /// A certificate of the first CA valid only in 2020.
  std::string expired_cert, expired_key;
};

/// Writes the set into `dir` (which must exist); false if `openssl` failed
/// (its output is then in dir/openssl.log).
inline bool make_test_certs(const std::filesystem::path& dir, test_certs& out) {
  const std::string d = dir.string();
  const std::string script =
    "set -e; cd '" + d + "'; exec >openssl.log 2>&1\n"
    "ec='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'\n"
    "openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=satemu-test-ca\n"
    "openssl req -x509 $ec -keyout ca2.key -out ca2.pem -days 2 -subj /CN=satemu-other-ca\n"
    "sign() { openssl req -new $ec -keyout $1.key -out $1.csr -subj /CN=$1\n"
    "  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key -CAcreateserial -out $1.pem "
    "-days 2; }\n"
    "sign worker ca; sign coord ca; sign rogue ca2\n"
    "mkdir -p expired-ca; : > expired-ca/index.txt; echo 01 > expired-ca/serial\n"
    "printf '[ca]\\ndefault_ca=d\\n[d]\\ndatabase=expired-ca/index.txt\\n"
    "serial=expired-ca/serial\\nnew_certs_dir=expired-ca\\ndefault_md=sha256\\npolicy=p\\n"
    "[p]\\ncommonName=supplied\\n' > expired-ca.cnf\n"
    "openssl req -new $ec -keyout expired.key -out expired.csr -subj /CN=expired\n"
    "openssl ca -batch -notext -config expired-ca.cnf -cert ca.pem -keyfile ca.key "
    "-in expired.csr -out expired.pem -startdate 20200101000000Z -enddate 20210101000000Z\n"
    "chmod 600 *.key\n";
  const auto script_path = dir / "make_certs.sh";
  std::ofstream(script_path, std::ios::trunc) << script;
  if (std::system(("sh '" + script_path.string() + "'").c_str()) != 0)
    return false;
  const auto p = [&](const char* name) { return (dir / name).string(); };
  out = {p("ca.pem"),    p("worker.pem"), p("worker.key"),  p("coord.pem"),
         p("coord.key"), p("ca2.pem"),    p("rogue.pem"),   p("rogue.key"),
         p("expired.pem"), p("expired.key")};
  return true;
}

} // namespace satemu::testing
