// Adapter: the upload pipeline's UploadSink (net/xet/upload) backed by a CasClient.
// Header-only so that the CAS client library does not depend on the upload library; link
// xet_upload_dep where it is used. Thread-safe as the CasClient is; it must outlive the sink.
#pragma once

#include <utility>  // before Asio (asio#944)

#include <memory>
#include <optional>
#include <string>

#include "net/xet/client/cas_client.h"
#include "net/xet/upload/upload_session.h"

namespace hf::xet {

class CasUploadSink final : public UploadSink {
 public:
  explicit CasUploadSink(CasClient& cas) : cas_(cas) {}

  Task<Status> put_xorb(Hash hash, std::shared_ptr<const std::string> serialized) override {
    auto r = co_await cas_.upload_xorb(hash, std::move(serialized));
    if (!r) co_return std::move(r).error();
    co_return Status();  // was_inserted == false (already stored) is success too
  }
  Task<Status> put_shard(std::shared_ptr<const std::string> shard) override {
    co_return co_await cas_.upload_shard(std::move(shard));
  }
  Task<std::optional<Shard>> query_dedup(Hash chunk) override {
    auto r = co_await cas_.query_dedup(chunk);
    if (!r) co_return std::nullopt;  // only cancellation is an error, and none is passed here
    co_return std::move(*r);
  }

 private:
  CasClient& cas_;
};

}  // namespace hf::xet
