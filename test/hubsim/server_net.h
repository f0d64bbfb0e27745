// Server::Net: the listener and io threads (implementation in server_net.cc, the only
// translation unit of the simulator that includes Boost.Asio/Beast).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/result.h"
#include "test/hubsim/server.h"

namespace hf::hubsim {

class Server::Net {
 public:
  Net(Core& core, unsigned threads);
  ~Net();
  // Binds and starts the io threads. Not restartable after stop().
  Status start(const Options& o);
  // Stops accepting, closes every connection and joins the threads. Idempotent.
  void stop();
  uint16_t port() const;
  const std::string& scheme() const { return scheme_; }
  const std::string& host() const { return host_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  unsigned nthreads_;
  uint16_t port_ = 0;
  std::string scheme_ = "http";
  std::string host_ = "127.0.0.1";
};

}  // namespace hf::hubsim
