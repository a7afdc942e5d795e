#include "gpu/pid_namespace.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <string_view>

namespace clams::gpu_internal {
namespace {

constexpr std::string_view kNvidiaDevicePrefix = "/dev/nvidia";
constexpr std::size_t kLinkBufferSize = 512;

}  // namespace

std::optional<std::uint64_t> ReadPidNamespaceInode(const std::string& proc_dir) {
  const std::string path = proc_dir + "/self/ns/pid";
  // The link reads "pid:[4026531836]"; stat() of it gives the same inode.
  std::array<char, kLinkBufferSize> buf{};
  const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
  if (n > 0) {
    std::string_view link(buf.data(), static_cast<std::size_t>(n));
    const std::size_t open = link.find('[');
    const std::size_t close = link.rfind(']');
    if (open != std::string_view::npos && close != std::string_view::npos && close > open + 1) {
      std::uint64_t inode = 0;
      auto [end, ec] = std::from_chars(link.data() + open + 1, link.data() + close, inode);
      if (ec == std::errc() && end == link.data() + close) return inode;
    }
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return static_cast<std::uint64_t>(st.st_ino);
  return std::nullopt;
}

PidLook LookUpPid(const std::string& proc_dir, int pid) {
  const std::string dir = proc_dir + "/" + std::to_string(pid);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return PidLook::kAbsent;
  const std::string fd_dir = dir + "/fd";
  DIR* d = ::opendir(fd_dir.c_str());
  if (d == nullptr) return errno == ENOENT ? PidLook::kAbsent : PidLook::kUnreadable;
  PidLook look = PidLook::kNotGpuUser;
  std::array<char, kLinkBufferSize> buf{};
  while (const dirent* entry = ::readdir(d)) {
    const std::string_view name = entry->d_name;
    if (name == "." || name == "..") continue;
    const std::string link = fd_dir + "/" + entry->d_name;
    const ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
    if (n <= 0) continue;
    std::string_view target(buf.data(), static_cast<std::size_t>(n));
    if (target.substr(0, kNvidiaDevicePrefix.size()) == kNvidiaDevicePrefix) {
      look = PidLook::kGpuUser;
      break;
    }
  }
  ::closedir(d);
  return look;
}

PidAttribution AttributionFromNamespace(std::optional<std::uint64_t> ns_inode) {
  if (ns_inode.has_value() && *ns_inode == kInitialPidNamespaceInode) {
    return PidAttribution::kOwnPids;
  }
  return PidAttribution::kPending;
}

PidAttribution AttributionFromPids(const std::vector<PidLook>& looks) {
  if (looks.empty()) return PidAttribution::kPending;
  bool any_unreadable = false;
  for (PidLook look : looks) {
    if (look == PidLook::kGpuUser) return PidAttribution::kOwnPids;
    if (look == PidLook::kUnreadable) any_unreadable = true;
  }
  return any_unreadable ? PidAttribution::kPending : PidAttribution::kHostPids;
}

}  // namespace clams::gpu_internal
