// Timed waits for coroutine code: backoff between retries, polling periods, gathering delays.
//
// sleep_for() with a cancel token ends early once the token is cancelled, so a mount's
// teardown can cancel its long waits (a 30 s poll period, a 5-minute commit backoff) and let
// the io threads drain instead of abandoning the waiting coroutines. It checks the token in
// slices rather than cancelling the timer from the cancelling thread: a steady_timer is not
// thread-safe, and a cancel that lands between the token check and async_wait would be lost.
// Slices cost one wakeup per 200 ms of a long wait, nothing next to a network operation.
//
// Await it as its own statement (`bool slept = co_await sleep_for(...);`): g++ 12 compiled
// `while (co_await sleep_for(...))` into a trap (ud2) that killed the daemon.
#pragma once

#include <utility>  // before asio (asio#944)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <algorithm>
#include <chrono>

#include "base/cancel.h"

namespace hf {

// Waits `d` on the calling coroutine's executor. Returns false if `cancel` (may be null) was
// cancelled before or during the wait, true otherwise.
inline boost::asio::awaitable<bool> sleep_for(std::chrono::steady_clock::duration d, const CancelPtr& cancel = nullptr) {
  constexpr auto kSlice = std::chrono::milliseconds(200);
  boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
  auto end = std::chrono::steady_clock::now() + d;
  for (;;) {
    if (cancel && cancel->cancelled()) co_return false;
    auto now = std::chrono::steady_clock::now();
    if (now >= end) co_return true;
    t.expires_at(cancel ? std::min(end, now + kSlice) : end);
    boost::system::error_code ec;
    co_await t.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
}

}  // namespace hf
