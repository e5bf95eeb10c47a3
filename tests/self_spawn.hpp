// Shared by the tests that need a second process running satemu code (not
// the satemu binary): the test program starts itself again, by fork and an
// immediate exec, to run one test that is the child's part. A plain fork
// would run that code in a copy of a process whose other threads (CAF's, or
// one an earlier test left exiting) may hold locks the copy never gets back.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace satemu::testing {

/// Starts this test program as a child that runs only the test `test`
/// ("suite.name"), with `vars` added to its environment. Open descriptors
/// without FD_CLOEXEC stay open in the child (pass their numbers in `vars`);
/// its stdout is /dev/null (gtest's banner), its stderr this process's.
/// Returns the child's pid, or -1.
inline pid_t spawn_self(const std::string& test,
                        const std::vector<std::pair<std::string, std::string>>& vars) {
  // Everything is made before the fork: between fork and exec only
  // async-signal-safe calls.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    env.emplace_back(*e);
  for (const auto& [name, value] : vars)
    env.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (std::string& e : env)
    envp.push_back(e.data());
  envp.push_back(nullptr);
  std::string name = "satemu-test-child", filter = "--gtest_filter=" + test;
  char* argv[] = {name.data(), filter.data(), nullptr};
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
  return pid;
}

} // namespace satemu::testing
