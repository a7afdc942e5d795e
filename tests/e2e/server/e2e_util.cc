#include "e2e/server/e2e_util.h"

#include <stdlib.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>

namespace clams::e2e {
namespace {

// A new directory of this run's own (not named by pid: a directory left by an
// earlier run that was killed, under a pid used again, would add its files to
// the count).
std::filesystem::path& KeepDir() {
  static std::filesystem::path* dir = [] {
    std::string tmpl = (std::filesystem::temp_directory_path() / "clams-e2e-mmif-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    return new std::filesystem::path(tmpl);
  }();
  return *dir;
}

std::atomic<int> g_kept{0};

class SchemaCheck : public ::testing::Environment {
 public:
  void TearDown() override {
    if (g_kept.load() == 0) return;
    auto schema = testing::MmifDataDir() / "schema" / "mmif.json";
    auto tool = testing::SourceDir() / "tests" / "tools" / "validate_mmif.py";
    auto r = testing::RunProgram({"/usr/bin/python3", tool.string(), schema.string(), KeepDir().string()});
    EXPECT_EQ(r.exit_code, 0) << "python3-jsonschema rejected MMIF the server produced:\n" << r.out << r.err;
    EXPECT_NE(r.out.find("checked " + std::to_string(g_kept.load()) + " file(s), 0 invalid"), std::string::npos)
        << r.out << r.err;
    std::error_code ec;
    std::filesystem::remove_all(KeepDir(), ec);
  }
};

// Registered before main, so that no test can keep an answer the check
// never sees (ctest runs each test in a process of its own: a registration
// in one fixture's SetUpTestSuite missed every test outside that fixture).
[[maybe_unused]] ::testing::Environment* const kSchemaCheck = ::testing::AddGlobalTestEnvironment(new SchemaCheck());

}  // namespace

HttpResponse Call(int port, const std::string& method, const std::string& target, const std::string& body,
                  server::Headers headers, std::chrono::milliseconds timeout) {
  server::HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = body;
  req.headers = std::move(headers);
  auto r = server::HttpRequestBlocking(server::Endpoint{"", "127.0.0.1", static_cast<std::uint16_t>(port)},
                                       std::move(req), timeout);
  if (!r.ok()) {
    ADD_FAILURE() << method << " " << target << ": " << r.status().ToString();
    return HttpResponse{0, "", {}, ""};
  }
  return std::move(r).value();
}

boost::json::value Json(const std::string& body) {
  auto v = mmif::ParseJson(body);
  if (!v.ok()) {
    ADD_FAILURE() << "not JSON: " << v.status().ToString() << "\n" << body.substr(0, 500);
    return nullptr;
  }
  return std::move(v).value();
}

void KeepForSchemaCheck(const std::string& body) {
  const int n = g_kept.fetch_add(1);
  std::ofstream out(KeepDir() / ("answer-" + std::to_string(n) + ".json"), std::ios::binary);
  out << body;
}

std::string TextMmif(const std::string& text, const std::string& id) {
  boost::json::object doc{{"@type", "http://mmif.clams.ai/vocabulary/TextDocument/v1"},
                          {"properties", {{"id", id}, {"text", {{"@value", text}, {"@language", "en"}}}}}};
  boost::json::object root{{"metadata", {{"mmif", "http://mmif.clams.ai/1.1.0"}}},
                           {"documents", boost::json::array{doc}},
                           {"views", boost::json::array{}}};
  return mmif::WriteJson(root);
}

bool WaitReady(int port, std::chrono::milliseconds timeout) {
  return testing::WaitFor(
      [&] {
        server::HttpRequest req;
        req.method = "GET";
        req.target = "/ready";
        auto r = server::HttpRequestBlocking(server::Endpoint{"", "127.0.0.1", static_cast<std::uint16_t>(port)},
                                             std::move(req), std::chrono::seconds(5));
        return r.ok() && r->status == 200;
      },
      timeout);
}

boost::json::value Runtime(int port) {
  HttpResponse r = Call(port, "GET", "/?includeVRAM=true");
  if (r.status != 200) return nullptr;
  boost::json::value md = Json(r.body);
  return md.is_object() && md.get_object().contains("runtime") ? md.at("runtime") : boost::json::value();
}

std::vector<int> WorkerPids(int port) {
  std::vector<int> pids;
  boost::json::value rt = Runtime(port);
  if (!rt.is_object()) return pids;
  for (const auto& w : rt.at("workers").as_array()) pids.push_back(static_cast<int>(w.at("pid").as_int64()));
  return pids;
}

boost::json::object FirstWorker(int port) { return Runtime(port).at("workers").as_array().at(0).as_object(); }

bool AllWorkersIdle(int port, std::size_t count) {
  boost::json::value rt = Runtime(port);
  if (!rt.is_object()) return false;
  const auto& workers = rt.at("workers").as_array();
  if (workers.empty() || (count != 0 && workers.size() != count)) return false;
  for (const auto& w : workers) {
    if (w.at("state") != "idle") return false;
  }
  return true;
}

boost::json::value Gpus(const std::map<std::string, std::string>& env) {
  auto r = testing::RunProgram({testing::BuiltBinary("src/cli/clams").string(), "gpu", "--json"}, env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return Json(r.out);
}

const boost::json::object& LastView(const boost::json::value& mmif) {
  return mmif.at("views").as_array().back().as_object();
}

}  // namespace clams::e2e
