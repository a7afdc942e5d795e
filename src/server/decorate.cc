#include "server/decorate.h"

#include <algorithm>

#include "clams/app/runner.h"

namespace clams::server {
namespace {

const json::value* Member(const json::value* v, std::string_view key) {
  return v != nullptr && v->is_object() ? v->get_object().if_contains(key) : nullptr;
}

std::vector<std::string> ViewIds(const json::value& doc) {
  std::vector<std::string> ids;
  const json::value* views = Member(&doc, "views");
  if (views == nullptr || !views->is_array()) return ids;
  for (const auto& v : views->get_array()) {
    if (const json::value* id = Member(&v, "id"); id != nullptr && id->is_string()) ids.emplace_back(id->get_string());
  }
  return ids;
}

}  // namespace

std::string DecorateAnswer(const std::string& answer, std::string_view input_mmif, const Decoration& d) {
  auto tree = mmif::ParseJson(answer);
  if (!tree.ok() || !tree->is_object()) return answer;
  std::vector<std::string> new_views = d.new_views;
  if (d.find_new_views) {
    std::vector<std::string> input_views;
    if (auto in = mmif::ParseJson(input_mmif); in.ok()) input_views = ViewIds(*in);
    if (const json::value* vs = Member(&*tree, "views"); vs != nullptr && vs->is_array()) {
      for (const auto& v : vs->get_array()) {
        const json::value* id = Member(&v, "id");
        const json::value* app = Member(Member(&v, "metadata"), "app");
        if (id == nullptr || !id->is_string() || app == nullptr || !app->is_string()) continue;
        if (app->get_string() != d.app_identifier) continue;
        if (std::find(input_views.begin(), input_views.end(), std::string_view(id->get_string())) != input_views.end()) {
          continue;
        }
        new_views.emplace_back(id->get_string());
      }
    }
  }
  json::value* views = tree->get_object().if_contains("views");
  if (views == nullptr || !views->is_array()) return answer;
  const std::string elapsed = FormatRunningTime(d.elapsed);
  for (auto& v : views->get_array()) {
    if (!v.is_object()) continue;
    const json::value* id = v.get_object().if_contains("id");
    if (id == nullptr || !id->is_string()) continue;
    if (std::find(new_views.begin(), new_views.end(), std::string_view(id->get_string())) == new_views.end()) continue;
    json::value* md = v.get_object().if_contains("metadata");
    if (md == nullptr || !md->is_object()) continue;
    json::value& profiling = md->get_object()["appProfiling"];
    if (!profiling.is_object()) profiling = json::object();
    if (d.running_time) profiling.get_object()["runningTime"] = elapsed;
    if (d.hardware) {
      json::value& hw = profiling.get_object()["hardware"];
      if (!hw.is_object()) hw = json::object();
      if (!hw.get_object().contains("cpu")) hw.get_object()["cpu"] = HostCpuDescription();
      hw.get_object()["cuda"] = d.cuda;
    }
  }
  mmif::JsonStyle style;
  style.indent = d.pretty ? 2 : 0;
  return mmif::WriteJson(*tree, style);
}

}  // namespace clams::server
