// Cooperative cancellation shared between a requester (e.g. a FUSE request that may be
// interrupted) and the asynchronous work done on its behalf.
//
// Thread-safety: all members may be called from any thread. Callbacks registered with
// on_cancel() run exactly once: either inside cancel() (on the cancelling thread, outside the
// token's lock) or immediately inside on_cancel() if the token is already cancelled. A callback
// removed with remove() before cancel() never runs; remove() does not wait for a callback that
// is already running.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace hf {

class CancelToken {
 public:
  using Callback = std::function<void()>;

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }

  uint64_t on_cancel(Callback cb) {
    {
      std::lock_guard lk(mu_);
      if (!cancelled()) {
        uint64_t id = ++next_id_;
        cbs_.emplace_back(id, std::move(cb));
        return id;
      }
    }
    cb();
    return 0;
  }

  void remove(uint64_t id) {
    std::lock_guard lk(mu_);
    for (auto it = cbs_.begin(); it != cbs_.end(); ++it) {
      if (it->first == id) {
        cbs_.erase(it);
        return;
      }
    }
  }

  void cancel() {
    std::vector<std::pair<uint64_t, Callback>> cbs;
    {
      std::lock_guard lk(mu_);
      if (cancelled()) return;
      cancelled_.store(true, std::memory_order_release);
      cbs.swap(cbs_);
    }
    for (auto& [id, cb] : cbs) cb();
  }

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  uint64_t next_id_ = 0;
  std::vector<std::pair<uint64_t, Callback>> cbs_;
};

using CancelPtr = std::shared_ptr<CancelToken>;
inline CancelPtr make_cancel() { return std::make_shared<CancelToken>(); }

}  // namespace hf
