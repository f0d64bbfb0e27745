// hf-bench-synth: writes the files of a hubsim synthetic spec (test/hubsim/synthetic.h) as plain
// files, byte-identical to what `hf-mount-hubsim --synthetic TYPE:NS/NAME=SPEC` serves, so that
// nginx can serve the same bytes to peer filesystems. Also writes "twin" files for the dedup
// fixture: a copy of a generated file with a few bytes changed.
//
//   hf-bench-synth write SPEC OUTDIR            every file of SPEC under OUTDIR
//   hf-bench-synth twin SRC DST OFFSET LEN      DST = SRC with LEN bytes at OFFSET inverted
//   hf-bench-synth header-len SIZE              safetensors header length (8 + JSON) of a file
//
// Existing files of the right size are kept (fixtures are regenerated only when missing).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "base/text.h"
#include "test/hubsim/synthetic.h"

namespace {

int die(const std::string& msg) {
  std::fprintf(stderr, "hf-bench-synth: %s\n", msg.c_str());
  return 1;
}

bool write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

int write_spec(const std::string& spec, const std::string& outdir) {
  auto files = hf::hubsim::parse_synthetic_spec(spec);
  if (!files.ok()) return die(files.error().message);
  std::vector<uint8_t> buf(8u << 20);
  uint64_t written = 0, kept = 0;
  for (const auto& f : *files) {
    std::filesystem::path p = std::filesystem::path(outdir) / f.path;
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0 && static_cast<uint64_t>(st.st_size) == f.size) {
      ++kept;
      continue;
    }
    std::error_code ec;
    std::filesystem::create_directories(p.parent_path(), ec);
    std::string prefix;
    if (f.safetensors) {
      auto h = hf::hubsim::safetensors_header(f.size);
      if (!h.ok()) return die(f.path + ": " + h.error().message);
      prefix = std::move(*h);
    }
    hf::hubsim::SyntheticSource src(f.seed, f.size, std::move(prefix));
    std::string tmp = p.string() + ".part";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return die(tmp + ": " + std::strerror(errno));
    for (uint64_t off = 0; off < f.size;) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(buf.size(), f.size - off));
      src.fill(off, buf.data(), n);
      if (!write_all(fd, buf.data(), n)) {
        ::close(fd);
        return die(tmp + ": write: " + std::strerror(errno));
      }
      off += n;
    }
    if (::close(fd) != 0 || ::rename(tmp.c_str(), p.c_str()) != 0) return die(p.string() + ": " + std::strerror(errno));
    ++written;
  }
  std::printf("{\"files\":%zu,\"written\":%llu,\"kept\":%llu}\n", files->size(),
              static_cast<unsigned long long>(written), static_cast<unsigned long long>(kept));
  return 0;
}

int twin(const std::string& src, const std::string& dst, uint64_t offset, uint64_t len) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(dst).parent_path(), ec);
  std::string tmp = dst + ".part";
  std::filesystem::copy_file(src, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) return die("copy " + src + ": " + ec.message());
  int fd = ::open(tmp.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return die(tmp + ": " + std::strerror(errno));
  std::vector<uint8_t> b(len);
  ssize_t r = ::pread(fd, b.data(), len, static_cast<off_t>(offset));
  if (r != static_cast<ssize_t>(len)) {
    ::close(fd);
    return die("twin offset past the end of " + src);
  }
  for (auto& c : b) c = static_cast<uint8_t>(~c);
  bool ok = ::pwrite(fd, b.data(), len, static_cast<off_t>(offset)) == static_cast<ssize_t>(len);
  if (::close(fd) != 0 || !ok || ::rename(tmp.c_str(), dst.c_str()) != 0) return die(dst + ": write failed");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "write") return write_spec(a[1], a[2]);
  if (a.size() == 5 && a[0] == "twin") {
    auto off = hf::parse_u64(a[3]);
    auto len = hf::parse_u64(a[4]);
    if (!off || !len || *len > (64u << 20)) return die("bad OFFSET/LEN");
    return twin(a[1], a[2], *off, *len);
  }
  if (a.size() == 2 && a[0] == "header-len") {
    auto size = hf::parse_size(a[1]);
    if (!size) return die("bad SIZE");
    auto h = hf::hubsim::safetensors_header(*size);
    if (!h.ok()) return die(h.error().message);
    std::printf("%zu\n", h->size());
    return 0;
  }
  return die("usage: write SPEC OUTDIR | twin SRC DST OFFSET LEN | header-len SIZE");
}
