// Shared by the command-line tests: start the real satemu binary
// (SATEMU_BINARY) with its output going to a log file, and read exit codes.
#pragma once

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace satemu::testing {

/// Exit status, or 128 + signal when killed by one.
inline int decode_status(int status) {
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  if (WIFSIGNALED(status))
    return 128 + WTERMSIG(status);
  return -1;
}

/// Starts `satemu args...` in `cwd` (empty: the current directory) with
/// stdout and stderr going to `log`; returns its pid.
inline pid_t spawn_satemu(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                          const std::filesystem::path& log) {
  std::vector<std::string> argv_s{SATEMU_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string cwd_s = cwd.string();
  const std::string log_s = log.string();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    if (!cwd_s.empty() && chdir(cwd_s.c_str()) != 0)
      _exit(120);
    const int fd = open(log_s.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
      _exit(121);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// Exit code of `pid` if it exits within `limit` (reaped), else -1 (still running).
inline int wait_exit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  do {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid)
      return decode_status(status);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < deadline);
  return -1;
}

/// The whole file (empty if it cannot be read).
inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace satemu::testing
