#include "test/hubsim/server.h"

#include <algorithm>
#include <thread>

#include "test/hubsim/core.h"
#include "test/hubsim/server_net.h"

namespace hf::hubsim {

static unsigned io_threads(unsigned requested) {
  if (requested > 0) return requested;
  return std::max(2u, std::thread::hardware_concurrency());
}

Server::Server(Options opts) {
  unsigned threads = io_threads(opts.threads);
  core_ = std::make_unique<Core>(std::move(opts));
  net_ = std::make_unique<Net>(*core_, threads);
}

Server::~Server() { stop(); }

Status Server::start() {
  HF_TRY(core_->init());
  HF_TRY(net_->start(core_->options()));
  const std::string& pub = core_->options().public_url;
  if (!pub.empty()) {
    std::string u = pub;
    while (!u.empty() && u.back() == '/') u.pop_back();
    core_->set_base_url(u);
  } else {
    core_->set_base_url(net_->scheme() + "://" + net_->host() + ":" + std::to_string(net_->port()));
  }
  return {};
}

void Server::stop() {
  if (net_) net_->stop();
}

std::string Server::base_url() const { return core_->base_url(); }
std::string Server::listen_url() const {
  return net_->scheme() + "://" + net_->host() + ":" + std::to_string(net_->port());
}
std::string Server::cas_url() const { return core_->cas_url(); }
uint16_t Server::port() const { return net_->port(); }

Status Server::add_repo(RepoType type, std::string_view id, std::vector<FileSpec> files, RepoFlags flags) {
  return core_->add_repo(type, id, std::move(files), flags);
}
Status Server::add_repo_from_dir(RepoType type, std::string_view id, const std::string& dir, RepoFlags flags) {
  return core_->add_repo_from_dir(type, id, dir, flags);
}
Status Server::add_synthetic_repo(RepoType type, std::string_view id, std::string_view spec, RepoFlags flags) {
  return core_->add_synthetic_repo(type, id, spec, flags);
}
Status Server::add_alias(RepoType type, std::string_view alias, std::string_view canonical_id) {
  return core_->add_alias(type, alias, canonical_id);
}
Status Server::set_repo_flags(RepoType type, std::string_view id, RepoFlags flags) {
  return core_->set_repo_flags(type, id, flags);
}
Result<std::string> Server::commit(RepoType type, std::string_view id, const CommitRequest& req) {
  return core_->commit(type, id, req);
}
Status Server::create_tag(RepoType type, std::string_view id, std::string_view tag, std::string_view revision) {
  return core_->create_tag(type, id, tag, revision);
}
Result<uint64_t> Server::create_pr(RepoType type, std::string_view id, std::string_view revision) {
  return core_->create_pr(type, id, revision);
}
Result<std::string> Server::resolve_revision(RepoType type, std::string_view id, std::string_view revision) const {
  return core_->resolve_revision(type, id, revision);
}
Status Server::add_bucket(std::string_view id, const std::string& dir, bool is_private) {
  return core_->add_bucket(id, dir, is_private);
}
Status Server::bucket_put(std::string_view id, std::string_view path, std::string bytes, int64_t mtime_ms) {
  return core_->bucket_put(id, path, std::move(bytes), mtime_ms);
}
Status Server::bucket_delete(std::string_view id, std::string_view path) { return core_->bucket_delete(id, path); }
Result<std::string> Server::cas_put(std::string bytes) { return core_->cas_put(std::move(bytes)); }

Knobs Server::knobs() const { return core_->knobs(); }
void Server::set_knobs(const Knobs& k) { core_->set_knobs(k); }
void Server::set_faults(std::vector<FaultRule> rules) { core_->faults().set(std::move(rules)); }
void Server::clear_faults() { core_->faults().clear(); }
std::string Server::stats_json() const { return core_->stats().to_json(); }
uint64_t Server::requests(std::string_view route) const { return core_->stats().requests(route); }
uint64_t Server::bytes_in(std::string_view route) const { return core_->stats().bytes_in(route); }
uint64_t Server::status_count(int status) const { return core_->stats().status_count(status); }
uint64_t Server::faults_injected() const { return core_->stats().faults_injected(); }
void Server::reset_stats() { core_->stats().reset(); }
void Server::set_interceptor(Interceptor f) { core_->set_interceptor(std::move(f)); }

}  // namespace hf::hubsim
