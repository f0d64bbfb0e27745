#include "net/http/pool.h"

#include <boost/asio/post.hpp>

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>

namespace hf::http::detail {

void Connection::close() {
  boost::system::error_code ec;
  lowest().close(ec);
}

uint8_t* Connection::scratch_buf(size_t n) {
  if (!scratch || scratch_size < n) {
    scratch = std::make_unique_for_overwrite<uint8_t[]>(n);
    scratch_size = n;
  }
  return scratch.get();
}

bool Connection::looks_alive() {
  if (!lowest().is_open() || buf.size() != 0) return false;
  if (tls && tls->has_pending()) return false;
  char b;
  ssize_t n = ::recv(lowest().native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return false;  // 0: the server closed; >0: stray bytes (e.g. a TLS alert)
  return errno == EAGAIN || errno == EWOULDBLOCK;
}

void Pool::wake(const std::shared_ptr<Waiter>& w) {
  net::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
}

void Pool::sweep_locked(HostPool& hp, Clock::time_point now) {
  for (auto it = hp.idle.begin(); it != hp.idle.end();) {
    auto limit = std::min(keepalive_, (*it)->max_idle);
    if (now - (*it)->idle_since >= limit) {
      (*it)->close();
      it = hp.idle.erase(it);
    } else {
      ++it;
    }
  }
}

Pool::Grant Pool::acquire(const std::string& key, const net::any_io_executor& ex) {
  std::lock_guard lk(mu_);
  Grant g;
  if (closed_) {
    g.closed = true;
    return g;
  }
  auto& hp = hosts_[key];
  sweep_locked(hp, Clock::now());
  while (!hp.idle.empty()) {
    auto c = std::move(hp.idle.back());
    hp.idle.pop_back();
    if (c->looks_alive()) {
      ++hp.busy;
      g.conn = std::move(c);
      return g;
    }
    c->close();
  }
  if (hp.busy < cap_) {
    ++hp.busy;
    g.create = true;
    return g;
  }
  g.wait = std::make_shared<Waiter>(ex);
  hp.waiters.push_back(g.wait);
  return g;
}

Pool::Grant Pool::collect(const std::string& key, const std::shared_ptr<Waiter>& w) {
  std::lock_guard lk(mu_);
  Grant g;
  if (w->woken) {
    g.conn = std::move(w->conn);
    g.create = w->may_create;
    w->may_create = false;
    return g;
  }
  auto& q = hosts_[key].waiters;
  for (auto it = q.begin(); it != q.end(); ++it) {
    if (*it == w) {
      q.erase(it);
      break;
    }
  }
  return g;
}

void Pool::give_back(const std::string& key, std::unique_ptr<Connection> c, bool reusable) {
  std::lock_guard lk(mu_);
  auto& hp = hosts_[key];
  if (hp.busy > 0) --hp.busy;
  if (c && reusable && !closed_) {
    c->idle_since = Clock::now();
    c->reused = true;
    if (!hp.waiters.empty()) {
      auto w = std::move(hp.waiters.front());
      hp.waiters.pop_front();
      w->conn = std::move(c);
      w->woken = true;
      ++hp.busy;
      wake(w);
      return;
    }
    hp.idle.push_back(std::move(c));
    sweep_locked(hp, Clock::now());
    return;
  }
  if (c) c->close();
  c.reset();
  if (!hp.waiters.empty() && hp.busy + hp.idle.size() < cap_) {
    auto w = std::move(hp.waiters.front());
    hp.waiters.pop_front();
    w->may_create = !closed_;
    w->woken = true;
    if (!closed_) ++hp.busy;
    wake(w);
  }
}

void Pool::close_all() {
  std::lock_guard lk(mu_);
  closed_ = true;
  for (auto& [key, hp] : hosts_) {
    for (auto& c : hp.idle) c->close();
    hp.idle.clear();
    for (auto& w : hp.waiters) {
      w->woken = true;
      wake(w);
    }
    hp.waiters.clear();
  }
}

size_t Pool::idle_count(const std::string& key) {
  std::lock_guard lk(mu_);
  auto it = hosts_.find(key);
  return it == hosts_.end() ? 0 : it->second.idle.size();
}

}  // namespace hf::http::detail
