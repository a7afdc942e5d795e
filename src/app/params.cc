#include "clams/app/params.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "app/python_text.h"
#include "clams/mmif/json.h"

namespace clams {
namespace {

using app_internal::PythonRepr;
using app_internal::PythonStr;
using app_internal::PythonStringRepr;
using app_internal::PythonTypeName;

std::string_view Trim(std::string_view s) {
  auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

bool IsFalsy(std::string_view s) {
  return s == "False" || s == "false" || s == "F" || s == "f" || s == "0";
}

std::string CastError(const RuntimeParameter& p, std::string_view what, std::string_view raw) {
  return "Value for parameter \"" + p.name + "\" must be " + std::string(what) + ", got " +
         PythonStringRepr(raw) + ".";
}

bool ChoiceEquals(const json::value& a, const json::value& b) {
  if (a.is_number() && b.is_number()) return a.to_number<double>() == b.to_number<double>();
  return a == b;
}

std::string ChoicesRepr(const std::vector<json::value>& choices) {
  json::array arr(choices.begin(), choices.end());
  return PythonRepr(arr);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding as urllib.parse.unquote_plus: '+' is a space; a '%' not
// followed by two hex digits stays as it is.
std::string UrlDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Status TooManyNames(std::string_view source, std::size_t count) {
  return InvalidArgumentError("Too many " + std::string(source) + " parameters: " + std::to_string(count) +
                              " names, at most " + std::to_string(kMaxParameterNames) + " are accepted.");
}

}  // namespace

// --- RawParams ---------------------------------------------------------------

RawParams::RawParams(std::initializer_list<Entry> entries) {
  for (const auto& e : entries) Set(e.first, e.second);
}

void RawParams::Add(std::string_view name, std::string value) {
  if (auto it = index_.find(name); it != index_.end()) {
    entries_[it->second].second.push_back(std::move(value));
    return;
  }
  index_.emplace(std::string(name), entries_.size());
  entries_.emplace_back(std::string(name), std::vector<std::string>{std::move(value)});
}

void RawParams::Set(std::string_view name, std::vector<std::string> values) {
  if (auto it = index_.find(name); it != index_.end()) {
    entries_[it->second].second = std::move(values);
    return;
  }
  index_.emplace(std::string(name), entries_.size());
  entries_.emplace_back(std::string(name), std::move(values));
}

const std::vector<std::string>* RawParams::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

void RawParams::MergeOverride(const RawParams& other) {
  for (const auto& e : other.entries_) Set(e.first, e.second);
}

StatusOr<RawParams> RawParams::FromQuery(std::string_view query) {
  RawParams out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    auto eq = piece.find('=');
    std::string name = UrlDecode(piece.substr(0, eq));
    std::string value = eq == std::string_view::npos ? std::string() : UrlDecode(piece.substr(eq + 1));
    if (!mmif::IsValidUtf8(name) || !mmif::IsValidUtf8(value)) {
      return InvalidArgumentError("query parameter " + PythonStringRepr(name) +
                                  " is not valid UTF-8 after percent-decoding");
    }
    if (name.empty()) continue;
    out.Add(name, std::move(value));
  }
  // Counted after the whole query is read, so the message gives the real
  // count; the query string is bounded by the HTTP header limit.
  if (out.size() > kMaxParameterNames) return TooManyNames("query", out.size());
  return out;
}

StatusOr<RawParams> RawParams::FromEnvelope(const json::value& value) {
  if (!value.is_object()) {
    return InvalidArgumentError("\"parameters\" must be a JSON object, got " +
                                std::string(PythonTypeName(value)));
  }
  if (value.get_object().size() > kMaxParameterNames) {
    return TooManyNames("envelope", value.get_object().size());
  }
  RawParams out;
  for (const auto& kv : value.get_object()) {
    std::vector<std::string> values;
    const json::value& v = kv.value();
    if (v.is_array()) {
      for (const auto& e : v.get_array()) values.push_back(PythonStr(e));
    } else if (v.is_object()) {
      for (const auto& inner : v.get_object()) {
        values.push_back(std::string(inner.key()) + ":" + PythonStr(inner.value()));
      }
    } else {
      values.push_back(PythonStr(v));
    }
    out.Set(kv.key(), std::move(values));
  }
  return out;
}

// --- casting and refinement --------------------------------------------------

StatusOr<json::value> CastParamValue(const RuntimeParameter& p, std::string_view raw) {
  switch (p.type) {
    case ParamType::kBoolean:
      return json::value(!IsFalsy(raw));
    case ParamType::kString:
      return json::value(json::string(raw));
    case ParamType::kInteger: {
      std::string_view t = Trim(raw);
      if (!t.empty() && t.front() == '+') t.remove_prefix(1);
      std::int64_t v = 0;
      auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || ec != std::errc() || ptr != t.data() + t.size()) {
        return InvalidArgumentError(CastError(p, "an integer", raw));
      }
      return json::value(v);
    }
    case ParamType::kNumber: {
      std::string t(Trim(raw));
      if (!t.empty() && t.front() == '+') t.erase(0, 1);
      char* end = nullptr;
      double v = t.empty() ? 0.0 : std::strtod(t.c_str(), &end);
      if (t.empty() || end != t.c_str() + t.size() || std::isnan(v) || std::isinf(v) ||
          t.find_first_of("xX") != std::string::npos) {
        return InvalidArgumentError(CastError(p, "a finite number", raw));
      }
      return json::value(v);
    }
    case ParamType::kMap: {
      auto colon = raw.find(':');
      if (colon == std::string_view::npos) {
        return InvalidArgumentError(CastError(p, "a \"key:value\" pair", raw));
      }
      json::object o;
      o[raw.substr(0, colon)] = raw.substr(colon + 1);
      return json::value(std::move(o));
    }
  }
  return InternalError("unknown parameter type");
}

StatusOr<Params> RefineParams(const AppMetadata& metadata, const RawParams& raw) {
  Params out;
  out.raw_ = raw;
  for (const auto& p : metadata.parameters) {
    const std::vector<std::string>* values = raw.Find(p.name);
    if (values != nullptr && !values->empty()) {
      json::value typed;
      if (p.type == ParamType::kMap) {
        json::object merged;
        for (const auto& v : *values) {
          CLAMS_ASSIGN_OR_RETURN(json::value one, CastParamValue(p, v));
          for (auto& kv : one.get_object()) merged[kv.key()] = kv.value();
          auto colon = v.find(':');
          if (v.find(':', colon + 1) != std::string::npos) {
            out.refine_warnings_.push_back("The map parameter value " + PythonStringRepr(v) +
                                           " for \"" + p.name +
                                           "\" contains multiple ':' characters; the value is "
                                           "everything after the first one.");
          }
        }
        typed = std::move(merged);
      } else if (p.multivalued) {
        json::array arr;
        for (const auto& v : *values) {
          CLAMS_ASSIGN_OR_RETURN(json::value one, CastParamValue(p, v));
          arr.push_back(std::move(one));
        }
        typed = std::move(arr);
      } else {
        CLAMS_ASSIGN_OR_RETURN(typed, CastParamValue(p, values->front()));
      }
      if (!p.choices.empty()) {
        auto allowed = [&](const json::value& v) {
          return std::any_of(p.choices.begin(), p.choices.end(),
                             [&](const json::value& c) { return ChoiceEquals(c, v); });
        };
        bool ok = typed.is_array() ? std::all_of(typed.get_array().begin(), typed.get_array().end(), allowed)
                                   : allowed(typed);
        if (!ok) {
          return InvalidArgumentError("Value for parameter \"" + p.name + "\" must be one of " +
                                      ChoicesRepr(p.choices) + ".");
        }
      }
      out.values_[p.name] = std::move(typed);
    } else if (!p.default_value.is_null()) {
      if (p.type == ParamType::kMap) {
        json::object merged;
        for (const auto& item : p.default_value.get_array()) {
          CLAMS_ASSIGN_OR_RETURN(json::value one, CastParamValue(p, item.get_string()));
          for (auto& kv : one.get_object()) merged[kv.key()] = kv.value();
        }
        out.values_[p.name] = std::move(merged);
      } else {
        out.values_[p.name] = p.default_value;
      }
    } else if (p.multivalued && values != nullptr) {
      // Given, but with no values (an envelope's empty list).
      out.values_[p.name] = p.type == ParamType::kMap ? json::value(json::object()) : json::value(json::array());
    } else {
      return InvalidArgumentError("Cannot find configuration for a required parameter \"" + p.name + "\".");
    }
  }
  for (const auto& e : raw.entries()) {
    if (metadata.FindParameter(e.first) == nullptr) out.undeclared_.push_back(e.first);
  }
  return out;
}

std::string PythonListRepr(const std::vector<std::string>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += PythonStringRepr(values[i]);
  }
  return out + "]";
}

std::string RecordedParameterValue(const AppMetadata& metadata, const RawParams::Entry& entry) {
  const RuntimeParameter* p = metadata.FindParameter(entry.first);
  if ((p != nullptr && p->multivalued) || entry.second.empty()) return PythonListRepr(entry.second);
  return entry.second.front();
}

json::object ClassParameterValues(const Params& params, const std::vector<std::string>& only) {
  json::object out;
  for (const auto& kv : params.values()) {
    if (IsUniversalParameter(kv.key())) continue;
    if (!only.empty() && std::find(only.begin(), only.end(), std::string_view(kv.key())) == only.end()) continue;
    out[kv.key()] = kv.value();
  }
  return out;
}

std::string CanonicalClassParameters(const Params& params, const std::vector<std::string>& only) {
  const json::object values = ClassParameterValues(params, only);
  std::vector<const json::key_value_pair*> items;
  for (const auto& kv : values) items.push_back(&kv);
  std::sort(items.begin(), items.end(), [](const auto* a, const auto* b) { return a->key() < b->key(); });
  json::object sorted;
  for (const auto* kv : items) sorted[kv->key()] = kv->value();
  return mmif::WriteJson(sorted);
}

// --- Params getters ----------------------------------------------------------

const json::value* Params::Find(std::string_view name) const { return values_.if_contains(name); }

namespace {
[[noreturn]] void ThrowAccess(std::string_view name, std::string_view want, const json::value* v) {
  if (v == nullptr) {
    throw ParamAccessError("parameter \"" + std::string(name) + "\" is not declared in the app metadata");
  }
  throw ParamAccessError("parameter \"" + std::string(name) + "\" holds " +
                         std::string(PythonTypeName(*v)) + ", not " + std::string(want));
}
}  // namespace

bool Params::GetBool(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_bool()) ThrowAccess(name, "a boolean", v);
  return v->get_bool();
}

std::int64_t Params::GetInt(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_int64()) ThrowAccess(name, "an integer", v);
  return v->get_int64();
}

double Params::GetNumber(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_number()) ThrowAccess(name, "a number", v);
  return v->to_number<double>();
}

std::string Params::GetString(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_string()) ThrowAccess(name, "a string", v);
  return std::string(v->get_string());
}

std::vector<std::string> Params::GetStrings(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_array()) ThrowAccess(name, "a list of strings", v);
  std::vector<std::string> out;
  for (const auto& e : v->get_array()) {
    if (!e.is_string()) ThrowAccess(name, "a list of strings", v);
    out.emplace_back(e.get_string());
  }
  return out;
}

std::vector<std::int64_t> Params::GetInts(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_array()) ThrowAccess(name, "a list of integers", v);
  std::vector<std::int64_t> out;
  for (const auto& e : v->get_array()) {
    if (!e.is_int64()) ThrowAccess(name, "a list of integers", v);
    out.push_back(e.get_int64());
  }
  return out;
}

std::vector<double> Params::GetNumbers(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_array()) ThrowAccess(name, "a list of numbers", v);
  std::vector<double> out;
  for (const auto& e : v->get_array()) {
    if (!e.is_number()) ThrowAccess(name, "a list of numbers", v);
    out.push_back(e.to_number<double>());
  }
  return out;
}

std::map<std::string, std::string> Params::GetMap(std::string_view name) const {
  const json::value* v = Find(name);
  if (v == nullptr || !v->is_object()) ThrowAccess(name, "a map", v);
  std::map<std::string, std::string> out;
  for (const auto& kv : v->get_object()) {
    if (kv.value().is_string()) out[std::string(kv.key())] = std::string(kv.value().get_string());
  }
  return out;
}

}  // namespace clams
