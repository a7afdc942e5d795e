#include "clams/app/metadata.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>

#include "app/python_text.h"
#include "clams/app/params.h"
#include "clams/base/log.h"
#include "clams/mmif/vocabulary.h"

namespace clams {
namespace {

constexpr std::string_view kIdentifierPrefix = "http://apps.clams.ai";
constexpr std::string_view kUnresolvable = "unresolvable";

bool IsHttpUrl(std::string_view s) {
  auto rest = [&](std::string_view scheme) {
    return s.substr(0, scheme.size()) == scheme && s.size() > scheme.size();
  };
  return rest("http://") || rest("https://");
}

std::string_view StripSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return s;
}

json::object TypeSpecJson(const TypeSpec& t, bool with_required) {
  json::object o;
  o["@type"] = t.at_type;
  if (!t.description.empty()) o["description"] = t.description;
  if (!t.properties.empty()) o["properties"] = t.properties;
  if (with_required) o["required"] = t.required;
  return o;
}

bool SameSpec(const TypeSpec& a, const TypeSpec& b) {
  return a.at_type == b.at_type && a.properties == b.properties && a.required == b.required;
}

RuntimeParameter Universal(std::string name, std::string description, ParamType type,
                           json::value default_value, std::vector<json::value> choices = {}) {
  RuntimeParameter p;
  p.name = std::move(name);
  p.description = std::move(description);
  p.type = type;
  p.default_value = std::move(default_value);
  p.choices = std::move(choices);
  return p;
}

// Converts a declared default or choice to the parameter's type: values of
// the right JSON type are kept, strings are cast like request values (a
// Python-style declaration `default="3"` works for an integer parameter).
StatusOr<json::value> TypedScalar(const RuntimeParameter& p, const json::value& v,
                                  std::string_view what) {
  auto bad = [&] {
    return InvalidArgumentError("parameter \"" + p.name + "\": " + std::string(what) + " " +
                                mmif::WriteJson(v) + " is not a valid " +
                                std::string(ParamTypeName(p.type)));
  };
  if (v.is_string()) {
    auto cast = CastParamValue(p, v.get_string());
    if (!cast.ok()) return bad();
    return cast;
  }
  switch (p.type) {
    case ParamType::kBoolean:
      if (v.is_bool()) return v;
      return bad();
    case ParamType::kInteger:
      if (v.is_int64()) return v;
      if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
        return json::value(static_cast<std::int64_t>(v.get_uint64()));
      }
      return bad();
    case ParamType::kNumber:
      if (v.is_double()) return v;
      if (v.is_int64()) return json::value(static_cast<double>(v.get_int64()));
      if (v.is_uint64()) return json::value(static_cast<double>(v.get_uint64()));
      return bad();
    case ParamType::kString:
      return bad();
    case ParamType::kMap:
      return bad();
  }
  return bad();
}

}  // namespace

std::string_view ParamTypeName(ParamType type) {
  switch (type) {
    case ParamType::kInteger: return "integer";
    case ParamType::kNumber: return "number";
    case ParamType::kString: return "string";
    case ParamType::kBoolean: return "boolean";
    case ParamType::kMap: return "map";
  }
  return "string";
}

StatusOr<ParamType> ParseParamType(std::string_view name) {
  if (name == "integer") return ParamType::kInteger;
  if (name == "number") return ParamType::kNumber;
  if (name == "string") return ParamType::kString;
  if (name == "boolean") return ParamType::kBoolean;
  if (name == "map") return ParamType::kMap;
  return InvalidArgumentError("unknown parameter type \"" + std::string(name) +
                              "\" (expected integer, number, string, boolean or map)");
}

Status AppMetadata::AddInput(std::string_view at_type, json::object properties, bool required) {
  TypeSpec spec{std::string(at_type), "", std::move(properties), required};
  for (const auto& group : input) {
    for (const auto& existing : group) {
      if (SameSpec(existing, spec)) {
        return AlreadyExistsError("Cannot add a duplicate input \"" + spec.at_type + "\"");
      }
    }
  }
  input.push_back({std::move(spec)});
  return Status::Ok();
}

Status AppMetadata::AddInputOneOf(std::vector<TypeSpec> types) {
  if (types.empty()) return InvalidArgumentError("an input one-of group needs at least one type");
  for (const auto& t : types) {
    if (!t.required) {
      return InvalidArgumentError("members of an input one-of group must be required (\"" +
                                  t.at_type + "\" is not)");
    }
    for (const auto& group : input) {
      for (const auto& existing : group) {
        if (SameSpec(existing, t)) {
          return AlreadyExistsError("Cannot add a duplicate input \"" + t.at_type + "\"");
        }
      }
    }
  }
  input.push_back(std::move(types));
  return Status::Ok();
}

Status AppMetadata::AddOutput(std::string_view at_type, json::object properties) {
  TypeSpec spec{std::string(at_type), "", std::move(properties), true};
  for (const auto& existing : output) {
    if (existing.at_type == spec.at_type && existing.properties == spec.properties) {
      return AlreadyExistsError("Cannot add a duplicate output \"" + spec.at_type + "\"");
    }
  }
  output.push_back(std::move(spec));
  return Status::Ok();
}

Status AppMetadata::AddParameter(RuntimeParameter p) {
  if (p.name.empty()) return InvalidArgumentError("a parameter needs a name");
  if (FindParameter(p.name) != nullptr) {
    return AlreadyExistsError("parameter '" + p.name + "' already exist.");
  }
  if (p.type == ParamType::kMap) p.multivalued = true;
  if (p.type == ParamType::kBoolean) p.multivalued = false;

  std::vector<json::value> choices;
  for (const auto& c : p.choices) {
    if (p.type == ParamType::kMap) {
      return InvalidArgumentError("parameter \"" + p.name + "\": a map parameter has no choices");
    }
    CLAMS_ASSIGN_OR_RETURN(json::value typed, TypedScalar(p, c, "choice"));
    choices.push_back(std::move(typed));
  }
  p.choices = std::move(choices);

  if (!p.default_value.is_null()) {
    json::value d = p.default_value;
    if (p.type == ParamType::kMap && d.is_object()) {
      json::array items;
      for (const auto& kv : d.get_object()) {
        if (!kv.value().is_string()) {
          return InvalidArgumentError("parameter \"" + p.name + "\": map default values must be strings");
        }
        items.emplace_back(std::string(kv.key()) + ":" + std::string(kv.value().get_string()));
      }
      d = std::move(items);
    }
    if (p.multivalued && !d.is_array()) d = json::array{d};
    if (p.multivalued) {
      json::array typed;
      for (const auto& e : d.get_array()) {
        if (p.type == ParamType::kMap) {
          if (!e.is_string() || e.get_string().find(':') == json::string::npos) {
            return InvalidArgumentError("parameter \"" + p.name +
                                        "\": map defaults are \"key:value\" strings");
          }
          typed.push_back(e);
        } else {
          CLAMS_ASSIGN_OR_RETURN(json::value t, TypedScalar(p, e, "default"));
          typed.push_back(std::move(t));
        }
      }
      p.default_value = std::move(typed);
    } else {
      if (d.is_array()) {
        return InvalidArgumentError("parameter \"" + p.name +
                                    "\": a single-valued parameter cannot have a list default");
      }
      CLAMS_ASSIGN_OR_RETURN(p.default_value, TypedScalar(p, d, "default"));
    }
  }
  parameters.push_back(std::move(p));
  return Status::Ok();
}

Status AppMetadata::AddMore(std::string_view key, std::string_view value) {
  if (key.empty() || value.empty()) return InvalidArgumentError("Key and value should not be empty!");
  if (!more) more.emplace();
  if (more->count(std::string(key)) != 0) {
    std::string message = "'";  // built step by step: GCC 12 warns (-Wrestrict) on "'" + std::string
    message += key;
    message += "' is already being used in the appmetadata!";
    return AlreadyExistsError(std::move(message));
  }
  (*more)[std::string(key)] = std::string(value);
  return Status::Ok();
}

Status AppMetadata::AddAppTag(std::string_view tag) {
  if (tag.empty()) return InvalidArgumentError("app tags must be non-empty strings");
  if (std::find(app_tags.begin(), app_tags.end(), tag) == app_tags.end()) {
    app_tags.emplace_back(tag);
  }
  return Status::Ok();
}

const RuntimeParameter* AppMetadata::FindParameter(std::string_view name) const {
  for (const auto& p : parameters) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

Status AppMetadata::Finalize() {
  if (finalized_) return Status::Ok();
  auto required = [](const std::string& value, std::string_view field) -> Status {
    if (value.empty()) return InvalidArgumentError("app metadata: \"" + std::string(field) + "\" is required");
    return Status::Ok();
  };
  CLAMS_RETURN_IF_ERROR(required(name, "name"));
  CLAMS_RETURN_IF_ERROR(required(description, "description"));
  CLAMS_RETURN_IF_ERROR(required(app_license, "app_license"));
  CLAMS_RETURN_IF_ERROR(required(identifier, "identifier"));
  CLAMS_RETURN_IF_ERROR(required(url, "url"));
  if (app_version.empty()) app_version = std::string(kUnresolvable);
  if (mmif_version.empty()) mmif_version = std::string(mmif::kSpecVersion);
  identifier = RewriteIdentifier(identifier, app_version);
  if (!IsHttpUrl(identifier)) {
    return InvalidArgumentError("app metadata: \"identifier\" must be an http(s) URL, got \"" +
                                identifier + "\"");
  }
  if (!IsHttpUrl(url)) {
    return InvalidArgumentError("app metadata: \"url\" must be an http(s) URL, got \"" + url + "\"");
  }
  for (const auto& group : input) {
    for (const auto& t : group) {
      if (t.at_type.empty()) return InvalidArgumentError("app metadata: an input has no @type");
    }
  }
  for (const auto& t : output) {
    if (!IsHttpUrl(t.at_type)) {
      return InvalidArgumentError("app metadata: output @type must be an http(s) URL, got \"" +
                                  t.at_type + "\"");
    }
  }
  if (est_gpu_mem_min < 0 || est_gpu_mem_typ < 0) {
    return InvalidArgumentError("app metadata: est_gpu_mem_min and est_gpu_mem_typ must not be negative");
  }
  if (est_gpu_mem_typ > 0 && est_gpu_mem_min > 0 && est_gpu_mem_typ < est_gpu_mem_min) {
    CLAMS_LOG(kWarning,
              "est_gpu_mem_typ ({} MB) is less than est_gpu_mem_min ({} MB). Setting "
              "est_gpu_mem_typ to {} MB.",
              est_gpu_mem_typ, est_gpu_mem_min, est_gpu_mem_min);
    est_gpu_mem_typ = est_gpu_mem_min;
  }
  // Re-check app parameters through AddParameter's rules (fields may have
  // been filled in directly), then append the universal ones.
  std::vector<RuntimeParameter> declared = std::move(parameters);
  parameters.clear();
  for (auto& p : declared) {
    if (IsUniversalParameter(p.name)) {
      return AlreadyExistsError("parameter '" + p.name + "' already exist.");
    }
    CLAMS_RETURN_IF_ERROR(AddParameter(std::move(p)));
  }
  for (const auto& p : UniversalParameters()) CLAMS_RETURN_IF_ERROR(AddParameter(p));
  for (const auto& tag : app_tags) {
    if (tag.empty()) return InvalidArgumentError("app metadata: app tags must be non-empty");
  }
  finalized_ = true;
  return Status::Ok();
}

json::object AppMetadata::ToJson() const {
  json::object o;
  o["name"] = name;
  o["description"] = description;
  o["app_version"] = app_version;
  o["mmif_version"] = mmif_version;
  if (analyzer_version) o["analyzer_version"] = *analyzer_version;
  if (analyzer_versions) {
    json::object av;
    for (const auto& [k, v] : *analyzer_versions) av[k] = v;
    o["analyzer_versions"] = std::move(av);
  }
  o["app_license"] = app_license;
  if (analyzer_license) o["analyzer_license"] = *analyzer_license;
  o["identifier"] = identifier;
  o["url"] = url;
  if (!input.empty()) {
    json::array in;
    for (const auto& group : input) {
      if (group.size() == 1) {
        in.push_back(TypeSpecJson(group[0], true));
      } else {
        json::array g;
        for (const auto& t : group) g.push_back(TypeSpecJson(t, true));
        in.push_back(std::move(g));
      }
    }
    o["input"] = std::move(in);
  }
  if (!output.empty()) {
    json::array out;
    for (const auto& t : output) out.push_back(TypeSpecJson(t, false));
    o["output"] = std::move(out);
  }
  if (!parameters.empty()) {
    json::array ps;
    for (const auto& p : parameters) {
      json::object po;
      po["name"] = p.name;
      po["description"] = p.description;
      po["type"] = ParamTypeName(p.type);
      if (!p.choices.empty()) po["choices"] = json::array(p.choices.begin(), p.choices.end());
      if (!p.default_value.is_null()) po["default"] = p.default_value;
      po["multivalued"] = p.multivalued;
      ps.push_back(std::move(po));
    }
    o["parameters"] = std::move(ps);
  }
  if (dependencies) o["dependencies"] = json::array(dependencies->begin(), dependencies->end());
  if (more) {
    json::object m;
    for (const auto& [k, v] : *more) m[k] = v;
    o["more"] = std::move(m);
  }
  if (!app_tags.empty()) o["app_tags"] = json::array(app_tags.begin(), app_tags.end());
  if (est_gpu_mem_min != 0) o["est_gpu_mem_min"] = est_gpu_mem_min;
  if (est_gpu_mem_typ != 0) o["est_gpu_mem_typ"] = est_gpu_mem_typ;
  return o;
}

std::string AppMetadata::Serialize(bool pretty) const {
  mmif::JsonStyle style;
  style.indent = pretty ? 2 : 0;
  return mmif::WriteJson(ToJson(), style);
}

const std::vector<RuntimeParameter>& UniversalParameters() {
  static const std::vector<RuntimeParameter>* params = new std::vector<RuntimeParameter>{
      Universal("pretty", "The JSON body of the HTTP response will be re-formatted with 2-space indentation",
                ParamType::kBoolean, false),
      Universal("runningTime", "The running time of the app will be recorded in the view metadata",
                ParamType::kBoolean, true),
      Universal("hwFetch",
                "The hardware information (architecture, GPU and vRAM) will be recorded in the view metadata",
                ParamType::kBoolean, false),
      Universal("tfSamplingMode",
                "Sampling mode for TimeFrame annotations. Has no effect when the app does not process "
                "TimeFrames. \"representatives\" uses all representative timepoints if present, otherwise "
                "skips the TimeFrame. \"single\" uses the middle representative if present, otherwise "
                "extracts a frame from the midpoint of the start/end interval (midpoint is calculated by "
                "floor division of the sum of start and end). \"all\" uses all target timepoints if "
                "present, otherwise extracts all frames from the time interval.",
                ParamType::kString, "representatives",
                {json::value("representatives"), json::value("single"), json::value("all")}),
  };
  return *params;
}

bool IsUniversalParameter(std::string_view name) {
  return name == "pretty" || name == "runningTime" || name == "hwFetch" || name == "tfSamplingMode";
}

std::string RewriteIdentifier(std::string_view identifier, std::string_view version) {
  std::vector<std::string_view> parts;
  if (identifier.find('/') == std::string_view::npos) parts.push_back(kIdentifierPrefix);
  parts.push_back(identifier);
  parts.push_back(version);
  std::string out;
  for (auto part : parts) {
    part = StripSlashes(part);
    if (part.empty()) continue;
    if (!out.empty()) out.push_back('/');
    out += part;
  }
  return out;
}

namespace {

bool GitAvailable() {
  const char* path = std::getenv("PATH");  // NOLINT: process lookup, like a shell
  if (path == nullptr) return false;
  std::string_view rest(path);
  while (!rest.empty()) {
    auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    if (!dir.empty() && ::access((dir + "/git").c_str(), X_OK) == 0) return true;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return false;
}

std::string GitDescribe(const std::string& git_dir) {
  std::string cmd = "git --git-dir '" + git_dir + "' describe --tags --always 2>/dev/null";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  if (pipe == nullptr) return std::string(kUnresolvable);
  std::string out;
  std::array<char, 256> buf{};
  while (std::fgets(buf.data(), buf.size(), pipe) != nullptr) out += buf.data();
  int rc = ::pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (rc != 0 || out.empty()) return std::string(kUnresolvable);
  return out;
}

}  // namespace

std::string ResolveAppVersion(const std::vector<std::string>& search_dirs, std::string_view env_version) {
  if (GitAvailable()) {
    for (const auto& dir : search_dirs) {
      std::error_code ec;
      std::filesystem::path git_dir = std::filesystem::path(dir) / ".git";
      if (std::filesystem::exists(git_dir, ec)) return GitDescribe(git_dir.string());
    }
  }
  if (!env_version.empty()) return std::string(env_version);
  return std::string(kUnresolvable);
}

namespace {

StatusOr<std::string> StringField(const json::object& o, std::string_view key, bool required) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) {
    if (required) return InvalidArgumentError("app metadata: \"" + std::string(key) + "\" is required");
    return std::string();
  }
  if (!v->is_string()) return InvalidArgumentError("app metadata: \"" + std::string(key) + "\" must be a string");
  return std::string(v->get_string());
}

StatusOr<TypeSpec> ReadTypeSpec(const json::value& v, bool input) {
  if (!v.is_object()) return InvalidArgumentError("app metadata: an input or output must be an object");
  const json::object& o = v.get_object();
  TypeSpec t;
  CLAMS_ASSIGN_OR_RETURN(t.at_type, StringField(o, "@type", true));
  CLAMS_ASSIGN_OR_RETURN(t.description, StringField(o, "description", false));
  if (const json::value* p = o.if_contains("properties"); p != nullptr && p->is_object()) t.properties = p->get_object();
  if (input) {
    if (const json::value* r = o.if_contains("required"); r != nullptr && r->is_bool()) t.required = r->get_bool();
  }
  return t;
}

// A declared default or choice as the Python SDK uses it at run time: it
// stringifies the value and casts it to the parameter's type.
StatusOr<json::value> RuntimeValue(const RuntimeParameter& p, const json::value& v) {
  if (v.is_string() || p.type == ParamType::kString) {
    return CastParamValue(p, app_internal::PythonStr(v));
  }
  if (p.type == ParamType::kNumber && v.is_number()) return json::value(v.to_number<double>());
  if (p.type == ParamType::kInteger && (v.is_int64() || v.is_uint64())) return v;
  if (p.type == ParamType::kBoolean && v.is_bool()) return v;
  return CastParamValue(p, app_internal::PythonStr(v));
}

}  // namespace

StatusOr<AppMetadata> AppMetadata::FromJson(const json::value& value) {
  if (!value.is_object()) return InvalidArgumentError("app metadata must be a JSON object");
  const json::object& o = value.get_object();
  AppMetadata m;
  CLAMS_ASSIGN_OR_RETURN(m.name, StringField(o, "name", true));
  CLAMS_ASSIGN_OR_RETURN(m.description, StringField(o, "description", false));
  CLAMS_ASSIGN_OR_RETURN(m.app_version, StringField(o, "app_version", false));
  CLAMS_ASSIGN_OR_RETURN(m.mmif_version, StringField(o, "mmif_version", false));
  CLAMS_ASSIGN_OR_RETURN(m.app_license, StringField(o, "app_license", false));
  CLAMS_ASSIGN_OR_RETURN(m.identifier, StringField(o, "identifier", true));
  CLAMS_ASSIGN_OR_RETURN(m.url, StringField(o, "url", false));
  if (const json::value* v = o.if_contains("analyzer_version"); v != nullptr && v->is_string()) {
    m.analyzer_version = std::string(v->get_string());
  }
  if (const json::value* v = o.if_contains("analyzer_license"); v != nullptr && v->is_string()) {
    m.analyzer_license = std::string(v->get_string());
  }
  if (const json::value* v = o.if_contains("analyzer_versions"); v != nullptr && v->is_object()) {
    m.analyzer_versions.emplace();
    for (const auto& kv : v->get_object()) {
      if (kv.value().is_string()) (*m.analyzer_versions)[std::string(kv.key())] = std::string(kv.value().get_string());
    }
  }
  if (const json::value* v = o.if_contains("input"); v != nullptr && v->is_array()) {
    for (const auto& entry : v->get_array()) {
      std::vector<TypeSpec> group;
      if (entry.is_array()) {
        for (const auto& member : entry.get_array()) {
          CLAMS_ASSIGN_OR_RETURN(TypeSpec t, ReadTypeSpec(member, true));
          group.push_back(std::move(t));
        }
      } else {
        CLAMS_ASSIGN_OR_RETURN(TypeSpec t, ReadTypeSpec(entry, true));
        group.push_back(std::move(t));
      }
      m.input.push_back(std::move(group));
    }
  }
  if (const json::value* v = o.if_contains("output"); v != nullptr && v->is_array()) {
    for (const auto& entry : v->get_array()) {
      CLAMS_ASSIGN_OR_RETURN(TypeSpec t, ReadTypeSpec(entry, false));
      m.output.push_back(std::move(t));
    }
  }
  if (const json::value* v = o.if_contains("parameters"); v != nullptr && v->is_array()) {
    for (const auto& entry : v->get_array()) {
      if (!entry.is_object()) return InvalidArgumentError("app metadata: a parameter must be an object");
      const json::object& po = entry.get_object();
      RuntimeParameter p;
      CLAMS_ASSIGN_OR_RETURN(p.name, StringField(po, "name", true));
      CLAMS_ASSIGN_OR_RETURN(p.description, StringField(po, "description", false));
      CLAMS_ASSIGN_OR_RETURN(std::string type, StringField(po, "type", true));
      auto parsed = ParseParamType(type);
      if (!parsed.ok()) return parsed.status().WithContext("app metadata: parameter \"" + p.name + "\"");
      p.type = *parsed;
      if (const json::value* mv = po.if_contains("multivalued"); mv != nullptr && mv->is_bool()) {
        p.multivalued = mv->get_bool();
      }
      if (p.type == ParamType::kMap) p.multivalued = true;
      if (const json::value* c = po.if_contains("choices"); c != nullptr && c->is_array()) {
        for (const auto& choice : c->get_array()) {
          auto typed = RuntimeValue(p, choice);
          if (!typed.ok()) return typed.status().WithContext("app metadata: parameter \"" + p.name + "\" choice");
          p.choices.push_back(std::move(typed).value());
        }
      }
      if (const json::value* d = po.if_contains("default"); d != nullptr && !d->is_null()) {
        if (p.type == ParamType::kMap) {
          json::array items;
          if (d->is_array()) {
            for (const auto& item : d->get_array()) items.emplace_back(app_internal::PythonStr(item));
          } else {
            items.emplace_back(app_internal::PythonStr(*d));
          }
          p.default_value = std::move(items);
        } else if (p.multivalued) {
          json::array items;
          if (d->is_array()) {
            for (const auto& item : d->get_array()) {
              auto typed = RuntimeValue(p, item);
              if (!typed.ok()) return typed.status().WithContext("app metadata: parameter \"" + p.name + "\" default");
              items.push_back(std::move(typed).value());
            }
          } else {
            auto typed = RuntimeValue(p, *d);
            if (!typed.ok()) return typed.status().WithContext("app metadata: parameter \"" + p.name + "\" default");
            items.push_back(std::move(typed).value());
          }
          p.default_value = std::move(items);
        } else {
          auto typed = RuntimeValue(p, *d);
          if (!typed.ok()) return typed.status().WithContext("app metadata: parameter \"" + p.name + "\" default");
          p.default_value = std::move(typed).value();
        }
      }
      m.parameters.push_back(std::move(p));
    }
  }
  for (const auto& universal : UniversalParameters()) {
    if (m.FindParameter(universal.name) == nullptr) m.parameters.push_back(universal);
  }
  if (const json::value* v = o.if_contains("dependencies"); v != nullptr && v->is_array()) {
    m.dependencies.emplace();
    for (const auto& d : v->get_array()) {
      if (d.is_string()) m.dependencies->emplace_back(d.get_string());
    }
  }
  if (const json::value* v = o.if_contains("more"); v != nullptr && v->is_object()) {
    m.more.emplace();
    for (const auto& kv : v->get_object()) (*m.more)[std::string(kv.key())] = app_internal::PythonStr(kv.value());
  }
  if (const json::value* v = o.if_contains("app_tags"); v != nullptr && v->is_array()) {
    for (const auto& t : v->get_array()) {
      if (t.is_string()) m.app_tags.emplace_back(t.get_string());
    }
  }
  for (const char* key : {"est_gpu_mem_min", "est_gpu_mem_typ"}) {
    const json::value* v = o.if_contains(key);
    if (v == nullptr || v->is_null()) continue;
    std::int64_t mb = 0;
    if (v->is_int64()) {
      mb = v->get_int64();
    } else if (v->is_uint64()) {
      mb = static_cast<std::int64_t>(v->get_uint64());
    } else if (v->is_double()) {
      mb = static_cast<std::int64_t>(v->get_double());
    } else if (v->is_string()) {
      mb = std::atoll(std::string(v->get_string()).c_str());
    }
    (std::string_view(key) == "est_gpu_mem_min" ? m.est_gpu_mem_min : m.est_gpu_mem_typ) = std::max<std::int64_t>(0, mb);
  }
  if (m.est_gpu_mem_typ > 0 && m.est_gpu_mem_min > m.est_gpu_mem_typ) m.est_gpu_mem_typ = m.est_gpu_mem_min;
  m.finalized_ = true;
  return m;
}

}  // namespace clams
