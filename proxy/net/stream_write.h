#pragma once
// Writing to a libuv stream without copying in the common case: uv_try_write first, and only
// what the kernel did not take is copied into a queued uv_write. Order is preserved because
// uv_try_write refuses while anything is queued.

#include <cstddef>

#include <uv.h>

namespace arbiter {

// Back-pressure marks for relaying between two streams: stop reading the source while more than
// kHighWater bytes wait to be written to the destination; resume below kLowWater.
inline constexpr std::size_t kHighWater = 256u << 10;
inline constexpr std::size_t kLowWater = 64u << 10;

class WriteListener {
 public:
  // A queued write finished (status 0) or failed; called on the loop thread. The stream's
  // owner must outlive this, which libuv guarantees when the owner is freed only in its close
  // callback (pending writes are cancelled before that).
  virtual void on_write_done(int status) = 0;

 protected:
  ~WriteListener() = default;
};

// Returns 0 or a negative libuv error. listener may be null.
int write_to_stream(uv_stream_t* stream, const uv_buf_t* bufs, unsigned count, WriteListener* listener);

inline uv_buf_t make_buf(const char* data, std::size_t length) {
  return uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(length));
}

}  // namespace arbiter
