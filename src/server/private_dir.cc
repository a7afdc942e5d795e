#include "server/private_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

#include <fmt/format.h>

#include "clams/base/log.h"
#include "gpu/pid_namespace.h"
#include "gpu/sim_state.h"

namespace clams::server {
namespace {

constexpr mode_t kPrivateMode = S_IRWXU;  // 0700
constexpr std::size_t kOwnerFileMaxBytes = 512;
constexpr std::size_t kMkdtempSuffix = 6;  // "XXXXXX"

std::string Errno() { return std::strerror(errno); }

// What an owner file says (see kPrivateDirOwnerFile).
struct Owner {
  int pid = 0;
  std::uint64_t start = 0;  // 0: unknown
  std::optional<std::uint64_t> pidns;
  std::string boot;  // "": unknown
};

std::string ReadSmallFile(const std::filesystem::path& path, int extra_flags) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | extra_flags);
  if (fd < 0) return {};
  std::array<char, kOwnerFileMaxBytes> buf{};
  std::string text;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0 || text.size() + static_cast<std::size_t>(n) > kOwnerFileMaxBytes) break;
    text.append(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return text;
}

std::string BootId() {
  std::string id = ReadSmallFile("/proc/sys/kernel/random/boot_id", 0);
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

Owner Self() {
  Owner self;
  self.pid = ::getpid();
  self.start = gpu_internal::OwnStartTime();
  self.pidns = gpu_internal::ReadPidNamespaceInode("/proc");
  self.boot = BootId();
  return self;
}

template <typename T>
bool ParseNumber(std::string_view s, T* out) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && end == s.data() + s.size();
}

// nullopt when the file is missing, unreadable or names no pid.
std::optional<Owner> ReadOwner(const std::filesystem::path& dir) {
  const std::string text = ReadSmallFile(dir / kPrivateDirOwnerFile, O_NOFOLLOW);
  Owner o;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t eol = rest.find('\n');
    std::string_view line = rest.substr(0, eol);
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    const std::size_t space = line.find(' ');
    if (space == std::string_view::npos) continue;
    const std::string_view key = line.substr(0, space);
    const std::string_view value = line.substr(space + 1);
    std::uint64_t n = 0;
    if (key == "pid" && ParseNumber(value, &o.pid)) continue;
    if (key == "start" && ParseNumber(value, &o.start)) continue;
    if (key == "pidns" && ParseNumber(value, &n)) o.pidns = n;
    if (key == "boot") o.boot = std::string(value);
  }
  if (o.pid <= 0) return std::nullopt;
  return o;
}

bool IsStale(const Owner& o, const Owner& self) {
  if (!o.boot.empty() && !self.boot.empty() && o.boot != self.boot) return true;  // an earlier boot
  // Another PID namespace (or one we cannot tell): its processes are not ours to see.
  if (!o.pidns || !self.pidns || *o.pidns != *self.pidns) return false;
  if (o.pid == self.pid && (o.start == 0 || o.start == self.start)) return false;
  return gpu_internal::ProcessIsGone(o.pid, o.start);
}

Status WriteOwner(const std::filesystem::path& dir) {
  const Owner self = Self();
  std::string text = fmt::format("pid {}\n", self.pid);
  if (self.start != 0) text += fmt::format("start {}\n", self.start);
  if (self.pidns) text += fmt::format("pidns {}\n", *self.pidns);
  if (!self.boot.empty()) text += fmt::format("boot {}\n", self.boot);
  const std::filesystem::path path = dir / kPrivateDirOwnerFile;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return FailedPreconditionError("cannot create " + path.string() + ": " + Errno());
  const ssize_t n = ::write(fd, text.data(), text.size());
  const int write_errno = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size())) {
    return FailedPreconditionError("cannot write " + path.string() + ": " +
                                   (n < 0 ? std::string(std::strerror(write_errno)) : "short write"));
  }
  return Status::Ok();
}

}  // namespace

int RemoveStalePrivateDirs(const std::filesystem::path& base, std::string_view prefix) {
  std::error_code ec;
  std::filesystem::directory_iterator it(base, std::filesystem::directory_options::skip_permission_denied, ec);
  if (ec) return 0;
  const Owner self = Self();
  int removed = 0;
  std::string example;
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::filesystem::path path = it->path();
    const std::string name = path.filename().string();
    if (name.size() != prefix.size() + kMkdtempSuffix || name.compare(0, prefix.size(), prefix) != 0) continue;
    if (!CheckPrivateDirectory(path).ok()) continue;
    const std::optional<Owner> owner = ReadOwner(path);
    if (!owner || !IsStale(*owner, self)) continue;
    std::error_code rm;
    std::filesystem::remove_all(path, rm);
    if (rm) {
      // Another server may be removing it at the same time.
      CLAMS_LOG(kDebug, "cannot remove the stale {}: {}", path.string(), rm.message());
      continue;
    }
    if (removed++ == 0) example = fmt::format("{}, of process {}", path.string(), owner->pid);
  }
  if (removed > 0) {
    CLAMS_LOG(kInfo, "removed {} private director{} left in {} by servers that were killed (e.g. {})", removed,
              removed == 1 ? "y" : "ies", base.string(), example);
  }
  return removed;
}

Status CheckPrivateDirectory(const std::filesystem::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return FailedPreconditionError("cannot inspect " + path.string() + ": " + Errno());
  }
  if (S_ISLNK(st.st_mode)) return FailedPreconditionError(path.string() + " is a symbolic link");
  if (!S_ISDIR(st.st_mode)) return FailedPreconditionError(path.string() + " is not a directory");
  if (st.st_uid != ::geteuid()) {
    return FailedPreconditionError(fmt::format("{} is owned by uid {}, not {}", path.string(), st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 07777) != kPrivateMode) {
    return FailedPreconditionError(fmt::format("{} has mode {:04o}, not 0700", path.string(), st.st_mode & 07777));
  }
  return Status::Ok();
}

std::filesystem::path PrivateDirBase(std::string_view xdg_runtime_dir) {
  if (!xdg_runtime_dir.empty()) {
    std::error_code ec;
    const std::filesystem::path xdg(xdg_runtime_dir);
    if (std::filesystem::is_directory(xdg, ec)) return xdg;
    CLAMS_LOG(kWarning, "XDG_RUNTIME_DIR={} is not a directory; using the temporary directory",
              log::Quote(xdg_runtime_dir));
  }
  std::error_code ec;
  std::filesystem::path tmp = std::filesystem::temp_directory_path(ec);
  return ec ? std::filesystem::path("/tmp") : tmp;
}

StatusOr<PrivateDir> PrivateDir::Create(const std::filesystem::path& base, std::string_view prefix) {
  std::string pattern = (base / (std::string(prefix) + "XXXXXX")).string();
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    return FailedPreconditionError("cannot create a private directory in " + base.string() + ": " + Errno());
  }
  PrivateDir dir{std::filesystem::path(buf.data())};
  // mkdtemp asks for 0700, but the umask could take bits away; set it exactly.
  if (::chmod(dir.path_.c_str(), kPrivateMode) != 0) {
    return FailedPreconditionError("cannot set the mode of " + dir.path_.string() + ": " + Errno());
  }
  CLAMS_RETURN_IF_ERROR(CheckPrivateDirectory(dir.path_));
  CLAMS_RETURN_IF_ERROR(WriteOwner(dir.path_));
  return dir;
}

PrivateDir::PrivateDir(PrivateDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }

PrivateDir& PrivateDir::operator=(PrivateDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

PrivateDir::~PrivateDir() { Remove(); }

void PrivateDir::Remove() {
  if (path_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
  if (ec) CLAMS_LOG(kWarning, "cannot remove {}: {}", path_.string(), ec.message());
  path_.clear();
}

}  // namespace clams::server
