#include "tests/support/control_server/test_handlers.h"

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include <cstdint>

#include <nlohmann/json.hpp>

#include "tests/support/control_server/held_kind.h"

namespace arbiter::testing {

namespace {

// The value of `name` in a query "a=1&b=2" (no percent-decoding: tests send plain values).
std::string query_value(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    std::string_view pair = query.substr(0, query.find('&'));
    query.remove_prefix(std::min(query.size(), pair.size() + 1));
    if (pair.starts_with(name) && pair.size() > name.size() && pair[name.size()] == '=') {
      return std::string(pair.substr(name.size() + 1));
    }
  }
  return {};
}

std::size_t query_number(std::string_view query, std::string_view name, std::size_t fallback) {
  std::string text = query_value(query, name);
  return text.empty() ? fallback : std::stoul(text);
}

// One worker's open streams. Loop thread only, as every handler.
class StreamHub {
 public:
  // One open stream; destroyed when its stream ends (told so, or finished by the hub).
  class Subscriber final : public StreamListener {
   public:
    explicit Subscriber(StreamHub& hub) : hub_(hub) { ++hub_.alive_; }
    ~Subscriber() { --hub_.alive_; }
    void on_stream_closed() override {
      ++hub_.closed_told_;
      hub_.drop(this);  // destroys this
    }
    void on_stream_writable() override { ++hub_.writable_told_; }
    std::shared_ptr<LocalStream> stream;

   private:
    StreamHub& hub_;
  };

  void open(const LocalRequest&, LocalResponder& responder) {
    auto subscriber = std::make_unique<Subscriber>(*this);
    subscriber->stream = responder.start_stream(200, HeaderList{{"Content-Type", "text/event-stream"}}, *subscriber);
    if (!subscriber->stream->closed()) subscribers_.push_back(std::move(subscriber));
  }

  void emit(const LocalRequest& request, LocalResponder& responder) {
    std::size_t repeat = query_number(request.query, "repeat", 1);
    std::size_t bytes = query_number(request.query, "bytes", 0);
    std::string chunk = bytes > 0 ? std::string(bytes, 'x') : "data: " + query_value(request.query, "data") + "\n\n";
    std::size_t streams = subscribers_.size(), written = 0, full = 0, closed = 0, max_buffered = 0;
    // A copy: a write never calls a listener back, but stay safe against a stream ending.
    std::vector<std::shared_ptr<LocalStream>> streams_now;
    for (const auto& subscriber : subscribers_) streams_now.push_back(subscriber->stream);
    for (const auto& stream : streams_now) {
      for (std::size_t i = 0; i < repeat; ++i) {
        switch (stream->write(chunk)) {
          case StreamWrite::Written: ++written; break;
          case StreamWrite::Full: ++full; break;
          case StreamWrite::Closed: ++closed; break;
        }
        max_buffered = std::max(max_buffered, stream->buffered());
      }
    }
    reply_json(responder, {{"streams", streams},
                           {"written", written},
                           {"full", full},
                           {"closed", closed},
                           {"max_buffered", max_buffered}});
  }

  void finish(const LocalRequest&, LocalResponder& responder) {
    reply_json(responder, {{"finished", end_all(&LocalStream::finish)}});
  }

  void abort(const LocalRequest&, LocalResponder& responder) {
    reply_json(responder, {{"aborted", end_all(&LocalStream::abort)}});
  }

  // Answers nothing: Arbiter must answer for it.
  void silent(const LocalRequest&, LocalResponder&) {}

  void state(const LocalRequest&, LocalResponder& responder) {
    reply_json(responder, {{"open", subscribers_.size()},
                           {"alive", alive_},
                           {"closed_told", closed_told_},
                           {"writable_told", writable_told_}});
  }

 private:
  static void reply_json(LocalResponder& responder, const nlohmann::json& body) {
    responder.reply(200, HeaderList{{"Content-Type", "application/json"}}, body.dump());
  }
  // Ends every open stream with `end` (finish or abort); returns how many there were.
  std::size_t end_all(void (LocalStream::*end)()) {
    std::vector<std::unique_ptr<Subscriber>> ending = std::move(subscribers_);
    subscribers_.clear();
    for (const auto& subscriber : ending) ((*subscriber->stream).*end)();
    return ending.size();
  }
  void drop(Subscriber* subscriber) {
    auto it = std::find_if(subscribers_.begin(), subscribers_.end(),
                           [&](const auto& held) { return held.get() == subscriber; });
    if (it != subscribers_.end()) subscribers_.erase(it);
  }

  std::vector<std::unique_ptr<Subscriber>> subscribers_;
  std::size_t alive_ = 0;
  std::size_t closed_told_ = 0;
  std::size_t writable_told_ = 0;
};

// A handler that is one member function of the hub.
class HubHandler final : public LocalHandler {
 public:
  using Member = void (StreamHub::*)(const LocalRequest&, LocalResponder&);
  HubHandler(std::shared_ptr<StreamHub> hub, Member member) : hub_(std::move(hub)), member_(member) {}
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    ((*hub_).*member_)(request, responder);
  }

 private:
  std::shared_ptr<StreamHub> hub_;
  Member member_;
};

// The HeldStore's calls on this worker (the handler runs on the worker's loop, where they wait).
class HeldHandler final : public LocalHandler {
 public:
  explicit HeldHandler(bool release) : release_(release) {}
  void handle(const LocalRequest& request, LocalResponder& responder) override {
    nlohmann::json body;
    if (release_) body["released"] = held_store().release(query_number(request.query, "count", SIZE_MAX));
    body["held"] = held_store().held();
    responder.reply(200, HeaderList{{"Content-Type", "application/json"}}, body.dump());
  }

 private:
  bool release_;
};

}  // namespace

void add_test_handlers(HandlerRegistry&, HandlerRegistry& control) {
  auto hub = std::make_shared<StreamHub>();
  auto add = [&](std::string path, std::string method, std::string summary, HubHandler::Member member) {
    control.add(std::move(path), PathMatch::Exact, {std::move(method)}, std::move(summary),
                std::make_shared<HubHandler>(hub, member));
  };
  add("/test/stream", "GET", "test: an event stream", &StreamHub::open);
  add("/test/emit", "POST", "test: write to every stream", &StreamHub::emit);
  add("/test/finish", "POST", "test: finish every stream", &StreamHub::finish);
  add("/test/abort", "POST", "test: abort every stream", &StreamHub::abort);
  add("/test/silent", "GET", "test: a handler that does not answer", &StreamHub::silent);
  add("/test/state", "GET", "test: the hub's counts", &StreamHub::state);
  control.add("/test/held", PathMatch::Exact, {"GET"}, "test: the held store's waiting calls",
              std::make_shared<HeldHandler>(false));
  control.add("/test/release", PathMatch::Exact, {"POST"}, "test: release held store calls",
              std::make_shared<HeldHandler>(true));
}

}  // namespace arbiter::testing
