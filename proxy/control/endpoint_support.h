#pragma once
// What the endpoints over the resource stores (locks, history) share.
//
// Local handlers over the asynchronous stores (policies/store/store_call.h): a handler answers
// during LocalHandler::handle only, so it can use a store's answer when the call completed at
// once. The memory stores always do; a store that answers later (a network one) needs a
// responder that outlives handle(), which local handlers do not have yet: such a call is
// answered 503 (store-unavailable, Retry-After: 1) for now, as a store that failed is.

#include <optional>
#include <string_view>
#include <utility>

#include "policies/store/store_call.h"
#include "proxy/control/local_handler.h"
#include "proxy/http/problem.h"
#include "proxy/http/query.h"

namespace arbiter {

// Calls `answer` with the value `call` (given a Completion<T>) completed with, when it completed
// at once and without an error; else answers 503 naming `store` ("the lock store").
template <typename T, typename Call, typename Answer>
void with_store(LocalResponder& responder, std::string_view store, Call call, Answer answer) {
  std::optional<StoreResult<T>> result;
  auto keep = [&](StoreResult<T>&& value) { result = std::move(value); };
  StoreCall pending = call(Completion<T>(keep));
  if (!result || !result->ok()) {
    responder.reply_problem(store_unavailable(store).problem().value(), HeaderList{{"Retry-After", "1"}});
    return;
  }
  answer(std::move(result->value));
}

// Content-Type: application/json.
inline const HeaderList& json_fields() {
  static const HeaderList fields{{"Content-Type", "application/json"}};
  return fields;
}

// The percent-decoded ?resource= of `query`: a resource key (the request path, or the key the
// route's `resource` template makes); nullopt after answering 400 when it is missing or empty.
inline std::optional<std::string> resource_param(std::string_view query, LocalResponder& responder) {
  auto resource = query_param(query, "resource");
  if (resource && !resource->empty()) return resource;
  responder.reply_problem(Problem::make("missing-resource", 400, "Which resource?",
                                        "Name the resource: ?resource=/items/1 (its path, percent-encoded where "
                                        "needed)."));
  return std::nullopt;
}

}  // namespace arbiter
