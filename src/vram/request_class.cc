// Request classes and the MD5 digest (RFC 1321) that keys them.
#include "clams/vram/request_class.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>

namespace clams::vram {
namespace {

// RFC 1321 section 3.4: the per-round shift amounts.
// clang-format off
constexpr std::array<std::uint32_t, 64> kShifts = {
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,   // round 1
    5,  9, 14, 20, 5,  9, 14, 20, 5,  9, 14, 20, 5,  9, 14, 20,   // round 2
    4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,   // round 3
    6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21};  // round 4
// clang-format on

// RFC 1321 section 3.4: T[i] = floor(2^32 * abs(sin(i + 1))).
constexpr std::array<std::uint32_t, 64> kSines = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};

constexpr std::size_t kBlockBytes = 64;
// The message length is appended as a 64-bit little-endian bit count.
constexpr std::size_t kLengthBytes = 8;

constexpr std::uint32_t RotateLeft(std::uint32_t x, std::uint32_t n) {
  return (x << n) | (x >> (32 - n));
}

class Md5 {
 public:
  void Update(std::string_view data) {
    for (unsigned char c : data) {
      block_[fill_++] = c;
      if (fill_ == kBlockBytes) {
        Transform();
        fill_ = 0;
      }
    }
    length_ += data.size();
  }

  std::array<unsigned char, 16> Finish() {
    const std::uint64_t bit_length = static_cast<std::uint64_t>(length_) * 8;
    // Padding: a single 1 bit, then zeros up to 56 bytes mod 64.
    block_[fill_++] = 0x80;
    if (fill_ > kBlockBytes - kLengthBytes) {
      while (fill_ < kBlockBytes) block_[fill_++] = 0;
      Transform();
      fill_ = 0;
    }
    while (fill_ < kBlockBytes - kLengthBytes) block_[fill_++] = 0;
    for (std::size_t i = 0; i < kLengthBytes; ++i) {
      block_[fill_++] = static_cast<unsigned char>(bit_length >> (8 * i));
    }
    Transform();
    std::array<unsigned char, 16> digest{};
    for (std::size_t i = 0; i < 4; ++i) {
      for (std::size_t j = 0; j < 4; ++j) {
        digest[4 * i + j] = static_cast<unsigned char>(state_[i] >> (8 * j));
      }
    }
    return digest;
  }

 private:
  void Transform() {
    std::array<std::uint32_t, 16> m{};
    for (std::size_t i = 0; i < 16; ++i) {
      m[i] = static_cast<std::uint32_t>(block_[4 * i]) |
             (static_cast<std::uint32_t>(block_[4 * i + 1]) << 8) |
             (static_cast<std::uint32_t>(block_[4 * i + 2]) << 16) |
             (static_cast<std::uint32_t>(block_[4 * i + 3]) << 24);
    }
    std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    for (std::uint32_t i = 0; i < 64; ++i) {
      std::uint32_t f = 0;
      std::uint32_t g = 0;
      if (i < 16) {
        f = (b & c) | (~b & d);
        g = i;
      } else if (i < 32) {
        f = (d & b) | (~d & c);
        g = (5 * i + 1) % 16;
      } else if (i < 48) {
        f = b ^ c ^ d;
        g = (3 * i + 5) % 16;
      } else {
        f = c ^ (b | ~d);
        g = (7 * i) % 16;
      }
      const std::uint32_t rotated = RotateLeft(a + f + kSines[i] + m[g], kShifts[i]);
      a = d;
      d = c;
      c = b;
      b = b + rotated;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
  }

  // RFC 1321 section 3.3: the initial buffer A, B, C, D.
  std::array<std::uint32_t, 4> state_ = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
  std::array<unsigned char, kBlockBytes> block_{};
  std::size_t fill_ = 0;
  std::size_t length_ = 0;
};

}  // namespace

std::string Md5Hex(std::string_view data) {
  Md5 md5;
  md5.Update(data);
  const auto digest = md5.Finish();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * digest.size());
  for (unsigned char byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xf]);
  }
  return out;
}

RequestClass RequestClass::Make(std::string app_id, std::string app_version,
                                std::string parameters_json) {
  RequestClass c;
  std::string text;
  text.reserve(app_id.size() + app_version.size() + parameters_json.size() + 2);
  text.append(app_id).append("\n").append(app_version).append("\n").append(parameters_json);
  c.key = Md5Hex(text);
  c.app_id = std::move(app_id);
  c.app_version = std::move(app_version);
  c.parameters_json = std::move(parameters_json);
  return c;
}

}  // namespace clams::vram
