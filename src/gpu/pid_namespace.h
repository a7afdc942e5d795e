// Internal: can the PIDs NVML reports be attributed to our processes?
//
// NVML reports host PIDs even inside a container's PID namespace (the driver
// does not know about PID namespaces). The check has two inputs, both
// injectable for tests: our PID namespace (the inode of <proc>/self/ns/pid;
// the initial namespace has a fixed inode) and, when that is not the initial
// one, what the PIDs NVML reports look like in our <proc>.
#ifndef CLAMS_SRC_GPU_PID_NAMESPACE_H_
#define CLAMS_SRC_GPU_PID_NAMESPACE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace clams::gpu_internal {

/// PROC_PID_INIT_INO: the inode of the initial PID namespace (0xEFFFFFFC).
inline constexpr std::uint64_t kInitialPidNamespaceInode = 0xEFFFFFFCu;

/// Whose PIDs NVML reports.
enum class PidAttribution {
  kPending,   ///< not known yet: no evidence either way
  kOwnPids,   ///< PIDs of our namespace: per-process accounting works
  kHostPids,  ///< PIDs of another namespace: account at the device level
};

/// What one PID reported by NVML is in our <proc>.
enum class PidLook {
  kAbsent,      ///< no such process here
  kNotGpuUser,  ///< a process here, without /dev/nvidia* open
  kGpuUser,     ///< a process here with /dev/nvidia* open
  kUnreadable,  ///< a process here whose open files we may not read
};

/// The inode of <proc_dir>/self/ns/pid, or nullopt if it cannot be read.
std::optional<std::uint64_t> ReadPidNamespaceInode(const std::string& proc_dir);

/// Looks PID `pid` up in <proc_dir>: <proc_dir>/<pid> and the targets of
/// the links in <proc_dir>/<pid>/fd.
PidLook LookUpPid(const std::string& proc_dir, int pid);

/// From the namespace alone: kOwnPids in the initial namespace, else
/// kPending (an unreadable namespace counts as "not the initial one").
PidAttribution AttributionFromNamespace(std::optional<std::uint64_t> ns_inode);

/// From the looks of the PIDs of one non-empty NVML process list: kOwnPids
/// if any is a GPU user here; kHostPids if every one is absent or not a GPU
/// user; else (some unreadable, none a GPU user) kPending. An empty list is
/// kPending.
PidAttribution AttributionFromPids(const std::vector<PidLook>& looks);

}  // namespace clams::gpu_internal

#endif  // CLAMS_SRC_GPU_PID_NAMESPACE_H_
