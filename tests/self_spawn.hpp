// Shared by the tests that need a second process running satemu code (not
// the satemu binary): the test program starts itself again, by fork and an
// immediate exec, to run one test that is the child's part. A plain fork
// would run that code in a copy of a process whose other threads (CAF's, or
// one an earlier test left exiting) may hold locks the copy never gets back.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace satemu::testing {

/// The environment variable that gives the child the descriptor to report
/// to (the write end of the pipe whose read end `spawned::report` is).
inline constexpr const char* report_fd_var = "SATEMU_TEST_REPORT_FD";

struct spawned {
  pid_t pid = -1;
  /// Read end of the child's report pipe: EOF once the child exits or
  /// closes its end.
  int report = -1;
};

/// Starts this test program as a child that runs only the test `test`
/// ("suite.DISABLED_name"), with `vars` added to its environment and a report pipe
/// (`report_fd_var`). Its stdout is /dev/null (gtest's banner), its stderr
/// this process's. A pid of -1 when it could not be started.
inline spawned spawn_self(const std::string& test,
                          const std::vector<std::pair<std::string, std::string>>& vars) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0)
    return {};
  ::fcntl(fds[1], F_SETFD, 0);  // the only descriptor the child keeps
  // Everything is made before the fork: between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    env.emplace_back(*e);
  for (const auto& [name, value] : vars)
    env.push_back(name + "=" + value);
  env.push_back(std::string(report_fd_var) + "=" + std::to_string(fds[1]));
  std::vector<char*> envp;
  for (std::string& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  // The child's part is a DISABLED_ test, so that a normal run lists it
  // neither as run nor as skipped.
  std::string name = "satemu-test-child", filter = "--gtest_filter=" + test,
              disabled = "--gtest_also_run_disabled_tests";
  char* argv[] = {name.data(), filter.data(), disabled.data(), nullptr};
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  const pid_t pid = fork();
  if (pid == 0) {
    if (null_fd >= 0)
      ::dup2(null_fd, STDOUT_FILENO);
    ::execve("/proc/self/exe", argv, envp.data());
    _exit(127);
  }
  if (null_fd >= 0)
    ::close(null_fd);
  ::close(fds[1]);
  if (pid < 0) {
    ::close(fds[0]);
    return {};
  }
  return {pid, fds[0]};
}

/// In the child: the descriptor to report to, or -1 when this process was
/// not started by spawn_self (the test then skips).
inline int report_fd() {
  const char* text = std::getenv(report_fd_var);
  return text != nullptr ? std::atoi(text) : -1;
}

} // namespace satemu::testing
