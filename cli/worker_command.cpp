#include "cli/worker_command.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "cli/flags.hpp"
#include "cli/run_command.hpp"
#include "cli/version.hpp"
#include "runtime/kernel.hpp"
#include "runtime/node.hpp"

namespace satemu::cli {

namespace {

std::atomic<bool> g_worker_stop{false};

extern "C" void on_worker_signal(int) {
  g_worker_stop.store(true);
}

constexpr const char* worker_help =
  "Start a node of a distributed run and wait for a coordinator (`satemu run FILE --workers\n"
  "HOST:PORT,... --secret-file F`). The coordinator sends the resolved scenario and the\n"
  "entities this node hosts; the worker builds the scenario itself (files it names must\n"
  "exist here too), runs its share window by window, sends its entities' results at the end\n"
  "and exits. One coordinator per worker process.\n"
  "\n"
  "The worker listens on 127.0.0.1 unless --listen names another address (0.0.0.0 or a\n"
  "host's address exposes it to the network). It admits only a coordinator that proves it\n"
  "knows the run's shared secret (HMAC-SHA256 challenge-response; every later frame carries\n"
  "a MAC) and refuses and disconnects anyone else, logging each refusal with the peer's\n"
  "address on stderr. (Bytes that are not CAF's protocol at all, such as a port scan or an\n"
  "HTTP request, are dropped by CAF's transport before that handshake, without a log line.)\n"
  "There is no unauthenticated mode: --secret-file is required. Create\n"
  "one with:  head -c 32 /dev/urandom | base64 > secret && chmod 600 secret\n"
  "Without TLS, frames are authenticated, not encrypted, and CAF's transport underneath\n"
  "buffers whatever length a peer's message header declares (up to 4 GiB) before the\n"
  "worker can check the peer: use loopback, a network only the run's nodes reach, or TLS\n"
  "(the worker warns when it listens beyond loopback without TLS).\n"
  "\n"
  "With --tls-cert, --tls-key and --tls-ca (all three, PEM files) every connection is mutual\n"
  "TLS through CAF's OpenSSL module: the worker presents its certificate and admits only a\n"
  "peer whose certificate is signed by a CA in --tls-ca (host names are not checked); the\n"
  "shared-secret handshake then runs inside TLS as before. A peer without TLS or with a\n"
  "certificate from another CA cannot connect; the worker keeps serving (CAF drops such\n"
  "connections without telling the worker, so they are not logged; the coordinator names\n"
  "the worker). See the README for making a CA and certificates with openssl.\n"
  "\n"
  "On start the worker prints `satemu worker listening on HOST:PORT` on stdout.\n"
  "A worker serves one session, then exits. A coordinator that aborts its session before\n"
  "setting up a run (it gave up on another worker: a wrong secret, a busy one), or goes\n"
  "down before that, leaves the worker waiting for the next coordinator.\n"
  "Exit codes: 0 the worker's share of the run went out to the coordinator (also when the\n"
  "coordinator stopped the run early, on Ctrl-C: the share up to the time reached), or the\n"
  "coordinator ended the session without setting up a run, 2 bad flags, secret or TLS\n"
  "file, or an address it cannot listen on, 3 the coordinator went down after setting up a\n"
  "run, or ended the session before the worker's share completed (the run was aborted:\n"
  "another node failed, the scenario could not be built here, or the coordinator was\n"
  "interrupted while the workers built it), 130 interrupted (SIGINT, SIGTERM, or SIGHUP\n"
  "from a closed terminal).";

} // namespace

CLI::App* add_worker_subcommand(CLI::App& app, worker_args& args) {
  auto* w = app.add_subcommand("worker", "Start a node of a distributed run (waits for a coordinator)");
  w->footer(worker_help);
  w->add_option("--listen", args.listen,
                "ADDR:PORT to listen on (default 127.0.0.1:0 = loopback, any free port)");
  w->add_option("--secret-file", args.secret_file,
                "File holding the run's shared secret (required; one trailing newline ignored)");
  w->add_option("--threads", args.threads, "CAF scheduler threads (default: one per core)")
    ->check(thread_count());
  w->add_option("--tls-cert", args.tls_cert,
                "This worker's TLS certificate (PEM); with --tls-key and --tls-ca, accept only "
                "mutual-TLS connections");
  w->add_option("--tls-key", args.tls_key, "With --tls-cert: its private key (PEM, unencrypted)");
  w->add_option("--tls-ca", args.tls_ca,
                "With --tls-cert: CA certificate(s) (PEM) that must have signed the coordinator's "
                "certificate");
  return w;
}

int worker_command(const worker_args& a) {
  auto listen = runtime::parse_node_address(a.listen.value_or("127.0.0.1:0"));
  if (!listen.ok()) {
    std::fprintf(stderr, "satemu: error: --listen: %s\n", std::string(listen.status().message()).c_str());
    return exit_bad_input;
  }
  if (!a.secret_file) {
    std::fprintf(stderr,
                 "satemu: error: worker needs --secret-file FILE: it admits only coordinators that "
                 "know the run's shared secret (create one with: head -c 32 /dev/urandom | base64 "
                 "> FILE && chmod 600 FILE)\n");
    return exit_bad_input;
  }
  auto secret = runtime::read_secret_file(*a.secret_file);
  if (!secret.ok()) {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(secret.status().message()).c_str());
    return exit_bad_input;
  }
  for (const auto& w : runtime::secret_file_warnings(*a.secret_file, *secret))
    std::fprintf(stderr, "satemu: warning: %s\n", w.c_str());

  auto tls = tls_from_flags(a.tls_cert, a.tls_key, a.tls_ca);
  if (!tls.ok()) {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(tls.status().message()).c_str());
    return exit_bad_input;
  }

  // Its runs' threads, found before a coordinator is taken (CAF would hang).
  if (auto st = runtime::check_threads_can_start(a.threads.value_or(0)); !st.ok()) {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(st.message()).c_str());
    return exit_bad_input;
  }

  runtime::worker_options opts;
  opts.listen = *listen;
  opts.secret = std::move(*secret);
  opts.node.threads = a.threads.value_or(0);
  opts.node.tls = std::move(*tls);
  opts.software = software_version();
  opts.build_run = build_hosted_run;
  auto worker = runtime::worker_node::start(std::move(opts));
  if (!worker.ok()) {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(worker.status().message()).c_str());
    // A bad address or one in use, and too little memory for the node's
    // threads, are the user's to change.
    return absl::IsInvalidArgument(worker.status()) || absl::IsUnavailable(worker.status()) ||
               absl::IsResourceExhausted(worker.status())
             ? exit_bad_input
             : exit_internal;
  }
  // Once it listens: an address it cannot take is the one error.
  for (const auto& w : runtime::listen_warnings(*listen, tls->has_value()))
    std::fprintf(stderr, "satemu: warning: %s\n", w.c_str());
  // SIGHUP too, as for run: a worker whose terminal closes is interrupted.
  // Caught from before the worker says it listens, so that a signal sent
  // on that line is handled.
  g_worker_stop.store(false);
  auto old_int = std::signal(SIGINT, on_worker_signal);
  auto old_term = std::signal(SIGTERM, on_worker_signal);
  auto old_hup = std::signal(SIGHUP, on_worker_signal);
  std::printf("satemu worker listening on %s\n", worker->address().to_string().c_str());
  std::fflush(stdout);
  runtime::print_worker_log(absl::StrCat("listening on ", worker->address().to_string(),
                                         a.tls_cert ? " (mutual TLS)" : "",
                                         "; waiting for a coordinator"));
  absl::Status st;
  while (true) {
    st = worker->wait(std::chrono::milliseconds(200));
    if (!absl::IsDeadlineExceeded(st))
      break;
    if (g_worker_stop.load()) {
      std::signal(SIGINT, old_int);
      std::signal(SIGTERM, old_term);
      std::signal(SIGHUP, old_hup);
      worker->stop("the worker was interrupted (SIGINT, SIGTERM or SIGHUP)");
      runtime::print_worker_log("interrupted");
      // Ends the session (the coordinator is told) but not a scenario still
      // being built, which is left behind; exiting without the static
      // destructors keeps them from running under it.
      { auto ending = std::move(*worker); }
      std::fflush(nullptr);
      std::_Exit(exit_interrupted);
    }
  }
  std::signal(SIGINT, old_int);
  std::signal(SIGTERM, old_term);
  std::signal(SIGHUP, old_hup);
  int rc = exit_ok;
  if (st.ok()) {
    runtime::print_worker_log("session ended; exiting");
  } else {
    std::fprintf(stderr, "satemu: error: %s\n", std::string(st.message()).c_str());
    rc = absl::IsUnavailable(st) || absl::IsAborted(st) ? exit_coordinator_lost : exit_internal;
  }
  // A coordinator lost while the scenario was being built leaves the build
  // behind, as an interrupt does: the same exit keeps the static
  // destructors from running under it.
  { auto ending = std::move(*worker); }
  std::fflush(nullptr);
  std::_Exit(rc);
}

} // namespace satemu::cli
