// CAS access tokens (xet-protocol.md §8): an abstract source and the Hub-backed one.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "net/hub/client.h"
#include "net/hub/types.h"

namespace hf::xet {

// Returns a CAS token that is valid for at least the refresh margin. Thread-safe.
class TokenSource {
 public:
  virtual boost::asio::awaitable<Result<hub::XetToken>> get() = 0;
  // The CAS rejected the current token (401): the next get() fetches a new one.
  virtual void invalidate() {}
  virtual ~TokenSource() = default;
};

// A fixed token (tests, tools). Never refreshes.
class StaticTokenSource : public TokenSource {
 public:
  explicit StaticTokenSource(hub::XetToken t) : t_(std::move(t)) {}
  boost::asio::awaitable<Result<hub::XetToken>> get() override;

 private:
  hub::XetToken t_;
};

struct HubTokenSourceOptions {
  std::chrono::seconds refresh_margin{30};        // refresh when exp <= now + margin (XC: 30 s)
  std::function<int64_t()> now_unix;              // default: wall clock seconds
};

// Tokens from HubClient::xet_token for a repo + revision (or a bucket). Refreshes before
// expiry; concurrent callers during a refresh wait for that one request (single-flight) and
// share its result, success or error. Thread-safe; the HubClient must outlive it.
class HubTokenSource : public TokenSource {
 public:
  HubTokenSource(hub::HubClient& hub, hub::RepoRef repo, std::string revision, bool write,
                 HubTokenSourceOptions opts = {});
  boost::asio::awaitable<Result<hub::XetToken>> get() override;
  void invalidate() override;
  uint64_t refreshes() const;  // number of token requests made

 private:
  struct Waiter;
  hub::HubClient& hub_;
  hub::RepoRef repo_;
  std::string revision_;
  bool write_;
  HubTokenSourceOptions opts_;

  mutable std::mutex mu_;
  std::optional<hub::XetToken> cached_;        // guarded by mu_
  int64_t fetched_at_ = 0;                     // unix seconds when cached_ was issued
  std::optional<Error> last_error_;            // result of the latest refresh, if it failed
  uint64_t generation_ = 0;                    // completed refreshes
  bool refreshing_ = false;
  std::vector<std::shared_ptr<Waiter>> waiters_;
  uint64_t refreshes_ = 0;
};

}  // namespace hf::xet
