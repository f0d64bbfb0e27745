#include "fs/staged_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "base/sha256.h"

namespace hf::fs {

static Content local_content(const std::string& path) {
  Content c;
  c.source = Content::Source::local;
  c.id = sha256("staged:" + path);
  return c;
}

static Error errno_error(const char* what, const std::string& path) {
  int e = errno;
  return Error(e == ENOSPC || e == EDQUOT ? Errc::no_space : Errc::io,
               fmt::format("{} {}: {}", what, path, std::strerror(e)));
}

Result<std::shared_ptr<StagedFile>> StagedFile::create(const std::string& dir, Content base, uint64_t base_size,
                                                       bool truncate) {
  std::string tmpl = dir + "/staged-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  int fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) return errno_error("cannot create staging file in", dir);
  std::shared_ptr<StagedFile> f(new StagedFile());
  f->fd_ = fd;
  f->path_ = buf.data();
  f->content_ = local_content(f->path_);
  if (truncate) {
    f->base_ = Content{};
    f->base_size_ = 0;
  } else {
    f->base_ = std::move(base);
    f->base_size_ = base_size;
  }
  f->size_ = f->base_size_;
  f->base_limit_ = f->base_size_;
  return f;
}

Result<std::shared_ptr<StagedFile>> StagedFile::reopen(const std::string& path, Content base, uint64_t base_size,
                                                       uint64_t base_limit, uint64_t size, RangeSet present) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return errno_error("cannot reopen staging file", path);
  std::shared_ptr<StagedFile> f(new StagedFile());
  f->fd_ = fd;
  f->path_ = path;
  f->content_ = local_content(path);
  f->base_ = std::move(base);
  f->base_size_ = base_size;
  f->base_limit_ = std::min(base_limit, base_size);
  f->size_ = size;
  f->present_ = std::move(present);
  f->present_.truncate(size);
  if (f->base_limit_ < size) f->present_.add(f->base_limit_, size);  // restore the invariant
  return f;
}

StagedFile::~StagedFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!keep_ && !path_.empty()) ::unlink(path_.c_str());
}

Status StagedFile::write(uint64_t off, std::span<const uint8_t> data) {
  if (data.empty()) return {};
  if (off + data.size() < off || off + data.size() > (1ull << 62)) return Error(Errc::too_large, "write beyond the maximum file size");
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot write staging file", path_);
    }
    done += static_cast<size_t>(n);
  }
  std::lock_guard lk(mu_);
  // A write past the end leaves a gap that reads as zeros: the staging file has a hole there
  // (its length never exceeds the logical size), so the gap is "present" too.
  if (off > size_) present_.add(size_, off);
  present_.add(off, off + data.size());
  size_ = std::max(size_, off + data.size());
  ++generation_;
  return {};
}

Status StagedFile::truncate(uint64_t n) {
  std::lock_guard lk(mu_);
  if (n < size_) {
    struct stat st {};
    if (::fstat(fd_, &st) == 0 && static_cast<uint64_t>(st.st_size) > n && ::ftruncate(fd_, static_cast<off_t>(n)) != 0) {
      return errno_error("cannot truncate staging file", path_);
    }
    present_.truncate(n);
    base_limit_ = std::min(base_limit_, n);
  } else if (n > size_) {
    present_.add(size_, n);  // zeros: holes in the staging file
  }
  size_ = n;
  ++generation_;
  return {};
}

Status StagedFile::pread(uint64_t off, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(off + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("cannot read staging file", path_);
    }
    if (n == 0) {  // past the staging file's end: a hole
      std::memset(out.data() + done, 0, out.size() - done);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status StagedFile::sync() const {
  if (::fsync(fd_) != 0) return errno_error("cannot fsync staging file", path_);
  return {};
}

uint64_t StagedFile::size() const {
  std::lock_guard lk(mu_);
  return size_;
}

uint64_t StagedFile::generation() const {
  std::lock_guard lk(mu_);
  return generation_;
}

uint64_t StagedFile::base_limit() const {
  std::lock_guard lk(mu_);
  return base_limit_;
}

RangeSet StagedFile::present() const {
  std::lock_guard lk(mu_);
  return present_;
}

std::vector<RangeSet::Piece> StagedFile::plan(uint64_t off, uint64_t len) const {
  std::lock_guard lk(mu_);
  if (off >= size_) return {};
  uint64_t end = std::min(size_, off + len);
  return present_.split(off, end);
}

bool StagedFile::touches_staged(uint64_t off, uint64_t len) const {
  std::lock_guard lk(mu_);
  return present_.intersects(off, off + len);
}

}  // namespace hf::fs
