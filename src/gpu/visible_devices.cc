#include "gpu/visible_devices.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdint>

namespace clams::gpu_internal {
namespace {

constexpr std::string_view kGpuIdPrefix = "gpu-";
constexpr std::string_view kSimIdPrefix = "sim-gpu-";
constexpr std::string_view kMigIdPrefix = "mig-";

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

// The device an entry names, or -1 with `why` set.
int Resolve(std::string_view entry, const std::vector<std::string>& uuids, std::string* why) {
  if (entry.empty()) {
    *why = "an empty entry";
    return -1;
  }
  if (AllDigits(entry)) {
    // Leading zeros are fine; a value too long for an int is out of range anyway.
    constexpr std::size_t kMaxIndexDigits = 9;
    std::string_view digits = entry;
    while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
    if (digits.size() > kMaxIndexDigits) {
      *why = fmt::format("index {} is out of range ({} devices)", entry, uuids.size());
      return -1;
    }
    int index = 0;
    for (char c : digits) index = index * 10 + (c - '0');
    if (index >= static_cast<int>(uuids.size())) {
      *why = fmt::format("index {} is out of range ({} devices)", entry, uuids.size());
      return -1;
    }
    return index;
  }
  const std::string lower = Lower(entry);
  if (StartsWith(lower, kMigIdPrefix)) {
    *why = fmt::format("\"{}\" is a MIG device, which clams does not support", entry);
    return -1;
  }
  std::string_view id_prefix;
  if (StartsWith(lower, kSimIdPrefix)) {
    id_prefix = kSimIdPrefix;
  } else if (StartsWith(lower, kGpuIdPrefix)) {
    id_prefix = kGpuIdPrefix;
  }
  if (id_prefix.empty() || lower.size() == id_prefix.size()) {
    *why = fmt::format("\"{}\" is neither a device index nor a device id", entry);
    return -1;
  }
  for (std::size_t i = 0; i < uuids.size(); ++i) {
    if (Lower(uuids[i]) == lower) return static_cast<int>(i);
  }
  int match = -1;
  for (std::size_t i = 0; i < uuids.size(); ++i) {
    if (StartsWith(Lower(uuids[i]), lower)) {
      if (match >= 0) {
        *why = fmt::format("\"{}\" matches more than one device", entry);
        return -1;
      }
      match = static_cast<int>(i);
    }
  }
  if (match < 0) *why = fmt::format("no device has the id \"{}\"", entry);
  return match;
}

}  // namespace

VisibleDevices MapVisibleDevices(bool is_set, std::string_view value,
                                 const std::vector<std::string>& uuids) {
  VisibleDevices out;
  if (!is_set) {
    for (std::size_t i = 0; i < uuids.size(); ++i) out.physical.push_back(static_cast<int>(i));
    return out;
  }
  if (Trim(value).empty()) {
    out.note = "CUDA_VISIBLE_DEVICES is empty: no device is visible";
    return out;
  }
  std::size_t begin = 0;
  while (begin <= value.size()) {
    std::size_t end = value.find(',', begin);
    if (end == std::string_view::npos) end = value.size();
    const std::string_view entry = Trim(value.substr(begin, end - begin));
    std::string why;
    int device = Resolve(entry, uuids, &why);
    if (device >= 0 &&
        std::find(out.physical.begin(), out.physical.end(), device) != out.physical.end()) {
      why = fmt::format("\"{}\" names a device already listed", entry);
      device = -1;
    }
    if (device < 0) {
      out.note = fmt::format(
          "CUDA_VISIBLE_DEVICES=\"{}\": {}; the devices from this entry on are not visible "
          "(as in CUDA)",
          value, why);
      break;
    }
    out.physical.push_back(device);
    begin = end + 1;
  }
  return out;
}

}  // namespace clams::gpu_internal
