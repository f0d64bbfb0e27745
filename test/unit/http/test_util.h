// Helpers for tests of asynchronous clients: an io_context with its own threads and blocking
// wrappers around callback APIs.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <future>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "net/http/client.h"

namespace hf::test {

// Runs an io_context on `n` threads until destruction. Declare it before the clients that use
// it so they are destroyed first.
struct IoThreads {
  explicit IoThreads(int n = 2) : guard(io.get_executor()) {
    for (int i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
  }
  ~IoThreads() {
    guard.reset();
    io.stop();
    for (auto& t : threads) t.join();
  }
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard;
  std::vector<std::thread> threads;
};

template <class T>
T wait_for(std::future<T>& f, std::chrono::seconds limit = std::chrono::seconds(20)) {
  if (f.wait_for(limit) != std::future_status::ready) throw std::runtime_error("timed out waiting for a completion");
  return f.get();
}

inline Result<http::Response> fetch_sync(http::Client& c, http::Request r) {
  auto p = std::make_shared<std::promise<Result<http::Response>>>();
  auto f = p->get_future();
  c.fetch(std::move(r), [p](Result<http::Response> res) { p->set_value(std::move(res)); });
  return wait_for(f);
}

inline Result<http::ResponseHead> stream_sync(http::Client& c, http::Request r, http::StreamHandler h) {
  auto p = std::make_shared<std::promise<Result<http::ResponseHead>>>();
  auto f = p->get_future();
  c.stream(std::move(r), std::move(h), [p](Result<http::ResponseHead> res) { p->set_value(std::move(res)); });
  return wait_for(f);
}

// Runs a coroutine on `io` and waits for its result.
template <class T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> a) {
  auto p = std::make_shared<std::promise<std::optional<T>>>();
  auto f = p->get_future();
  boost::asio::co_spawn(
      io,
      [a = std::move(a), p]() mutable -> boost::asio::awaitable<void> {
        p->set_value(co_await std::move(a));
      },
      [p](std::exception_ptr e) {
        if (e) p->set_exception(e);
      });
  auto r = wait_for(f, std::chrono::seconds(60));
  return std::move(*r);
}

inline http::Request get(std::string url) {
  http::Request r;
  r.url = std::move(url);
  return r;
}

}  // namespace hf::test
