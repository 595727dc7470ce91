// Memory per idle keep-alive connection of a running Arbiter: opens N client connections to
// it, one at a time, sends one request on each and reads the answer, then leaves them all open
// and idle, and reports the Arbiter process's resident set (VmRSS of /proc/PID/status) before
// and after, and the growth per connection. One connection is opened and used first, and kept,
// so that the one-off costs of the first request (the upstream connection, lazily built
// state) are in the "before" figure.
//
//   build-bench/idle_connections_bench PORT N ARBITER_PID [PATH]     (N: 10000, PATH: /items/1)
//
// Raises its own RLIMIT_NOFILE to the hard limit; Arbiter needs an fd limit above N as well,
// and max_connections above N. Every socket operation has a 5 s timeout and the whole run a
// 120 s deadline. Exits 1 if a request fails or a connection is closed while idle.

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench/loopback_request.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = std::chrono::seconds(120);
constexpr int kSocketTimeoutSeconds = 5;

long resident_kb(long pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

// Opens a connection, sends GET path, reads one whole answer (Content-Length framing); the
// socket, or -1 with the reason in `error`.
int open_and_request(int port, const std::string& path, std::string& error) {
  int fd = bench::open_loopback_request(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                                        kSocketTimeoutSeconds, error);
  if (fd < 0) return -1;
  std::string answer;
  char buffer[4096];
  std::size_t header_end = std::string::npos;
  std::size_t length = 0;
  while (true) {
    if (header_end == std::string::npos) {
      header_end = answer.find("\r\n\r\n");
      if (header_end != std::string::npos) {
        std::string head = answer.substr(0, header_end);
        for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        auto at = head.find("\r\ncontent-length:");
        length = at == std::string::npos ? 0 : std::strtoull(head.c_str() + at + 17, nullptr, 10);
        if (answer.compare(0, 12, "HTTP/1.1 200") != 0) {
          error = "answer: " + answer.substr(0, answer.find("\r\n"));
          ::close(fd);
          return -1;
        }
      }
    }
    if (header_end != std::string::npos && answer.size() >= header_end + 4 + length) return fd;
    ssize_t got = ::recv(fd, buffer, sizeof buffer, 0);
    if (got <= 0) {
      error = got == 0 ? "closed before a whole answer" : std::string("recv: ") + std::strerror(errno);
      ::close(fd);
      return -1;
    }
    answer.append(buffer, static_cast<std::size_t>(got));
  }
}

// Connections the server has closed (readable with EOF or an error), checked without blocking.
std::size_t closed_connections(const std::vector<int>& fds) {
  std::vector<pollfd> polls;
  polls.reserve(fds.size());
  for (int fd : fds) polls.push_back({fd, POLLIN, 0});
  if (::poll(polls.data(), polls.size(), 0) < 0) return fds.size();
  std::size_t closed = 0;
  for (const auto& p : polls) {
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) ++closed;  // an idle connection has nothing to read
  }
  return closed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: idle_connections_bench PORT N ARBITER_PID [PATH]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  std::size_t count = std::strtoull(argv[2], nullptr, 10);
  long pid = std::atol(argv[3]);
  std::string path = argc > 4 ? argv[4] : "/items/1";
  auto deadline = Clock::now() + kDeadline;

  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < count + 64) {
    std::fprintf(stderr, "idle_connections_bench: fd limit %llu is too low for %zu connections\n",
                 static_cast<unsigned long long>(limit.rlim_cur), count);
    return 1;
  }
  if (resident_kb(pid) < 0) {
    std::fprintf(stderr, "idle_connections_bench: no VmRSS for pid %ld\n", pid);
    return 1;
  }

  std::string error;
  int warm = open_and_request(port, path, error);
  if (warm < 0) {
    std::fprintf(stderr, "idle_connections_bench: first request: %s\n", error.c_str());
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long before_kb = resident_kb(pid);

  std::vector<int> fds;
  fds.reserve(count);
  auto started = Clock::now();
  for (std::size_t i = 0; i < count; ++i) {
    if (Clock::now() > deadline) {
      std::fprintf(stderr, "idle_connections_bench: deadline passed after %zu connections\n", i);
      return 1;
    }
    int fd = open_and_request(port, path, error);
    if (fd < 0) {
      std::fprintf(stderr, "idle_connections_bench: connection %zu: %s\n", i + 1, error.c_str());
      return 1;
    }
    fds.push_back(fd);
  }
  double open_seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // Let the server finish with the last answers (buffers returned, timers settled).
  std::this_thread::sleep_for(std::chrono::seconds(2));
  long after_kb = resident_kb(pid);
  std::size_t closed = closed_connections(fds);

  std::printf("idle keep-alive connections: %zu (opened in %.1f s, one GET %s each)\n", count, open_seconds,
              path.c_str());
  std::printf("arbiter RSS before:          %ld kB\n", before_kb);
  std::printf("arbiter RSS after:           %ld kB\n", after_kb);
  std::printf("RSS growth:                  %ld kB\n", after_kb - before_kb);
  std::printf("bytes per idle connection:   %.0f\n",
              count == 0 ? 0.0 : static_cast<double>(after_kb - before_kb) * 1024.0 / static_cast<double>(count));
  std::printf("closed by the server while idle: %zu\n", closed);

  for (int fd : fds) ::close(fd);
  ::close(warm);
  return closed == 0 ? 0 : 1;
}
