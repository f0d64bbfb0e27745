#include <utility>  // before asio

#include <catch2/catch.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <atomic>
#include <chrono>
#include <optional>
#include <thread>

#include "base/sleep.h"

using namespace hf;
using namespace std::chrono_literals;
namespace net = boost::asio;

namespace {

struct Outcome {
  std::optional<bool> finished;  // sleep_for's result
  std::chrono::steady_clock::duration took{};
};

// Runs one sleep_for on an io_context of its own (run on this thread); `cancel_after` cancels
// the token from another thread, as a teardown does.
Outcome run_sleep(std::chrono::milliseconds d, CancelPtr token, std::optional<std::chrono::milliseconds> cancel_after) {
  net::io_context io;
  Outcome out;
  auto t0 = std::chrono::steady_clock::now();
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        out.finished = co_await sleep_for(d, token);
        out.took = std::chrono::steady_clock::now() - t0;
      },
      net::detached);
  std::thread canceller;
  if (cancel_after) {
    canceller = std::thread([&] {
      std::this_thread::sleep_for(*cancel_after);
      token->cancel();
    });
  }
  io.run();
  if (canceller.joinable()) canceller.join();
  return out;
}

}  // namespace

TEST_CASE("sleep_for waits the whole duration when nothing cancels it") {
  auto out = run_sleep(300ms, make_cancel(), std::nullopt);
  REQUIRE(out.finished.has_value());
  CHECK(*out.finished);
  CHECK(out.took >= 300ms);
  auto plain = run_sleep(50ms, nullptr, std::nullopt);
  REQUIRE(plain.finished.has_value());
  CHECK(*plain.finished);
  CHECK(plain.took >= 50ms);
}

TEST_CASE("sleep_for ends soon after its token is cancelled from another thread, and says so") {
  auto out = run_sleep(60s, make_cancel(), 100ms);
  REQUIRE(out.finished.has_value());
  CHECK_FALSE(*out.finished);
  CHECK(out.took >= 100ms);
  CHECK(out.took < 5s);  // one slice past the cancel in practice; generous for a loaded machine
}

TEST_CASE("sleep_for on an already cancelled token returns at once") {
  auto token = make_cancel();
  token->cancel();
  auto out = run_sleep(60s, token, std::nullopt);
  REQUIRE(out.finished.has_value());
  CHECK_FALSE(*out.finished);
  CHECK(out.took < 5s);
}
