#pragma once
// Fakes for the conflict feed's endpoints and SSE hub: a held-open stream whose room the test
// controls, and a responder that records the one answer. No sockets.

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policies/store/conflict_feed.h"
#include "proxy/control/local_handler.h"
#include "tests/proxy/control/local_responder_support.h"
#include "tests/support/sse_events.h"

namespace arbiter::feed_testing {

using harness::parse_sse;
using harness::SseEvent;

// A LocalStream whose client reads only when the test says so (take()).
struct FakeFeedStream final : LocalStream {
  std::string written;        // everything accepted, in order
  std::size_t waiting = 0;    // accepted and not yet taken by the "client"
  std::size_t room = std::numeric_limits<std::size_t>::max();  // Full past this (as kMaxStreamBuffered)
  bool ended = false, finished = false, aborted = false;

  StreamWrite write(std::string_view chunk) override {
    if (ended) return StreamWrite::Closed;
    if (chunk.empty()) return StreamWrite::Written;
    if (waiting > 0 && waiting + chunk.size() > room) return StreamWrite::Full;
    written += chunk;
    waiting += chunk.size();
    return StreamWrite::Written;
  }
  void finish() override { ended = finished = true; }
  void abort() override { ended = aborted = true; }
  bool closed() const override { return ended; }
  std::size_t buffered() const override { return waiting; }
  void take() { waiting = 0; }  // the client read everything
};

// Records the answer: a reply (status, fields, body) or a stream.
struct FakeFeedResponder final : testing::RecordingResponder {
  bool head_only = false;  // start_stream answers a closed stream, as for HEAD
  std::shared_ptr<FakeFeedStream> stream;
  StreamListener* listener = nullptr;

  std::shared_ptr<LocalStream> start_stream(int s, const HeaderList& f, StreamListener& l) override {
    ++answers;
    status = s;
    fields = f;
    stream = std::make_shared<FakeFeedStream>();
    stream->ended = head_only;
    listener = head_only ? nullptr : &l;
    return stream;
  }
  void pass_on(PassedOnRequest) override { ADD_FAILURE() << "the feed's endpoints never pass a request on"; }
  nlohmann::json json() const { return body_json(); }
};

// A conflict on `resource` of route "orders".
inline FeedEvent sample_conflict(std::string resource, std::string type = std::string(kFeedConflict)) {
  FeedEvent event;
  event.type = std::move(type);
  event.route = "orders";
  event.resource = std::move(resource);
  event.request_id = "req-1";
  event.client = "127.0.0.1";
  event.method = "PUT";
  event.your_etag = "\"a\"";
  event.current_etag = "\"b\"";
  return event;
}

}  // namespace arbiter::feed_testing
