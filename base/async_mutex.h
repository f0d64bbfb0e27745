// A FIFO mutex for coroutine code on Boost.Asio: lock() suspends the coroutine (never blocks a
// thread) until the mutex is handed to it; the Guard it returns unlocks when destroyed. Not
// recursive. Thread-safe; waiters resume on their own executor (see SharedResult).
#pragma once

#include <deque>
#include <mutex>

#include "base/async.h"

namespace hf {

class AsyncMutex {
 public:
  class Guard {
   public:
    Guard() = default;
    explicit Guard(AsyncMutex* m) : m_(m) {}
    Guard(Guard&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
    Guard& operator=(Guard&& o) noexcept {
      if (this != &o) {
        unlock();
        m_ = std::exchange(o.m_, nullptr);
      }
      return *this;
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { unlock(); }
    void unlock() {
      if (m_) std::exchange(m_, nullptr)->unlock();
    }

   private:
    AsyncMutex* m_ = nullptr;
  };

  boost::asio::awaitable<Guard> lock() {
    SharedResultPtr<bool> turn;
    {
      std::lock_guard lk(mu_);
      if (!locked_) {
        locked_ = true;
        co_return Guard(this);
      }
      turn = SharedResult<bool>::create();
      waiters_.push_back(turn);
    }
    (void)co_await turn->wait();  // unlock() handed the mutex over (it stays locked)
    co_return Guard(this);
  }

 private:
  void unlock() {
    SharedResultPtr<bool> next;
    {
      std::lock_guard lk(mu_);
      if (waiters_.empty()) {
        locked_ = false;
        return;
      }
      next = std::move(waiters_.front());
      waiters_.pop_front();
    }
    next->set(true);
  }

  std::mutex mu_;
  bool locked_ = false;
  std::deque<SharedResultPtr<bool>> waiters_;
};

}  // namespace hf
