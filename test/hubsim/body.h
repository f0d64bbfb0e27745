// Response bodies of the hub simulator: immutable byte sources that the network layer writes
// without copying (stored xorbs, file contents) or generates on demand (synthetic data).
//
// Thread-safety: every ByteSource is immutable after construction; read() is const and may be
// called concurrently from any thread. Sources are shared with shared_ptr, so a response keeps
// its bytes alive while it is being written even if the store drops them meanwhile.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace hf::hubsim {

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual uint64_t size() const = 0;
  // Returns between 1 and `max` bytes starting at `offset` (offset < size(), max > 0). A source
  // that holds its bytes contiguously returns a view into them (valid while the source lives);
  // others generate into `scratch` (resized as needed) and return a view of it.
  virtual std::span<const uint8_t> read(uint64_t offset, size_t max,
                                        std::vector<uint8_t>& scratch) const = 0;
  // The whole content when it is stored contiguously, else an empty span.
  virtual std::span<const uint8_t> contiguous() const { return {}; }
  // A new read-only descriptor of a file holding the bytes at the same offsets, or -1. The
  // network layer sends large plain-HTTP ranges from it with sendfile(2), without copying them
  // through user space (nginx's path; on loopback it halves the copies). The caller closes it.
  virtual int open_file() const { return -1; }
};

using SourcePtr = std::shared_ptr<const ByteSource>;

// Bytes held in memory (a std::string, so callers can move a request body in without copying).
class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string bytes) : bytes_(std::move(bytes)) {}
  uint64_t size() const override { return bytes_.size(); }
  std::span<const uint8_t> read(uint64_t offset, size_t max, std::vector<uint8_t>&) const override {
    size_t n = std::min<uint64_t>(max, bytes_.size() - offset);
    return {reinterpret_cast<const uint8_t*>(bytes_.data()) + offset, n};
  }
  std::span<const uint8_t> contiguous() const override {
    return {reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()};
  }
  const std::string& str() const { return bytes_; }

 private:
  std::string bytes_;
};

// Bytes held in an anonymous memory file (memfd), mapped read-only for contiguous(), whose
// descriptor serves sendfile(2). Same memory as a string (the pages are the memfd's), fewer copies
// on the wire. The pages cannot change while the kernel still references them in a socket
// buffer: the file is never written after construction.
class MemfdSource final : public ByteSource {
 public:
  // Returns null when the memory file cannot be created (the caller falls back to a string).
  // Memory files hold a descriptor each: at most a quarter of the descriptor limit is used so
  // that connections never run out of them.
  static std::shared_ptr<const MemfdSource> create(const std::string& bytes) {
    if (bytes.empty() || live().fetch_add(1) >= max_live()) {
      if (!bytes.empty()) live().fetch_sub(1);
      return nullptr;
    }
    int fd = ::memfd_create("hubsim-bytes", MFD_CLOEXEC);
    if (fd < 0) {
      live().fetch_sub(1);
      return nullptr;
    }
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ::close(fd);
        live().fetch_sub(1);
        return nullptr;
      }
      done += static_cast<size_t>(n);
    }
    void* map = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
      ::close(fd);
      live().fetch_sub(1);
      return nullptr;
    }
    return std::shared_ptr<const MemfdSource>(new MemfdSource(fd, static_cast<const uint8_t*>(map), bytes.size()));
  }
  ~MemfdSource() override {
    ::munmap(const_cast<uint8_t*>(data_), size_);
    ::close(fd_);
    live().fetch_sub(1);
  }
  MemfdSource(const MemfdSource&) = delete;
  MemfdSource& operator=(const MemfdSource&) = delete;

  uint64_t size() const override { return size_; }
  std::span<const uint8_t> read(uint64_t offset, size_t max, std::vector<uint8_t>&) const override {
    return {data_ + offset, static_cast<size_t>(std::min<uint64_t>(max, size_ - offset))};
  }
  std::span<const uint8_t> contiguous() const override { return {data_, size_}; }
  int open_file() const override { return ::fcntl(fd_, F_DUPFD_CLOEXEC, 0); }

 private:
  MemfdSource(int fd, const uint8_t* data, size_t size) : fd_(fd), data_(data), size_(size) {}
  static std::atomic<long>& live() {
    static std::atomic<long> n{0};
    return n;
  }
  static long max_live() {
    static const long m = [] {
      rlimit rl{};
      return ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? static_cast<long>(rl.rlim_cur / 4)
                                                                                 : 1024L;
    }();
    return m;
  }
  int fd_;
  const uint8_t* data_;
  size_t size_;
};

// Large bodies (xorbs, file contents) go to a memory file so that they can be sent with
// sendfile(2); small ones (multipart boundaries, JSON) stay in the string.
inline SourcePtr make_memory_source(std::string bytes) {
  constexpr size_t kMemfdMin = 256u << 10;
  if (bytes.size() >= kMemfdMin)
    if (auto m = MemfdSource::create(bytes)) return m;
  return std::make_shared<const MemorySource>(std::move(bytes));
}

// Bytes of a file on disk (persisted uploads), read with pread on demand so that a long-running
// emulator does not hold every uploaded xorb in memory. The file is opened per read: no
// descriptor is held per stored object. A failed read returns an empty span, which the network
// layer treats as a broken response (the connection is dropped), never as bytes.
class FileSource final : public ByteSource {
 public:
  FileSource(std::string path, uint64_t size) : path_(std::move(path)), size_(size) {}
  uint64_t size() const override { return size_; }
  std::span<const uint8_t> read(uint64_t offset, size_t max, std::vector<uint8_t>& scratch) const override {
    size_t want = static_cast<size_t>(std::min<uint64_t>(max, size_ - offset));
    scratch.resize(want);
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::pread(fd, scratch.data() + got, want - got, static_cast<off_t>(offset + got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      got += static_cast<size_t>(n);
    }
    ::close(fd);
    return {scratch.data(), got};
  }
  int open_file() const override { return ::open(path_.c_str(), O_RDONLY | O_CLOEXEC); }

 private:
  std::string path_;
  uint64_t size_;
};

// A window [offset, offset+length) of a source.
struct BodyPiece {
  SourcePtr src;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Copies [offset, offset+len) of `src` into `out` (appends). For tests and small bodies only.
inline void append_source(const ByteSource& src, uint64_t offset, uint64_t len, std::string& out) {
  std::vector<uint8_t> scratch;
  while (len > 0) {
    auto v = src.read(offset, static_cast<size_t>(std::min<uint64_t>(len, 1 << 20)), scratch);
    out.append(reinterpret_cast<const char*>(v.data()), v.size());
    offset += v.size();
    len -= v.size();
  }
}

}  // namespace hf::hubsim
