// Shared state of the FUSE adapter (the only code that includes fuse_lowlevel.h).
//
// The adapter is a set of thin per-op-family shims (entry.cc, dir.cc, file.cc, xattr.cc,
// statfs.cc, session.cc) over fs::Vfs. Each shim tries the Vfs fast path on the FUSE thread and
// otherwise hands the operation to the io executor (spawn_reply below); the reply is sent from
// the coroutine's completion. errno is produced only by errno.cc.
#pragma once

#include <utility>  // before asio

#include <fuse_lowlevel.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <atomic>
#include <exception>

#include "base/cancel.h"
#include "base/log.h"
#include "fs/vfs.h"

namespace hf::fs::fuse {

struct FuseTuning {
  unsigned max_background = 64;
  unsigned congestion_threshold = 48;
  unsigned max_readahead = 1u << 20;
  bool writeback_cache = false;
};

struct FuseContext {
  Vfs* vfs = nullptr;
  boost::asio::any_io_executor ex;
  struct fuse_session* session = nullptr;
  FuseTuning tuning;
  // Applied after INIT: the kernel clamps the bdi readahead to INIT's max_readahead when it
  // processes the reply, so writing it earlier would be undone.
  std::string read_ahead_path;
  unsigned read_ahead_kb = 0;
  std::atomic<uint64_t> async_ops{0}, interrupts{0}, errors{0};
  // Requests handed to the io executor and not replied to yet: the teardown waits for 0 before
  // it destroys the session their replies go through.
  std::atomic<int64_t> unreplied{0};
};

inline FuseContext& ctx(fuse_req_t req) { return *static_cast<FuseContext*>(fuse_req_userdata(req)); }

// Maps a core error to errno (the one place that does), logs it at a level chosen by the cause,
// counts it, and replies.
int to_errno(Errc c);
void reply_error(fuse_req_t req, const Error& err, const char* op);

// Runs `task` on the io executor and calls `reply(req, result)` from its completion. A FUSE
// INTERRUPT for `req` cancels `cancel`. The interrupt registration is removed before the reply
// (libfuse may invoke the interrupt callback concurrently with a reply; unregistering takes
// the request lock and waits for a running callback), so the cancel token outlives every call.
template <class T, class ReplyFn>
void spawn_reply(fuse_req_t req, CancelPtr cancel, boost::asio::awaitable<Result<T>> task, const char* op,
                 ReplyFn reply) {
  FuseContext& c = ctx(req);
  c.async_ops.fetch_add(1, std::memory_order_relaxed);
  c.unreplied.fetch_add(1, std::memory_order_relaxed);
  auto* holder = new CancelPtr(cancel);
  fuse_req_interrupt_func(
      req,
      [](fuse_req_t r, void* data) {
        ctx(r).interrupts.fetch_add(1, std::memory_order_relaxed);
        (*static_cast<CancelPtr*>(data))->cancel();
      },
      holder);
  // The coroutine replies itself: co_spawn's value-returning form would need a
  // default-constructible Result<T>.
  auto finished = std::make_shared<std::atomic<bool>>(false);
  boost::asio::co_spawn(
      c.ex,
      [req, holder, op, finished, reply = std::move(reply),
       task = std::move(task)]() mutable -> boost::asio::awaitable<void> {
        Result<T> r = co_await std::move(task);
        finished->store(true);
        fuse_req_interrupt_func(req, nullptr, nullptr);
        delete holder;
        FuseContext& fc = ctx(req);  // req is freed by the reply
        reply(req, std::move(r));
        fc.unreplied.fetch_sub(1, std::memory_order_release);
      },
      [req, holder, op, finished](std::exception_ptr e) {
        if (!e || finished->load()) return;
        fuse_req_interrupt_func(req, nullptr, nullptr);
        delete holder;
        FuseContext& fc = ctx(req);
        reply_error(req, Error(Errc::internal, "unexpected exception"), op);
        fc.unreplied.fetch_sub(1, std::memory_order_release);
      });
}

void fill_stat(const Attr& a, struct stat* st);
void fill_entry(const EntryOut& e, struct fuse_entry_param* p);

}  // namespace hf::fs::fuse
