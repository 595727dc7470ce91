#pragma once
// A LocalResponder that records what a handler answered, for tests that call local handlers
// (proxy/control/) without sockets.

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "proxy/control/local_handler.h"

namespace arbiter::testing {

struct RecordingResponder : LocalResponder {
  int status = 0;
  HeaderList fields;
  std::string body;
  int answers = 0;

  void reply(int s, const HeaderList& f, std::string_view b) override {
    ++answers;
    status = s;
    fields = f;
    body = b;
  }
  // The problem as Arbiter sends it, with request id "rid".
  void reply_problem(const Problem& problem, const HeaderList& f) override {
    HeaderList with_type = f;
    with_type.add("Content-Type", kProblemContentType);
    reply(problem.status, with_type, problem.to_json("rid"));
  }
  std::shared_ptr<LocalStream> start_stream(int, const HeaderList&, StreamListener&) override {
    ADD_FAILURE() << "no handler here streams";
    return nullptr;
  }
  // Recorded as status -1 and the body "METHOD target".
  void pass_on(PassedOnRequest request) override {
    ++answers;
    status = -1;
    body = std::string(request.method) + " " + request.target;
  }

  std::string field(std::string_view name) const { return std::string(fields.find(name).value_or("")); }
  nlohmann::json body_json() const { return nlohmann::json::parse(body); }
  nlohmann::json problem() const { return body_json(); }
};

}  // namespace arbiter::testing
