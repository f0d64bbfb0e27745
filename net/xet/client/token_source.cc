#include <utility>  // before Asio (asio#944)

#include "net/xet/client/token_source.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "base/clock.h"

namespace hf::xet {

namespace net = boost::asio;

net::awaitable<Result<hub::XetToken>> StaticTokenSource::get() { co_return t_; }

struct HubTokenSource::Waiter {
  explicit Waiter(const net::any_io_executor& ex) : timer(ex) {
    timer.expires_at(std::chrono::steady_clock::time_point::max());
  }
  net::steady_timer timer;
};

HubTokenSource::HubTokenSource(hub::HubClient& hub, hub::RepoRef repo, std::string revision, bool write,
                               HubTokenSourceOptions opts)
    : hub_(hub), repo_(std::move(repo)), revision_(std::move(revision)), write_(write), opts_(std::move(opts)) {
  if (!opts_.now_unix) opts_.now_unix = [] { return now_unix_s(); };
}

uint64_t HubTokenSource::refreshes() const {
  std::lock_guard lk(mu_);
  return refreshes_;
}

void HubTokenSource::invalidate() {
  std::lock_guard lk(mu_);
  cached_.reset();
}

net::awaitable<Result<hub::XetToken>> HubTokenSource::get() {
  for (;;) {
    std::shared_ptr<Waiter> w;
    uint64_t gen = 0;
    {
      std::unique_lock lk(mu_);
      int64_t now = opts_.now_unix();
      // A token that expires within the margin is still reused for a few seconds after it
      // was issued, so a server handing out short-lived tokens cannot cause a refresh storm.
      if (cached_ && (cached_->exp_unix - now > opts_.refresh_margin.count() ||
                      (now - fetched_at_ < 5 && cached_->exp_unix > now)))
        co_return *cached_;
      if (refreshing_) {
        w = std::make_shared<Waiter>(co_await net::this_coro::executor);
        gen = generation_;
        waiters_.push_back(w);
      } else {
        refreshing_ = true;
        ++refreshes_;
      }
    }
    if (w) {
      boost::system::error_code ec;
      co_await w->timer.async_wait(net::redirect_error(net::use_awaitable, ec));
      std::lock_guard lk(mu_);
      if (generation_ != gen && last_error_) co_return *last_error_;  // share the failed refresh
      continue;
    }
    auto r = co_await hub_.xet_token(repo_, revision_, write_);
    std::vector<std::shared_ptr<Waiter>> wake;
    {
      std::lock_guard lk(mu_);
      refreshing_ = false;
      ++generation_;
      if (r.ok()) {
        cached_ = *r;
        fetched_at_ = opts_.now_unix();
        last_error_.reset();
      } else {
        last_error_ = r.error();
      }
      wake.swap(waiters_);
    }
    for (auto& x : wake) net::post(x->timer.get_executor(), [x] { x->timer.cancel(); });
    co_return r;
  }
}

}  // namespace hf::xet
