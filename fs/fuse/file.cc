// open, read, flush, release (read-only data path).
#include <sys/uio.h>

#include <vector>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  FuseContext& c = ctx(req);
  auto r = c.vfs->open(ino, fi->flags);
  if (!r.ok()) {
    reply_error(req, r.error(), "open");
    return;
  }
  fi->fh = r->fh;
  fi->keep_cache = r->keep_cache;
  // Attributes only (no pages): safe from a worker thread, nothing waits on page locks.
  if (r->refresh_attrs && c.session) (void)fuse_lowlevel_notify_inval_inode(c.session, ino, -1, 0);
  if (fuse_reply_open(req, fi) != 0) c.vfs->release(r->fh);
}

static void reply_data(fuse_req_t req, Result<ReadData> r) {
  if (!r.ok()) {
    reply_error(req, r.error(), "read");
    return;
  }
  const ReadData& d = *r;
  if (d.slices.empty()) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  // Zero-copy: the reply is gathered straight from the cached chunk buffers.
  std::vector<struct iovec> iov(d.slices.size());
  for (size_t i = 0; i < d.slices.size(); ++i) {
    iov[i].iov_base = const_cast<uint8_t*>(d.slices[i].data->data()) + d.slices[i].offset;
    iov[i].iov_len = d.slices[i].length;
  }
  fuse_reply_iov(req, iov.data(), static_cast<int>(iov.size()));
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, struct fuse_file_info* fi) {
  FuseContext& c = ctx(req);
  ReadData d;
  if (c.vfs->read_fast(fi->fh, static_cast<uint64_t>(off), size, d)) {
    reply_data(req, std::move(d));
    return;
  }
  auto cancel = make_cancel();
  spawn_reply<ReadData>(req, cancel, c.vfs->read(fi->fh, static_cast<uint64_t>(off), size, cancel), "read",
                        reply_data);
}

void op_write(fuse_req_t req, fuse_ino_t, const char* buf, size_t size, off_t off, struct fuse_file_info* fi) {
  auto r = ctx(req).vfs->write(fi->fh, static_cast<uint64_t>(off),
                               std::span(reinterpret_cast<const uint8_t*>(buf), size));
  if (!r.ok()) {
    reply_error(req, r.error(), "write");
    return;
  }
  fuse_reply_write(req, *r);
}

namespace {
Task<Result<bool>> status_task(Task<Status> t) {
  Status st = co_await std::move(t);
  if (!st.ok()) co_return st.error();
  co_return true;
}
void reply_done(fuse_req_t req, Result<bool> r, const char* op) {
  if (!r.ok()) {
    reply_error(req, r.error(), op);
    return;
  }
  fuse_reply_err(req, 0);
}
}  // namespace

// close(2): the upload and commit of a written file happen here, so close reports failures.
void op_flush(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  auto cancel = make_cancel();
  spawn_reply<bool>(req, cancel, status_task(ctx(req).vfs->flush(fi->fh, cancel)), "flush",
                    [](fuse_req_t r, Result<bool> res) { reply_done(r, std::move(res), "flush"); });
}

void op_fsync(fuse_req_t req, fuse_ino_t, int, struct fuse_file_info* fi) {
  auto cancel = make_cancel();
  spawn_reply<bool>(req, cancel, status_task(ctx(req).vfs->fsync(fi->fh, cancel)), "fsync",
                    [](fuse_req_t r, Result<bool> res) { reply_done(r, std::move(res), "fsync"); });
}

void op_release(fuse_req_t req, fuse_ino_t, struct fuse_file_info* fi) {
  ctx(req).vfs->release(fi->fh);
  fuse_reply_err(req, 0);
}

}  // namespace hf::fs::fuse
