#pragma once
// Test-only local handlers, built into the test binary `arbiter-test-handlers` (never into
// arbiter): a stream hub on each worker's control registry, to drive held-open responses from
// the integration tests, paced by requests rather than by time.
//
// Under [server] control_prefix (P):
//   GET  P/test/stream   opens a text/event-stream response held by the hub (no body yet)
//   POST P/test/emit     writes to every open stream: ?data=TEXT writes "data: TEXT\n\n";
//                        ?bytes=N writes N bytes of 'x' instead; ?repeat=K does it K times.
//                        Answers {"streams","written","full","closed","max_buffered"}: counts of
//                        write results and the most bytes a stream had waiting after a write
//   POST P/test/finish   finishes every open stream: {"finished"}
//   POST P/test/abort    aborts every open stream: {"aborted"}
//   GET  P/test/silent   returns without answering
//   GET  P/test/state    {"open","alive","closed_told","writable_told"}: streams the hub holds,
//                        its per-stream objects alive, and the listener calls it received
//   GET  P/test/held     {"held"}: the HeldStore's calls waiting on this worker (held_kind.h)
//   POST P/test/release  completes this worker's held calls, oldest first (?count=N, default
//                        all): {"released","held"}
// With one worker, every request of a test meets the same hub and the same held calls.

#include "proxy/control/handler_registry.h"

namespace arbiter::testing {

void add_test_handlers(HandlerRegistry& admin, HandlerRegistry& control);

}  // namespace arbiter::testing
