// Internal: text formats shared by the GPU backends.
#ifndef CLAMS_SRC_GPU_FORMAT_H_
#define CLAMS_SRC_GPU_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace clams::gpu_internal {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = kKiB * 1024;
inline constexpr std::uint64_t kGiB = kMiB * 1024;
inline constexpr std::uint64_t kTiB = kGiB * 1024;

/// bytes / 2^20 rounded to the nearest integer, halves to even (Python's
/// round(bytes / 1048576)).
std::uint64_t RoundToMiB(std::uint64_t bytes);

/// PyTorch's format_size(): "512 bytes", "1.50 KiB", "256.00 MiB", "10.00 GiB"
/// (a unit is used once the value exceeds the previous one).
std::string TorchFormatSize(std::uint64_t bytes);

/// "CUDA out of memory. Tried to allocate <r> (GPU <ordinal>; <t> total
/// capacity; <a> already allocated; <f> free)", sizes as TorchFormatSize.
std::string CudaOomMessage(std::uint64_t requested, int ordinal, std::uint64_t total,
                           std::uint64_t allocated, std::uint64_t free);

/// The words every out-of-memory message contains (apps and the server
/// recognise an OOM by them, as PyTorch users do).
inline constexpr std::string_view kCudaOomPhrase = "CUDA out of memory";

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_FORMAT_H_
