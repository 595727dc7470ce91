#include "tests/support/sse_stream.h"

#include <algorithm>
#include <cctype>

#include <sys/socket.h>

namespace harness {

namespace {

using SseClock = std::chrono::steady_clock;

Milliseconds sse_time_left(SseClock::time_point deadline) {
  return std::max(Milliseconds(0), std::chrono::duration_cast<Milliseconds>(deadline - SseClock::now()));
}

bool same_field_name(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

SseStream::SseStream(std::uint16_t port, std::string_view target, const HeaderPairs& fields, Milliseconds timeout,
                     int receive_buffer)
    : socket_(connect_loopback(port)) {
  if (receive_buffer > 0) ::setsockopt(socket_.fd(), SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  HeaderPairs request_fields = fields;
  request_fields.emplace_back("Accept", "text/event-stream");
  if (!socket_.write_all(format_request("GET", target, port, request_fields))) return;
  auto head = socket_.read_head(timeout);
  if (!head) return;
  head_ = *head;
  if (head_.size() > 12) status_ = std::atoi(head_.substr(9, 3).c_str());
}

std::optional<std::string> SseStream::header(std::string_view name) const {
  std::string_view rest = head_;
  while (!rest.empty()) {
    std::size_t end = rest.find("\r\n");
    std::string_view line = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 2);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || !same_field_name(line.substr(0, colon), name)) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    return std::string(value);
  }
  return std::nullopt;
}

bool SseStream::read_chunk(SseClock::time_point deadline) {
  if (ended_) return false;
  std::string line, byte;
  while (!line.ends_with("\r\n")) {
    if (!socket_.read_exact(1, byte, sse_time_left(deadline))) return false;
    line += byte;
  }
  std::size_t size = std::stoul(line, nullptr, 16);
  std::string data;
  if (!socket_.read_exact(size + 2, data, sse_time_left(deadline))) return false;
  if (size == 0) {
    ended_ = true;
    return false;
  }
  text_.append(data, 0, size);
  return true;
}

std::optional<SseEvent> SseStream::next(Milliseconds timeout) {
  auto deadline = SseClock::now() + timeout;
  for (;;) {
    // A block ends at a blank line; skip blank lines that end nothing.
    std::size_t start = text_.find_first_not_of('\n');
    if (start == std::string::npos) {
      text_.clear();
    } else {
      std::size_t end = text_.find("\n\n", start);
      if (end != std::string::npos) {
        auto blocks = parse_sse(std::string_view(text_).substr(start, end + 2 - start));
        text_.erase(0, end + 2);
        if (!blocks.empty()) return blocks.front();
        continue;
      }
    }
    if (!read_chunk(deadline)) return std::nullopt;
  }
}

std::optional<SseEvent> SseStream::next_event(Milliseconds timeout) {
  auto deadline = SseClock::now() + timeout;
  for (;;) {
    auto block = next(sse_time_left(deadline));
    if (!block || !block->data.empty()) return block;
  }
}

bool SseStream::ends_within(Milliseconds timeout) {
  auto deadline = SseClock::now() + timeout;
  while (read_chunk(deadline)) text_.clear();
  return ended_ || socket_.closed_by_peer(sse_time_left(deadline));
}

}  // namespace harness
