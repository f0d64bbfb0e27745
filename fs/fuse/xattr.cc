// getxattr, listxattr, setxattr, removexattr.
#include <string>

#include "fs/fuse/context.h"
#include "fs/fuse/ops.h"

namespace hf::fs::fuse {

// The size protocol shared by getxattr and listxattr: size 0 asks for the length.
static void reply_sized(fuse_req_t req, const std::string& value, size_t size) {
  if (size == 0) {
    fuse_reply_xattr(req, value.size());
  } else if (size < value.size()) {
    reply_error(req, Error(Errc::out_of_range, "xattr buffer too small"), "getxattr");
  } else {
    fuse_reply_buf(req, value.data(), value.size());
  }
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  auto r = ctx(req).vfs->getxattr(ino, name);
  if (!r.ok()) {
    reply_error(req, r.error(), "getxattr");
    return;
  }
  reply_sized(req, *r, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  auto r = ctx(req).vfs->listxattr(ino);
  if (!r.ok()) {
    reply_error(req, r.error(), "listxattr");
    return;
  }
  std::string list;
  for (auto& n : *r) {
    list += n;
    list.push_back('\0');
  }
  reply_sized(req, list, size);
}

void op_setxattr(fuse_req_t req, fuse_ino_t, const char*, const char*, size_t, int) {
  reply_error(req, Error(Errc::read_only, "extended attributes are read-only"), "setxattr");
}

void op_removexattr(fuse_req_t req, fuse_ino_t, const char*) {
  reply_error(req, Error(Errc::read_only, "extended attributes are read-only"), "removexattr");
}

}  // namespace hf::fs::fuse
