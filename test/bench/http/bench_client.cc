// Downloads [0, size) of a URL with hf::http::Client as K concurrent ranged streams and
// prints one JSON line: {"bytes":..,"seconds":..,"cpu_user":..,"cpu_sys":..}.
//   hf-http-bench-client --url URL --size BYTES --streams K [--ca FILE] [--io-threads N] [--verify]
// --verify checks every byte against the bench server's content function.
#include <utility>  // before Asio (asio#944)

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "net/http/client.h"

using namespace hf;

static double cpu(const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; }

int main(int argc, char** argv) {
  std::string url, ca;
  uint64_t size = 0;
  int streams = 1, io_threads = 1;
  bool verify = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--url") url = next();
    else if (a == "--size") size = std::strtoull(next().c_str(), nullptr, 10);
    else if (a == "--streams") streams = std::atoi(next().c_str());
    else if (a == "--ca") ca = next();
    else if (a == "--io-threads") io_threads = std::atoi(next().c_str());
    else if (a == "--verify") verify = true;
  }
  if (url.empty() || !size || streams < 1) {
    std::fprintf(stderr, "usage: %s --url URL --size BYTES --streams K [--ca FILE] [--io-threads N] [--verify]\n", argv[0]);
    return 2;
  }
  boost::asio::io_context io;
  auto guard = boost::asio::make_work_guard(io);
  std::vector<std::thread> threads;
  for (int i = 0; i < io_threads; ++i) threads.emplace_back([&] { io.run(); });
  http::ClientOptions opts;
  opts.use_env_proxy = false;
  opts.extra_ca_file = ca;
  opts.max_connections_per_host = static_cast<size_t>(streams);
  auto client = std::make_unique<http::Client>(io, opts);

  std::atomic<uint64_t> total{0}, bad{0};
  std::vector<std::future<Result<http::ResponseHead>>> done;
  auto t0 = std::chrono::steady_clock::now();
  uint64_t per = size / static_cast<uint64_t>(streams);
  for (int k = 0; k < streams; ++k) {
    uint64_t first = per * static_cast<uint64_t>(k);
    uint64_t last = k + 1 == streams ? size - 1 : first + per - 1;
    http::Request req;
    req.url = url;
    req.headers.add("Range", "bytes=" + std::to_string(first) + "-" + std::to_string(last));
    auto pos = std::make_shared<uint64_t>(first);
    http::StreamHandler h;
    h.on_data = [&, pos](std::span<const uint8_t> d) {
      if (verify) {
        for (size_t i = 0; i < d.size(); ++i) {
          uint64_t off = *pos + i;
          if (d[i] != static_cast<uint8_t>((off * 2654435761ull) >> 24)) bad.fetch_add(1, std::memory_order_relaxed);
        }
      }
      *pos += d.size();
      total.fetch_add(d.size(), std::memory_order_relaxed);
      return Status();
    };
    auto p = std::make_shared<std::promise<Result<http::ResponseHead>>>();
    done.push_back(p->get_future());
    client->stream(std::move(req), std::move(h), [p](Result<http::ResponseHead> r) { p->set_value(std::move(r)); });
  }
  int failures = 0;
  for (auto& f : done) {
    auto r = f.get();
    if (!r.ok()) {
      std::fprintf(stderr, "error: %s\n", r.error().describe().c_str());
      ++failures;
    } else if (r->status != 206 && r->status != 200) {
      std::fprintf(stderr, "status %d\n", r->status);
      ++failures;
    }
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  client.reset();
  guard.reset();
  for (auto& t : threads) t.join();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("{\"bytes\":%llu,\"seconds\":%.6f,\"cpu_user\":%.6f,\"cpu_sys\":%.6f,\"bad_bytes\":%llu}\n",
              static_cast<unsigned long long>(total.load()), secs, cpu(ru.ru_utime), cpu(ru.ru_stime),
              static_cast<unsigned long long>(bad.load()));
  return failures || total.load() != size || bad.load() ? 1 : 0;
}
