/// A worker's side of one distributed run (runtime/distributed.hpp): builds
/// the scenario, runs the node's share of it on its own thread (the kernel's
/// own actor system), and trades window reports for grants with the
/// coordinator through the worker's gate. Private to runtime/.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/node.hpp"
#include "runtime/node.hpp"

namespace satemu::runtime::detail {

class worker_run {
public:
  /// Queues a message for the coordinator (sealed and sent by the gate);
  /// callable from any thread.
  using send_fn = std::function<void(protocol::node_message)>;
  using log_fn = std::function<void(const std::string&)>;

  worker_run(std::function<absl::StatusOr<hosted_run>(const std::string&)> build, send_fn send,
             log_fn log, std::size_t threads);
  /// Aborts a run still going and waits for its thread.
  ~worker_run();
  worker_run(const worker_run&) = delete;
  worker_run& operator=(const worker_run&) = delete;

  /// Starts the run thread (once).
  void start(protocol::node_setup setup);
  /// Hands a grant to the run thread.
  void grant(protocol::node_grant g);
  /// Stops the run: the node conductor gets a stop at its next barrier and
  /// no results are sent. Returns at once.
  void abort();
  bool started() const { return thread_.joinable(); }

private:
  class barrier;
  using build_fn = std::function<absl::StatusOr<hosted_run>(const std::string&)>;
  /// Shared with the run thread, which outlives a worker_run destroyed
  /// while it builds the scenario (model weights take seconds): it is then
  /// detached, and after the build it returns touching nothing else.
  struct build_state {
    std::mutex mu;
    bool stopping = false; // the destructor has begun
    bool building = false; // the thread is in `build`
  };
  void main(protocol::node_setup setup, build_fn build, std::shared_ptr<build_state> bs);
  /// The run of a scenario `main` built.
  void run_built(protocol::node_setup setup, hosted_run& built);
  /// The run cannot go on here: the node fails it.
  void give_up(const std::string& why);
  /// The scenario cannot run here (a file missing or different on this
  /// machine, too little memory for it): the coordinator's input is at
  /// fault, not a node.
  void refuse(const std::string& why);

  build_fn build_;
  std::shared_ptr<build_state> build_state_ = std::make_shared<build_state>();
  send_fn send_;
  log_fn log_;
  std::size_t threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<protocol::node_grant> grants_;
  bool aborted_ = false;
  std::thread thread_;
};

} // namespace satemu::runtime::detail
