// Internal: CUDA_VISIBLE_DEVICES, interpreted as CUDA does.
#ifndef CLAMS_SRC_GPU_VISIBLE_DEVICES_H_
#define CLAMS_SRC_GPU_VISIBLE_DEVICES_H_

#include <string>
#include <string_view>
#include <vector>

namespace clams::gpu_internal {

/// The devices a process sees, in CUDA-ordinal order.
struct VisibleDevices {
  /// physical[ordinal] = index into the `uuids` given to MapVisibleDevices.
  std::vector<int> physical;
  /// Why the list ended before the last entry; empty when every entry named
  /// a device (or the variable is unset).
  std::string note;
};

/// Maps CUDA_VISIBLE_DEVICES onto the devices `uuids` (in enumeration order,
/// i.e. PCI bus order for NVML). Unset: every device in order. Set: a comma
/// list whose entries (spaces trimmed) are decimal indices, or ids starting
/// with "GPU-" or "SIM-GPU-" that equal a device's uuid or are a prefix of
/// exactly one (case-insensitive). The first entry that names no device
/// (empty, negative, out of range, unknown, ambiguous, already listed, or a
/// "MIG-" id, which clams does not support) ends the list, as in CUDA; an
/// empty value hides every device.
VisibleDevices MapVisibleDevices(bool is_set, std::string_view value,
                                 const std::vector<std::string>& uuids);

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_VISIBLE_DEVICES_H_
