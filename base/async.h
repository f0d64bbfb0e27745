// One-shot broadcast results for coroutine code on Boost.Asio (Boost 1.74 has no channels or
// experimental promises): a producer completes a SharedResult<T> once; any number of waiters,
// on any executor, co_await it before or after completion.
//
// Thread-safety: all members may be called from any thread. Waiters are resumed through
// boost::asio::post on their own associated executor, never inline inside set(), so set() can
// be called while the caller holds its own locks (it takes only the result's internal mutex).
#pragma once

#include <utility>  // before asio (asio#944)

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace hf {

template <class T>
class SharedResult : public std::enable_shared_from_this<SharedResult<T>> {
 public:
  static std::shared_ptr<SharedResult> create() { return std::shared_ptr<SharedResult>(new SharedResult()); }

  // Completes the result. Returns false (and changes nothing) if it was already completed.
  bool set(T value) {
    std::vector<std::function<void(const T&)>> waiters;
    {
      std::lock_guard lk(mu_);
      if (value_) return false;
      value_.emplace(std::move(value));
      waiters.swap(waiters_);
    }
    for (auto& w : waiters) w(*value_);
    return true;
  }

  bool ready() const {
    std::lock_guard lk(mu_);
    return value_.has_value();
  }

  std::optional<T> peek() const {
    std::lock_guard lk(mu_);
    return value_;
  }

  // Registers a callback run once with the value: immediately (inline) if already complete,
  // otherwise on the thread that calls set(), outside the internal lock.
  void on_ready(std::function<void(const T&)> cb) {
    {
      std::lock_guard lk(mu_);
      if (!value_) {
        waiters_.push_back(std::move(cb));
        return;
      }
    }
    cb(*value_);
  }

  // Asio async operation: completes with a copy of the value on the handler's executor.
  template <class CompletionToken>
  auto async_wait(CompletionToken&& token) {
    auto self = this->shared_from_this();
    return boost::asio::async_initiate<CompletionToken, void(T)>(
        [self](auto handler) {
          using H = decltype(handler);
          auto ex = boost::asio::get_associated_executor(handler);
          auto h = std::make_shared<H>(std::move(handler));
          self->on_ready([h, ex](const T& v) {
            boost::asio::post(ex, [h, v]() mutable { (*h)(std::move(v)); });
          });
        },
        token);
  }

  boost::asio::awaitable<T> wait() { return async_wait(boost::asio::use_awaitable); }

 private:
  SharedResult() = default;
  mutable std::mutex mu_;
  std::optional<T> value_;
  std::vector<std::function<void(const T&)>> waiters_;
};

template <class T>
using SharedResultPtr = std::shared_ptr<SharedResult<T>>;

}  // namespace hf
