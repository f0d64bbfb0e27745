// lookup, forget, getattr, setattr, readlink.
#include <cstring>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

void fill_stat(const Attr& a, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_ino = a.ino;
  switch (a.kind) {
    case NodeKind::dir: st->st_mode = S_IFDIR; break;
    case NodeKind::symlink: st->st_mode = S_IFLNK; break;
    case NodeKind::file: st->st_mode = S_IFREG; break;
  }
  st->st_mode |= a.perm & 07777;
  st->st_nlink = a.nlink;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
  st->st_blksize = 1 << 20;  // large I/O hint: reads cost a round trip, big ones amortise it
  st->st_mtim.tv_sec = a.mtime_ns / 1000000000;
  st->st_mtim.tv_nsec = a.mtime_ns % 1000000000;
  st->st_atim = st->st_mtim;
  st->st_ctim.tv_sec = a.ctime_ns / 1000000000;
  st->st_ctim.tv_nsec = a.ctime_ns % 1000000000;
}

void fill_entry(const EntryOut& e, struct fuse_entry_param* p) {
  std::memset(p, 0, sizeof(*p));
  p->ino = e.attr.ino;
  p->generation = 1;
  p->entry_timeout = e.entry_timeout;
  p->attr_timeout = e.attr_timeout;
  if (e.attr.ino) fill_stat(e.attr, &p->attr);
}

static void reply_entry(fuse_req_t req, Result<EntryOut> r) {
  if (!r.ok()) {
    reply_error(req, r.error(), "lookup");
    return;
  }
  struct fuse_entry_param p;
  fill_entry(*r, &p);
  // The kernel only counts the reference if it received the reply.
  if (fuse_reply_entry(req, &p) != 0 && p.ino) ctx(req).vfs->forget(p.ino, 1);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseContext& c = ctx(req);
  if (auto r = c.vfs->lookup_fast(parent, name)) {
    reply_entry(req, std::move(*r));
    return;
  }
  auto cancel = make_cancel();
  spawn_reply<EntryOut>(req, cancel, c.vfs->lookup(parent, name, cancel), "lookup", reply_entry);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  ctx(req).vfs->forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  Vfs* v = ctx(req).vfs;
  for (size_t i = 0; i < count; ++i) v->forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info*) {
  FuseContext& c = ctx(req);
  auto r = c.vfs->getattr(ino);
  if (!r.ok()) {
    reply_error(req, r.error(), "getattr");
    return;
  }
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, c.vfs->config().attr_timeout);
}

static void reply_attr(fuse_req_t req, Result<Attr> r) {
  if (!r.ok()) {
    reply_error(req, r.error(), "setattr");
    return;
  }
  struct stat st;
  fill_stat(*r, &st);
  fuse_reply_attr(req, &st, ctx(req).vfs->config().attr_timeout);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, struct fuse_file_info*) {
  SetAttrIn in;
  if (to_set & FUSE_SET_ATTR_SIZE) in.size = static_cast<uint64_t>(attr->st_size);
  if (to_set & FUSE_SET_ATTR_MODE) in.mode = attr->st_mode & 07777;
  if (to_set & FUSE_SET_ATTR_UID) in.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) in.gid = attr->st_gid;
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    in.mtime_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
  } else if (to_set & FUSE_SET_ATTR_MTIME) {
    in.mtime_ns = static_cast<int64_t>(attr->st_mtim.tv_sec) * 1000000000 + attr->st_mtim.tv_nsec;
  }
  // atime/ctime changes are accepted and ignored (no atime is stored anywhere).
  auto cancel = make_cancel();
  spawn_reply<Attr>(req, cancel, ctx(req).vfs->setattr(ino, in, cancel), "setattr", reply_attr);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  auto r = ctx(req).vfs->readlink(ino);
  if (!r.ok()) {
    reply_error(req, r.error(), "readlink");
    return;
  }
  fuse_reply_readlink(req, r->c_str());
}

}  // namespace hf::fs::fuse
