#include "e2e/production/workload.h"

#include <gtest/gtest.h>

#include <iostream>
#include <sstream>

namespace clams::e2e {

std::string VideoMmif(const std::string& location) {
  boost::json::object doc{{"@type", "http://mmif.clams.ai/vocabulary/VideoDocument/v1"},
                          {"properties", {{"id", "d1"}, {"mime", "video/mp4"}, {"location", location}}}};
  boost::json::object root{{"metadata", {{"mmif", "http://mmif.clams.ai/1.1.0"}}},
                           {"documents", boost::json::array{doc}},
                           {"views", boost::json::array{}}};
  return mmif::WriteJson(root);
}

Workload::Workload(const std::string& gpus, std::vector<std::string> args, std::map<std::string, std::string> env,
                   const std::filesystem::path& profile_dir)
    : profiles_(profile_dir.empty() ? tmp_.path() / "profiles" : profile_dir) {
  env_ = {{"CLAMS_SIM_GPUS", gpus}, {"CLAMS_SIM_STATE", (tmp_.path() / "sim-state").string()},
          {"CLAMS_PROFILE_DIR", profiles_.string()}, {"CLAMS_APP_VERSION", "v1"}};
  for (auto& [k, v] : env) env_[k] = v;
  args.insert(args.begin(), "--production");
  args.push_back("--expose-runtime");  // the tests read worker pids and profiles
  server_ = std::make_unique<testing::ServerProcess>(testing::BuiltBinary("apps/vram-workload/vram-workload"), args,
                                                     env_);
  EXPECT_TRUE(WaitReady(port())) << server_->Log();
  // /ready needs one worker; tests reason about all of them.
  EXPECT_TRUE(testing::WaitFor([&] { return AllWorkersIdle(port()); }, std::chrono::seconds(30))) << server_->Log();
}

Workload::~Workload() {
  if (::testing::Test::HasFailure()) std::cerr << "--- server log ---\n" << server_->Log() << "---\n";
}

HttpResponse Workload::Post(const std::string& query, std::chrono::milliseconds timeout) {
  return PostBody(query, VideoMmif(), {}, timeout);
}

HttpResponse Workload::PostBody(const std::string& query, const std::string& body, server::Headers headers,
                                std::chrono::milliseconds timeout) {
  HttpResponse r = Call(port(), "POST", "/" + query, body, std::move(headers), timeout);
  if (r.content_type == "application/json") KeepForSchemaCheck(r.body);
  return r;
}

std::string ErrorMessage(const HttpResponse& r) {
  boost::json::value v = Json(r.body);
  if (!v.is_object()) return "";
  const auto& md = LastView(v).at("metadata").as_object();
  if (!md.contains("error")) return "";
  return std::string(md.at("error").at("message").as_string());
}

std::string Header(const HttpResponse& r, std::string_view name) {
  return std::string(server::FindHeader(r.headers, name));
}

std::uint64_t EstimateOf(const HttpResponse& r) {
  const std::string v = Header(r, "X-Clams-Vram");
  const auto at = v.find("estimate=");
  return at == std::string::npos ? 0 : std::stoull(v.substr(at + 9));
}

double MetricValue(const std::string& metrics, const std::string& series) {
  std::istringstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 && line[series.size()] == ' ') {
      return std::stod(line.substr(series.size() + 1));
    }
  }
  return -1;
}

}  // namespace clams::e2e
