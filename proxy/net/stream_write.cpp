#include "proxy/net/stream_write.h"

#include <string>

namespace arbiter {

namespace {

struct QueuedWrite {
  uv_write_t request;
  std::string data;
  WriteListener* listener;
};

void on_queued_write_done(uv_write_t* request, int status) {
  auto* queued = reinterpret_cast<QueuedWrite*>(request);
  WriteListener* listener = queued->listener;
  delete queued;
  if (listener != nullptr) listener->on_write_done(status);
}

}  // namespace

int write_to_stream(uv_stream_t* stream, const uv_buf_t* bufs, unsigned count, WriteListener* listener) {
  std::size_t total = 0;
  for (unsigned i = 0; i < count; ++i) total += bufs[i].len;
  if (total == 0) return 0;

  std::size_t written = 0;
  int rc = uv_try_write(stream, bufs, count);
  if (rc >= 0) {
    written = static_cast<std::size_t>(rc);
    if (written == total) return 0;
  } else if (rc != UV_EAGAIN && rc != UV_ENOSYS) {
    return rc;
  }

  auto* queued = new QueuedWrite{};
  queued->listener = listener;
  queued->data.reserve(total - written);
  std::size_t skip = written;
  for (unsigned i = 0; i < count; ++i) {
    if (skip >= bufs[i].len) {
      skip -= bufs[i].len;
      continue;
    }
    queued->data.append(bufs[i].base + skip, bufs[i].len - skip);
    skip = 0;
  }
  uv_buf_t rest = uv_buf_init(queued->data.data(), static_cast<unsigned>(queued->data.size()));
  rc = uv_write(&queued->request, stream, &rest, 1, on_queued_write_done);
  if (rc != 0) {
    delete queued;
    return rc;
  }
  return 0;
}

}  // namespace arbiter
