#pragma once
// Where the concurrency policy counts the requests it lets through to the backend: per key, how
// many hold a slot, and who waits for one, in arrival order. An interface, as the bucket store
// is, so that a later store can share the counts among Arbiter instances. acquire() may
// complete later: see policies/store/store_call.h for the contract.

#include <cstddef>
#include <memory>
#include <string_view>

#include "policies/policy.h"
#include "policies/store/store_call.h"

namespace arbiter {

// One request's claim on a slot: held, or waiting in its key's FIFO. Destroying it gives the
// claim up, whichever it was: a holder frees its slot for the first waiter (whose Waker is
// woken), a waiter leaves the queue. Thread-safe.
class SlotTicket {
 public:
  virtual ~SlotTicket() = default;
  // The request holds a slot now.
  virtual bool granted() const = 0;
};

class SlotTable {
 public:
  enum class Refusal : std::uint8_t {
    QueueFull,    // max_in_flight hold a slot and max_queue already wait
    TooManyKeys,  // the table tracks as many keys as it may, none of them this one
  };
  struct Claim {
    std::unique_ptr<SlotTicket> ticket;  // null: refused
    Refusal refusal = Refusal::QueueFull;
  };

  virtual ~SlotTable() = default;

  // A slot for `key` at once when fewer than max_in_flight hold one and nobody waits; else a
  // place in the queue (its waker is woken when the slot is granted) while fewer than
  // max_queue wait; else a refusal. Every call for one key passes the same max_in_flight,
  // except across a reload: the latest call's applies (a higher cap admits waiters first).
  // The claim is the completion's; a call cancelled before it completed gives its claim up.
  virtual StoreCall acquire(std::string_view key, std::size_t max_in_flight, std::size_t max_queue,
                            std::shared_ptr<Waker> waker, Completion<Claim> done) = 0;

  // Gauges, over every key, as far as this process knows (for /metrics; never wait).
  virtual std::size_t in_flight() const = 0;
  virtual std::size_t waiting() const = 0;
  // Keys with a slot held or a request waiting; the others are not kept.
  virtual std::size_t size() const = 0;
};

}  // namespace arbiter
