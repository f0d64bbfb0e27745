// hf-mount-xet: offline Xet codec tool (chunking, hashes, xorbs, shards). No network.
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "base/json_writer.h"
#include "base/result.h"
#include "base/text.h"
#include "net/xet/chunker.h"
#include "net/xet/hash.h"
#include "net/xet/shard.h"
#include "net/xet/xorb.h"

namespace {

using namespace hf;
using namespace hf::xet;

constexpr int kExitOk = 0;
constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

constexpr const char* kHelp = R"(Usage: hf-mount-xet COMMAND [ARGS]

Offline tool for the Xet storage format used by Hugging Face (no network access).
FILE may be "-" for standard input.

Commands:
  chunk FILE
      Content-defined chunking. One line per chunk:
        OFFSET LENGTH HASH
      decimal byte offset, decimal length, chunk hash in xet-hex (64 lowercase hex
      characters), separated by single spaces.

  file-hash FILE
      Prints the file's Xet hash (64 lowercase hex characters) alone on one line. An empty
      file's hash is 64 zeros.

  xorb-pack FILE... -o OUT [--compression none|lz4|bg4|auto] [--footer]
      Chunks the files and packs all their chunks, in order, into one serialized xorb
      written to OUT, then prints the xorb hash on one line. Fails if the chunks exceed one
      xorb (64 MiB raw or serialized, 8192 chunks). --compression (default auto) selects
      the chunk scheme; "auto" re-evaluates the BG4 predictor every 32 chunks of a file;
      a compressed chunk that is not smaller than its raw bytes is stored uncompressed.
      --footer appends the stored-object footer (XorbObjectInfo V1); uploads carry none.

  xorb-unpack XORB [-o OUT] [--expect HASH]
      Decodes every chunk record, checks a trailing footer if present against the records
      and the data, computes the xorb hash and writes the concatenated raw data to OUT
      (default: standard output). Prints the xorb hash on one line to standard output, or
      to standard error when the data goes to standard output. The hash must equal
      --expect HASH, or the file name's stem when that is 64 hex characters.

  shard-dump SHARD [--json]
      Prints the file and xorb blocks and the footer of an MDB shard (upload body, global
      dedup response or full shard). Hashes are printed in xet-hex; SHA-256 in standard hex.
      --json prints one JSON object instead.

Options:
  -h, --help     show this help
  --version      show the version

Exit status: 0 success, 1 error (one line on standard error), 2 usage error.
)";

class UsageError {};

// Reads a file (or stdin for "-") in pieces, calling sink(span) for each.
template <class Sink>
Status read_stream(const std::string& path, Sink&& sink) {
  int fd = path == "-" ? 0 : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(Errc::io, fmt::format("{}: {}", path, std::strerror(errno)));
  std::vector<uint8_t> buf(4u << 20);
  Status st;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      st = make_error(Errc::io, fmt::format("{}: {}", path, std::strerror(errno)));
      break;
    }
    if (n == 0) break;
    st = sink(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    if (!st.ok()) break;
  }
  if (fd != 0) ::close(fd);
  return st;
}

Result<std::vector<uint8_t>> read_all(const std::string& path, size_t limit) {
  std::vector<uint8_t> out;
  HF_TRY(read_stream(path, [&](std::span<const uint8_t> s) -> Status {
    if (out.size() + s.size() > limit) {
      return make_error(Errc::too_large, fmt::format("{}: larger than {} bytes", path, limit));
    }
    out.insert(out.end(), s.begin(), s.end());
    return {};
  }));
  return out;
}

Status write_all(int fd, std::span<const uint8_t> data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(Errc::io, fmt::format("{}: {}", what, std::strerror(errno)));
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

Status write_file(const std::string& path, std::span<const uint8_t> a, std::span<const uint8_t> b = {}) {
  if (path == "-") {
    HF_TRY(write_all(1, a, "stdout"));
    return write_all(1, b, "stdout");
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return make_error(Errc::io, fmt::format("{}: {}", path, std::strerror(errno)));
  Status s = write_all(fd, a, path);
  if (s.ok()) s = write_all(fd, b, path);
  if (::close(fd) != 0 && s.ok()) s = make_error(Errc::io, fmt::format("{}: {}", path, std::strerror(errno)));
  return s;
}

Status print(std::string_view s) {
  return write_all(1, {reinterpret_cast<const uint8_t*>(s.data()), s.size()}, "stdout");
}

// ------------------------------------------------------------------------------------------

Status cmd_chunk(const std::string& path) {
  ChunkStream cs;
  std::string out;
  char hex[64];
  auto emit = [&](const std::vector<StreamChunk>& chunks) -> Status {
    for (const auto& c : chunks) {
      c.hash.hex_into(hex);
      fmt::format_to(std::back_inserter(out), "{} {} {}\n", c.offset, c.data.size(), std::string_view(hex, 64));
    }
    if (out.size() > (1u << 16)) {
      HF_TRY(print(out));
      out.clear();
    }
    return {};
  };
  HF_TRY(read_stream(path, [&](std::span<const uint8_t> s) { return emit(cs.feed(s)); }));
  HF_TRY(emit(cs.finish()));
  return print(out);
}

Status cmd_file_hash(const std::string& path) {
  ChunkStream cs;
  MerkleBuilder m;
  auto add = [&](const std::vector<StreamChunk>& chunks) -> Status {
    for (const auto& c : chunks) m.add(c.hash, c.data.size());
    return {};
  };
  HF_TRY(read_stream(path, [&](std::span<const uint8_t> s) { return add(cs.feed(s)); }));
  HF_TRY(add(cs.finish()));
  return print(m.finish_file_hash().hex() + "\n");
}

enum class Policy { none, lz4, bg4, automatic };

Status cmd_xorb_pack(const std::vector<std::string>& files, const std::string& out, Policy policy, bool footer) {
  XorbBuilder b;
  for (const std::string& path : files) {
    ChunkStream cs;
    uint64_t index = 0;  // chunk index within this file
    Compression current = Compression::lz4;
    auto add = [&](const std::vector<StreamChunk>& chunks) -> Status {
      for (const auto& c : chunks) {
        Compression scheme = Compression::none;
        switch (policy) {
          case Policy::none: scheme = Compression::none; break;
          case Policy::lz4: scheme = Compression::lz4; break;
          case Policy::bg4: scheme = Compression::bg4_lz4; break;
          case Policy::automatic:
            // XC's retest interval: the predictor runs on the first chunk of each 32.
            if (index % 32 == 0) current = choose_compression(c.data);
            scheme = current;
            break;
        }
        ++index;
        if (!b.fits(c.data.size())) {
          return make_error(Errc::too_large, fmt::format("input exceeds one xorb (limits: {} MiB raw and serialized, "
                                                         "{} chunks); {} chunks packed so far",
                                                         kMaxXorbRawBytes >> 20, kMaxXorbChunks, b.chunks().size()));
        }
        HF_TRY(b.add(c.data, c.hash, scheme));
      }
      return {};
    };
    HF_TRY(read_stream(path, [&](std::span<const uint8_t> s) { return add(cs.feed(s)); }));
    HF_TRY(add(cs.finish()));
  }
  std::vector<uint8_t> tail;
  if (footer) {
    HF_ASSIGN_OR_RETURN(tail, serialize_footer(b.footer()));
  }
  HF_TRY(write_file(out, b.serialized(), tail));
  return print(b.hash().hex() + "\n");
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

Status cmd_xorb_unpack(const std::string& path, const std::string& out, std::string expect) {
  if (expect.empty()) {
    std::string_view stem = path;
    if (auto slash = stem.rfind('/'); slash != std::string_view::npos) stem.remove_prefix(slash + 1);
    if (auto dot = stem.find('.'); dot != std::string_view::npos) stem = stem.substr(0, dot);
    if (is_hex64(stem)) expect = std::string(stem);
  }
  // Upper bound of a stored xorb: records plus the largest V1 footer.
  const size_t limit = kMaxXorbRecordBytes + 96 + 40 * kMaxXorbChunks;
  HF_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_all(path, limit));
  std::vector<uint8_t> raw;
  HF_ASSIGN_OR_RETURN(ParsedXorb x, parse_xorb(bytes, {.decode = true, .raw_out = &raw}));
  if (!expect.empty()) {
    HF_ASSIGN_OR_RETURN(Hash want, Hash::from_hex(expect));
    if (want != x.hash) {
      return make_error(Errc::corrupt, fmt::format("xorb hash {} does not match the expected {}", x.hash.hex(), want.hex()));
    }
  }
  HF_TRY(write_file(out, raw));
  std::string line = x.hash.hex() + "\n";
  if (out == "-") return write_all(2, {reinterpret_cast<const uint8_t*>(line.data()), line.size()}, "stderr");
  return print(line);
}

std::string sha_hex(const std::array<uint8_t, 32>& d) { return hf::hex_encode(d.data(), d.size()); }

Status cmd_shard_dump(const std::string& path, bool json) {
  HF_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, read_all(path, kMaxShardBytes));
  HF_ASSIGN_OR_RETURN(Shard s, parse_shard(bytes));
  if (json) {
    JsonWriter w;
    w.begin_object().kv("size", uint64_t{bytes.size()}).key("files").begin_array();
    for (const FileInfo& f : s.files) {
      w.begin_object().kv("file_hash", f.file_hash.hex());
      if (f.sha256) w.kv("sha256", sha_hex(*f.sha256));
      w.key("terms").begin_array();
      for (size_t i = 0; i < f.terms.size(); ++i) {
        const FileTerm& t = f.terms[i];
        w.begin_object()
            .kv("xorb_hash", t.xorb_hash.hex())
            .kv("chunk_start", uint64_t{t.chunk_start})
            .kv("chunk_end", uint64_t{t.chunk_end})
            .kv("unpacked_bytes", uint64_t{t.unpacked_bytes});
        if (!f.verification.empty()) w.kv("range_hash", f.verification[i].hex());
        w.end_object();
      }
      w.end_array().end_object();
    }
    w.end_array().key("xorbs").begin_array();
    for (const XorbInfo& x : s.xorbs) {
      w.begin_object()
          .kv("xorb_hash", x.xorb_hash.hex())
          .kv("flags", uint64_t{x.flags})
          .kv("num_bytes_in_xorb", uint64_t{x.num_bytes_in_xorb})
          .kv("num_bytes_on_disk", uint64_t{x.num_bytes_on_disk})
          .key("chunks")
          .begin_array();
      for (const XorbChunkEntry& c : x.chunks) {
        w.begin_object()
            .kv("chunk_hash", c.chunk_hash.hex())
            .kv("byte_range_start", uint64_t{c.byte_range_start})
            .kv("unpacked_bytes", uint64_t{c.unpacked_bytes})
            .kv("flags", uint64_t{c.flags})
            .end_object();
      }
      w.end_array().end_object();
    }
    w.end_array();
    if (s.footer) {
      const ShardFooter& f = *s.footer;
      w.key("footer")
          .begin_object()
          .kv("version", f.version)
          .kv("file_info_offset", f.file_info_offset)
          .kv("xorb_info_offset", f.xorb_info_offset)
          .kv("file_lookup_offset", f.file_lookup_offset)
          .kv("file_lookup_num_entry", f.file_lookup_num_entry)
          .kv("xorb_lookup_offset", f.xorb_lookup_offset)
          .kv("xorb_lookup_num_entry", f.xorb_lookup_num_entry)
          .kv("chunk_lookup_offset", f.chunk_lookup_offset)
          .kv("chunk_lookup_num_entry", f.chunk_lookup_num_entry)
          .kv("chunk_hash_hmac_key", f.chunk_hash_hmac_key.hex())
          .kv("shard_creation_timestamp", f.shard_creation_timestamp)
          .kv("shard_key_expiry", f.shard_key_expiry)
          .kv("stored_bytes_on_disk", f.stored_bytes_on_disk)
          .kv("materialized_bytes", f.materialized_bytes)
          .kv("stored_bytes", f.stored_bytes)
          .kv("footer_offset", f.footer_offset)
          .end_object();
    } else {
      w.key("footer").null();
    }
    w.end_object();
    return print(w.take() + "\n");
  }

  std::string o;
  auto out = std::back_inserter(o);
  fmt::format_to(out, "shard: {} bytes, {} files, {} xorbs, footer: {}\n", bytes.size(), s.files.size(), s.xorbs.size(),
                 s.footer ? "yes" : "no");
  for (const FileInfo& f : s.files) {
    uint64_t total = 0;
    for (const FileTerm& t : f.terms) total += t.unpacked_bytes;
    fmt::format_to(out, "file {}  size {}  terms {}  verification {}\n", f.file_hash.hex(), total, f.terms.size(),
                   f.verification.empty() ? "no" : "yes");
    if (f.sha256) fmt::format_to(out, "  sha256 {}\n", sha_hex(*f.sha256));
    for (size_t i = 0; i < f.terms.size(); ++i) {
      const FileTerm& t = f.terms[i];
      fmt::format_to(out, "  term {}: xorb {} chunks [{}, {}) {} bytes", i, t.xorb_hash.hex(), t.chunk_start,
                     t.chunk_end, t.unpacked_bytes);
      if (!f.verification.empty()) fmt::format_to(out, "  range_hash {}", f.verification[i].hex());
      o += '\n';
    }
  }
  for (const XorbInfo& x : s.xorbs) {
    fmt::format_to(out, "xorb {}  chunks {}  raw {}  on_disk {}  flags {:#x}\n", x.xorb_hash.hex(), x.chunks.size(),
                   x.num_bytes_in_xorb, x.num_bytes_on_disk, x.flags);
    for (size_t i = 0; i < x.chunks.size(); ++i) {
      const XorbChunkEntry& c = x.chunks[i];
      fmt::format_to(out, "  chunk {}: {} offset {} length {} flags {:#x}\n", i, c.chunk_hash.hex(),
                     c.byte_range_start, c.unpacked_bytes, c.flags);
    }
  }
  if (s.footer) {
    const ShardFooter& f = *s.footer;
    fmt::format_to(out,
                   "footer: version {}  file_info_offset {}  xorb_info_offset {}\n"
                   "  lookups: file {} @ {}, xorb {} @ {}, chunk {} @ {}\n"
                   "  chunk_hash_hmac_key {}\n"
                   "  created {}  key_expiry {}\n"
                   "  stored_bytes_on_disk {}  materialized_bytes {}  stored_bytes {}  footer_offset {}\n",
                   f.version, f.file_info_offset, f.xorb_info_offset, f.file_lookup_num_entry, f.file_lookup_offset,
                   f.xorb_lookup_num_entry, f.xorb_lookup_offset, f.chunk_lookup_num_entry, f.chunk_lookup_offset,
                   f.chunk_hash_hmac_key.hex(), f.shard_creation_timestamp, f.shard_key_expiry, f.stored_bytes_on_disk,
                   f.materialized_bytes, f.stored_bytes, f.footer_offset);
  }
  return print(o);
}

// ------------------------------------------------------------------------------------------

struct Args {
  std::vector<std::string> positional;
  std::string out;
  std::string compression = "auto";
  std::string expect;
  bool footer = false;
  bool json = false;
};

// Parses the options a command accepts; anything else is a usage error.
Args parse_args(const std::vector<std::string>& argv, std::initializer_list<std::string_view> allowed) {
  auto ok = [&](std::string_view o) {
    for (auto a : allowed) {
      if (a == o) return true;
    }
    return false;
  };
  Args a;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& s = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argv.size()) throw UsageError{};
      return argv[++i];
    };
    if (s == "-" || s.empty() || s[0] != '-') {
      a.positional.push_back(s);
    } else if (s == "--") {
      a.positional.insert(a.positional.end(), argv.begin() + static_cast<ptrdiff_t>(i) + 1, argv.end());
      break;
    } else if ((s == "-o" || s == "--output") && ok("-o")) {
      a.out = value();
    } else if (s.rfind("--compression", 0) == 0 && ok("--compression")) {
      a.compression = s.size() > 13 && s[13] == '=' ? s.substr(14) : value();
    } else if (s.rfind("--expect", 0) == 0 && ok("--expect")) {
      a.expect = s.size() > 8 && s[8] == '=' ? s.substr(9) : value();
    } else if (s == "--footer" && ok("--footer")) {
      a.footer = true;
    } else if (s == "--json" && ok("--json")) {
      a.json = true;
    } else {
      throw UsageError{};
    }
  }
  return a;
}

int usage(std::string_view msg) {
  std::fprintf(stderr, "hf-mount-xet: %.*s (see hf-mount-xet --help)\n", static_cast<int>(msg.size()), msg.data());
  return kExitUsage;
}

int run(int argc, char** argv) {
  if (argc < 2) return usage("missing command");
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    std::fputs(kHelp, stdout);
    return kExitOk;
  }
  if (cmd == "--version") {
    std::printf("hf-mount-xet %s\n", HF_VERSION);
    return kExitOk;
  }
  std::vector<std::string> rest(argv + 2, argv + argc);
  for (const auto& r : rest) {
    if (r == "-h" || r == "--help") {
      std::fputs(kHelp, stdout);
      return kExitOk;
    }
  }
  Status st;
  try {
    if (cmd == "chunk" || cmd == "file-hash") {
      Args a = parse_args(rest, {});
      if (a.positional.size() != 1) return usage(cmd + " takes exactly one FILE");
      st = cmd == "chunk" ? cmd_chunk(a.positional[0]) : cmd_file_hash(a.positional[0]);
    } else if (cmd == "xorb-pack") {
      Args a = parse_args(rest, {"-o", "--compression", "--footer"});
      if (a.positional.empty()) return usage("xorb-pack needs at least one FILE");
      if (a.out.empty()) return usage("xorb-pack needs -o OUT");
      Policy p;
      if (a.compression == "none") p = Policy::none;
      else if (a.compression == "lz4") p = Policy::lz4;
      else if (a.compression == "bg4" || a.compression == "bg4-lz4" || a.compression == "bg4_lz4") p = Policy::bg4;
      else if (a.compression == "auto") p = Policy::automatic;
      else return usage("--compression must be none, lz4, bg4 or auto");
      st = cmd_xorb_pack(a.positional, a.out, p, a.footer);
    } else if (cmd == "xorb-unpack") {
      Args a = parse_args(rest, {"-o", "--expect"});
      if (a.positional.size() != 1) return usage("xorb-unpack takes exactly one XORB");
      if (!a.expect.empty() && !is_hex64(a.expect)) return usage("--expect must be 64 hex characters");
      st = cmd_xorb_unpack(a.positional[0], a.out.empty() ? "-" : a.out, a.expect);
    } else if (cmd == "shard-dump") {
      Args a = parse_args(rest, {"--json"});
      if (a.positional.size() != 1) return usage("shard-dump takes exactly one SHARD");
      st = cmd_shard_dump(a.positional[0], a.json);
    } else {
      return usage("unknown command '" + cmd + "'");
    }
  } catch (const UsageError&) {
    return usage("bad option for " + cmd);
  }
  if (!st.ok()) {
    std::fprintf(stderr, "hf-mount-xet: %s: %s\n", cmd.c_str(), st.error().message.c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hf-mount-xet: %s\n", e.what());
    return kExitError;
  }
}
