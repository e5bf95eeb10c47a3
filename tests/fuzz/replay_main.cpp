/// The driver of a fuzz target in builds without libFuzzer: it runs the
/// target on every seed file, then on seeded mutants of them, so the targets'
/// properties are checked by ctest on any compiler. With SATEMU_FUZZ=ON the
/// targets link libFuzzer instead (README: Fuzzing).
///
///     NAME_fuzz [--mutants N] [--seed S] PATH...
///
/// PATH is a file or a folder (its regular files). Each seed gets N mutants
/// of 1-4 stacked edits (bit flips, byte values, erasures, insertions,
/// duplicated and spliced ranges, truncation, numbers swapped for extreme
/// ones), the same for the same S. Exit 0 when every input passed, 2 when no
/// seed was found. A failing input (abort or crash) is written to
/// `NAME_fuzz-failed-input` in the working folder, named on stderr.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_check.hpp"

namespace {

namespace fs = std::filesystem;

/// The input being run, for the signal handler.
std::string current;
std::string failed_path;

extern "C" void on_fatal_signal(int sig) {
  const int fd = ::open(failed_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    std::size_t done = 0;
    while (done < current.size()) {
      const ssize_t n = ::write(fd, current.data() + done, current.size() - done);
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    ::close(fd);
  }
  static const char msg[] = "fuzz replay: the failing input is in ";
  (void)!::write(2, msg, sizeof msg - 1);
  (void)!::write(2, failed_path.c_str(), failed_path.size());
  (void)!::write(2, "\n", 1);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// One random edit of `s`; `other` is another seed to splice from.
void mutate_once(std::string& s, const std::string& other, std::uint64_t& rng) {
  auto below = [&](std::size_t n) {
    return n == 0 ? 0 : static_cast<std::size_t>(splitmix(rng) % n);
  };
  static const char bytes[] = {'\0', '\x01', '\x7f', '\x80', '\xff', '\n',
                               ' ',  ':',    '-',    '9',    '{',    '['};
  static const char* const numbers[] = {"0", "-1", "1e308", "-1e308", "nan", "inf", "4294967296",
                                        "18446744073709551616", "9223372036854775807", "1e-320",
                                        "0.000000001", "65535"};
  switch (below(8)) {
    case 0:
      if (!s.empty()) s[below(s.size())] ^= static_cast<char>(1u << below(8));
      break;
    case 1:
      if (!s.empty()) s[below(s.size())] = bytes[below(sizeof bytes)];
      break;
    case 2:
      if (!s.empty()) {
        const std::size_t at = below(s.size());
        s.erase(at, 1 + below(std::min<std::size_t>(8, s.size() - at)));
      }
      break;
    case 3: {
      std::string ins(1 + below(8), '\0');
      for (char& c : ins) c = static_cast<char>(splitmix(rng));
      s.insert(below(s.size() + 1), ins);
      break;
    }
    case 4:
      if (!s.empty()) {
        const std::size_t from = below(s.size());
        const std::string chunk = s.substr(from, 1 + below(32));
        s.insert(below(s.size() + 1), chunk);
      }
      break;
    case 5:
      s.resize(below(s.size() + 1));
      break;
    case 6:
      if (!other.empty()) {
        const std::size_t from = below(other.size());
        const std::string chunk = other.substr(from, 1 + below(64));
        const std::size_t at = below(s.size() + 1);
        s.replace(at, below(std::min<std::size_t>(64, s.size() - at) + 1), chunk);
      }
      break;
    default: {
      // A run of digits becomes an extreme number (text inputs).
      if (s.empty()) break;
      std::size_t at = below(s.size());
      while (at < s.size() && (s[at] < '0' || s[at] > '9')) ++at;
      if (at == s.size()) break;
      std::size_t end = at;
      while (end < s.size() && ((s[end] >= '0' && s[end] <= '9') || s[end] == '.')) ++end;
      s.replace(at, end - at, numbers[below(std::size(numbers))]);
      break;
    }
  }
}

void run(const std::string& input) {
  current = input;
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(current.data()), current.size());
}

int usage(const char* self) {
  std::cerr << "usage: " << self << " [--mutants N] [--seed S] PATH...\n"
            << "Runs this fuzz target on every seed file (PATH: a file or a folder of them),\n"
            << "then on N seeded mutants of each (default 0).\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t mutants = 0, seed = 1;
  std::vector<fs::path> paths;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--mutants" || a == "--seed") && i + 1 < argc) {
      const std::string n = argv[++i];
      if (n.empty() || n.size() > 19 || n.find_first_not_of("0123456789") != std::string::npos)
        return usage(argv[0]);
      (a == "--mutants" ? mutants : seed) = std::stoull(n);
    } else if (a == "-h" || a == "--help" || a.starts_with("-")) {
      return usage(argv[0]);
    } else {
      paths.emplace_back(a);
    }
  }
  std::vector<fs::path> files;
  for (const fs::path& p : paths) {
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
    } else if (fs::is_regular_file(p)) {
      files.push_back(p);
    } else {
      std::cerr << "fuzz replay: no such file or folder: " << p.string() << "\n";
      return 2;
    }
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) {
    std::cerr << "fuzz replay: no seed files given\n";
    return 2;
  }
  std::vector<std::string> seeds;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    seeds.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  failed_path = fs::path(argv[0]).filename().string() + "-failed-input";
  for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(sig, on_fatal_signal);

  for (const std::string& s : seeds) run(s);
  std::uint64_t rng = seed;
  for (std::size_t i = 0; i < seeds.size(); ++i) {
    for (std::uint64_t m = 0; m < mutants; ++m) {
      std::string s = seeds[i];
      const std::size_t edits = 1 + splitmix(rng) % 4;
      for (std::size_t e = 0; e < edits; ++e)
        mutate_once(s, seeds[splitmix(rng) % seeds.size()], rng);
      run(s);
    }
  }
  std::cout << "fuzz replay: " << seeds.size() << " seeds and " << seeds.size() * mutants
            << " mutants passed\n";
  return 0;
}
