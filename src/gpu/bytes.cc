// Byte sizes: parsing, the formats of messages, hwFetch entries and CUDA OOMs.
#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "clams/gpu/probe.h"
#include "gpu/format.h"

namespace clams::gpu {
namespace {

using gpu_internal::kGiB;
using gpu_internal::kKiB;
using gpu_internal::kMiB;
using gpu_internal::kTiB;

constexpr std::uint64_t kKB = 1000;
constexpr std::uint64_t kMB = kKB * 1000;
constexpr std::uint64_t kGB = kMB * 1000;
constexpr std::uint64_t kTB = kGB * 1000;
// More fraction digits than this cannot change the result by a byte.
constexpr int kMaxFractionDigits = 18;

struct Unit {
  std::string_view name;
  std::uint64_t multiplier;
};
constexpr std::array<Unit, 13> kUnits = {{
    {"b", 1},
    {"k", kKiB},
    {"kib", kKiB},
    {"kb", kKB},
    {"m", kMiB},
    {"mib", kMiB},
    {"mb", kMB},
    {"g", kGiB},
    {"gib", kGiB},
    {"gb", kGB},
    {"t", kTiB},
    {"tib", kTiB},
    {"tb", kTB},
}};

Status BadSize(std::string_view text, std::string_view why) {
  return InvalidArgumentError(fmt::format(
      "invalid byte size \"{}\": {} (expected a number with an optional unit: B, K, KiB, KB, "
      "M, MiB, MB, G, GiB, GB, T, TiB, TB)",
      text, why));
}

bool IsSpace(char c) { return c == ' ' || c == '\t'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

StatusOr<std::uint64_t> ParseBytes(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  if (s.empty()) return BadSize(text, "empty");

  std::size_t pos = 0;
  unsigned __int128 integer = 0;
  bool any_digit = false;
  while (pos < s.size() && IsDigit(s[pos])) {
    integer = integer * 10 + static_cast<unsigned>(s[pos] - '0');
    if (integer > std::numeric_limits<std::uint64_t>::max()) return BadSize(text, "too large");
    any_digit = true;
    ++pos;
  }
  unsigned __int128 fraction = 0;
  unsigned __int128 fraction_scale = 1;
  bool has_fraction = false;
  if (pos < s.size() && s[pos] == '.') {
    has_fraction = true;
    ++pos;
    int digits = 0;
    while (pos < s.size() && IsDigit(s[pos])) {
      if (digits < kMaxFractionDigits) {
        fraction = fraction * 10 + static_cast<unsigned>(s[pos] - '0');
        fraction_scale *= 10;
        ++digits;
      }
      any_digit = true;
      ++pos;
    }
  }
  if (!any_digit) return BadSize(text, "no number");

  std::size_t unit_begin = pos;
  while (unit_begin < s.size() && IsSpace(s[unit_begin])) ++unit_begin;
  std::string unit;
  for (std::size_t i = unit_begin; i < s.size(); ++i) {
    unit.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(s[i]))));
  }
  std::uint64_t multiplier = 1;
  if (!unit.empty()) {
    bool found = false;
    for (const Unit& u : kUnits) {
      if (u.name == unit) {
        multiplier = u.multiplier;
        found = true;
        break;
      }
    }
    if (!found) return BadSize(text, fmt::format("unknown unit \"{}\"", s.substr(unit_begin)));
  }
  if (has_fraction && fraction != 0 && multiplier == 1) {
    return BadSize(text, "a fraction of a byte");
  }
  unsigned __int128 total = integer * multiplier;
  // Round the fractional part to the nearest byte.
  total += (fraction * multiplier * 2 + fraction_scale) / (fraction_scale * 2);
  if (total > std::numeric_limits<std::uint64_t>::max()) return BadSize(text, "too large");
  return static_cast<std::uint64_t>(total);
}

std::string FormatBytes(std::uint64_t bytes) {
  if (bytes < kKiB) return fmt::format("{} B", bytes);
  constexpr std::array<Unit, 4> kBinary = {
      {{"KiB", kKiB}, {"MiB", kMiB}, {"GiB", kGiB}, {"TiB", kTiB}}};
  const Unit* unit = &kBinary[0];
  for (const Unit& u : kBinary) {
    if (bytes >= u.multiplier) unit = &u;
  }
  return fmt::format(
      "{:.1f} {}", static_cast<double>(bytes) / static_cast<double>(unit->multiplier), unit->name);
}

std::string FormatCudaHardwareEntry(std::string_view name, std::uint64_t total_bytes,
                                    std::uint64_t available_bytes, std::uint64_t peak_bytes) {
  return fmt::format("{}, {} MiB total, {} MiB available, {} MiB peak used", name,
                     gpu_internal::RoundToMiB(total_bytes),
                     gpu_internal::RoundToMiB(available_bytes),
                     gpu_internal::RoundToMiB(peak_bytes));
}

}  // namespace clams::gpu

namespace clams::gpu_internal {

std::uint64_t RoundToMiB(std::uint64_t bytes) {
  const std::uint64_t quotient = bytes / kMiB;
  const std::uint64_t remainder = bytes % kMiB;
  constexpr std::uint64_t kHalf = kMiB / 2;
  if (remainder > kHalf) return quotient + 1;
  if (remainder == kHalf) return quotient % 2 == 0 ? quotient : quotient + 1;
  return quotient;
}

std::string TorchFormatSize(std::uint64_t bytes) {
  if (bytes <= kKiB) return fmt::format("{} bytes", bytes);
  const double value = static_cast<double>(bytes);
  if (bytes <= kMiB) return fmt::format("{:.2f} KiB", value / static_cast<double>(kKiB));
  if (bytes <= kGiB) return fmt::format("{:.2f} MiB", value / static_cast<double>(kMiB));
  return fmt::format("{:.2f} GiB", value / static_cast<double>(kGiB));
}

std::string CudaOomMessage(std::uint64_t requested, int ordinal, std::uint64_t total,
                           std::uint64_t allocated, std::uint64_t free) {
  return fmt::format(
      "{}. Tried to allocate {} (GPU {}; {} total capacity; {} already allocated; {} free)",
      kCudaOomPhrase, TorchFormatSize(requested), ordinal, TorchFormatSize(total),
      TorchFormatSize(allocated), TorchFormatSize(free));
}

}  // namespace clams::gpu_internal
