#include "server/private_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fmt/format.h>

#include "clams/base/log.h"

namespace clams::server {
namespace {

constexpr mode_t kPrivateMode = S_IRWXU;  // 0700

std::string Errno() { return std::strerror(errno); }

}  // namespace

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
