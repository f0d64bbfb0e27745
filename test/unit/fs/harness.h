// Test harness: an io_context with real threads, and a way to run a core coroutine to
// completion from the test thread.
#pragma once

#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <future>
#include <random>
#include <thread>
#include <vector>

#include "base/result.h"
#include "fs/file_reader.h"

namespace hf::fs::testing {

class IoThreads {
 public:
  explicit IoThreads(int n = 2) : guard_(io_.get_executor()) {
    for (int i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~IoThreads() { stop(); }
  // Stops running handlers and joins the threads (idempotent). Fixtures call this before
  // destroying what coroutines on these threads use.
  void stop() {
    guard_.reset();
    io_.stop();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  boost::asio::io_context& io() { return io_; }
  boost::asio::any_io_executor ex() { return io_.get_executor(); }

  template <class T>
  T run(boost::asio::awaitable<T> task) {
    std::promise<T> p;
    auto f = p.get_future();
    boost::asio::co_spawn(
        io_,
        [&p, t = std::move(task)]() mutable -> boost::asio::awaitable<void> { p.set_value(co_await std::move(t)); },
        boost::asio::detached);
    return f.get();
  }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::vector<std::thread> threads_;
};

inline std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 rng(seed);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x = rng();
    std::memcpy(v.data() + i, &x, 8);
  }
  for (; i < n; ++i) v[i] = static_cast<uint8_t>(rng());
  return v;
}

// The bytes of a read's slices, in order.
inline std::vector<uint8_t> flatten(const ReadData& d) {
  std::vector<uint8_t> out;
  out.reserve(d.bytes);
  for (auto& s : d.slices) out.insert(out.end(), s.data->begin() + s.offset, s.data->begin() + s.offset + s.length);
  return out;
}

}  // namespace hf::fs::testing
