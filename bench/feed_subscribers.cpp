// Subscribers of the conflict feed, all in one process (bench/feed): opens N Server-Sent Events
// streams (GET PATH with Accept: text/event-stream) to a running Arbiter, one at a time, and once
// every stream has answered 200 prints "ready N" on stdout; from then on it reads and discards
// what arrives on all of them (poll), counting the "event: TYPE" lines of each, until SIGTERM or
// SIGINT. Then it prints one JSON line: subscribers, streams the server closed, and the
// minimum, median and maximum count of TYPE events per stream, and the bytes read.
//
//   build-bench/feed_subscribers_bench PORT N [PATH] [TYPE]
//       (PATH: /_arbiter/conflicts, TYPE: conflict)
//
// Raises its own RLIMIT_NOFILE to the hard limit. Connecting and sending have a 5 s timeout per socket and
// waiting for the answers a 60 s deadline. Exits 1 if a stream is refused or not ready in time,
// or if the server closed any stream.
//
// The counting reads the bytes as they come, chunked framing included: it finds "\nevent: TYPE\n"
// across reads (a tail of each read is kept), which holds as long as Arbiter writes each SSE frame
// inside one chunk.

#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench/loopback_request.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kReadyDeadline = std::chrono::seconds(60);
constexpr int kConnectTimeoutSeconds = 5;

volatile std::sig_atomic_t stop_requested = 0;
void request_stop(int) { stop_requested = 1; }

// One SSE stream: its socket, whether its answer's head has come (and was a 200), and what it
// has counted. `tail` holds the last bytes read, so that a marker split across reads is found.
struct Stream {
  int fd = -1;
  bool head_seen = false;
  bool closed = false;
  std::string head;
  std::string tail;
  std::uint64_t events = 0;
  std::uint64_t bytes = 0;
};

int connect_stream(int port, const std::string& path, std::string& error) {
  int fd = bench::open_loopback_request(
      port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n",
      kConnectTimeoutSeconds, error);
  if (fd >= 0) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Counts `marker` in what was kept of the previous reads followed by `data`; keeps the new tail.
void count_markers(Stream& stream, const char* data, std::size_t size, const std::string& marker) {
  std::string window = stream.tail;
  window.append(data, size);
  for (std::size_t at = window.find(marker); at != std::string::npos; at = window.find(marker, at + marker.size())) {
    ++stream.events;
  }
  std::size_t keep = std::min(window.size(), marker.size() - 1);
  stream.tail.assign(window, window.size() - keep, keep);
}

// Reads what is waiting on `stream`; false when the server closed it.
bool drain(Stream& stream, const std::string& marker, std::vector<char>& buffer) {
  while (true) {
    ssize_t got = ::recv(stream.fd, buffer.data(), buffer.size(), 0);
    if (got == 0) return false;
    if (got < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    auto size = static_cast<std::size_t>(got);
    stream.bytes += size;
    const char* data = buffer.data();
    if (!stream.head_seen) {
      stream.head.append(data, size);
      auto end = stream.head.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      stream.head_seen = true;
      std::string body = stream.head.substr(end + 4);
      stream.head.resize(end);
      stream.tail = "\n";  // the body starts at a line's start
      count_markers(stream, body.data(), body.size(), marker);
      continue;
    }
    count_markers(stream, data, size, marker);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: feed_subscribers_bench PORT N [PATH] [TYPE]\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  std::size_t count = std::strtoull(argv[2], nullptr, 10);
  std::string path = argc > 3 ? argv[3] : "/_arbiter/conflicts";
  std::string marker = "\nevent: " + std::string(argc > 4 ? argv[4] : "conflict") + "\n";

  struct sigaction action {};
  action.sa_handler = request_stop;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);

  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &limit);
  if (limit.rlim_cur < count + 64) {
    std::fprintf(stderr, "feed_subscribers_bench: fd limit %llu is too low for %zu streams\n",
                 static_cast<unsigned long long>(limit.rlim_cur), count);
    return 1;
  }

  std::vector<Stream> streams(count);
  std::string error;
  for (std::size_t i = 0; i < count; ++i) {
    streams[i].fd = connect_stream(port, path, error);
    if (streams[i].fd < 0) {
      std::fprintf(stderr, "feed_subscribers_bench: stream %zu: %s\n", i + 1, error.c_str());
      return 1;
    }
  }

  std::vector<pollfd> polls(count);
  std::vector<char> buffer(64 * 1024);
  auto ready_deadline = Clock::now() + kReadyDeadline;
  bool ready = false;
  std::size_t closed = 0;
  while (!stop_requested) {
    for (std::size_t i = 0; i < count; ++i) polls[i] = {streams[i].closed ? -1 : streams[i].fd, POLLIN, 0};
    int events = ::poll(polls.data(), polls.size(), 200);
    if (events < 0 && errno != EINTR) {
      std::fprintf(stderr, "feed_subscribers_bench: poll: %s\n", std::strerror(errno));
      return 1;
    }
    for (std::size_t i = 0; events > 0 && i < count; ++i) {
      if (polls[i].revents == 0) continue;
      if (!drain(streams[i], marker, buffer)) {
        streams[i].closed = true;
        ++closed;
      }
    }
    if (!ready) {
      std::size_t heads = 0;
      for (const auto& stream : streams) {
        if (!stream.head_seen) continue;
        if (stream.head.compare(0, 12, "HTTP/1.1 200") != 0) {
          std::fprintf(stderr, "feed_subscribers_bench: answered %s\n",
                       stream.head.substr(0, stream.head.find("\r\n")).c_str());
          return 1;
        }
        ++heads;
      }
      if (heads == count) {
        ready = true;
        std::printf("ready %zu\n", count);
        std::fflush(stdout);
      } else if (Clock::now() > ready_deadline || closed > 0) {
        std::fprintf(stderr, "feed_subscribers_bench: %zu of %zu streams answered, %zu closed\n", heads, count,
                     closed);
        return 1;
      }
    }
  }

  std::vector<std::uint64_t> counts;
  std::uint64_t bytes = 0;
  for (const auto& stream : streams) {
    counts.push_back(stream.events);
    bytes += stream.bytes;
    ::close(stream.fd);
  }
  std::sort(counts.begin(), counts.end());
  auto at = [&](std::size_t i) { return counts.empty() ? 0 : counts[i]; };
  std::printf(
      "{\"subscribers\":%zu,\"closed_by_server\":%zu,\"events_min\":%llu,\"events_median\":%llu,"
      "\"events_max\":%llu,\"bytes\":%llu}\n",
      count, closed, static_cast<unsigned long long>(at(0)),
      static_cast<unsigned long long>(at(counts.size() / 2)),
      static_cast<unsigned long long>(counts.empty() ? 0 : counts.back()), static_cast<unsigned long long>(bytes));
  return closed == 0 ? 0 : 1;
}
