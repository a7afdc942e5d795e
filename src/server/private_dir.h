// A private directory for the server's own sockets: made with mkdtemp(3)
// (an unpredictable name another local user cannot create first), mode 0700,
// checked after creation, removed with its contents when the owner goes away.
//
//   CLAMS_ASSIGN_OR_RETURN(PrivateDir dir, PrivateDir::Create(SocketBaseDir(xdg_runtime_dir)));
//   options.socket_dir = dir.path();
#ifndef CLAMS_SRC_SERVER_PRIVATE_DIR_H_
#define CLAMS_SRC_SERVER_PRIVATE_DIR_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::server {

/// Lifecycle: Create() makes and verifies the directory; the object owns it
/// and removes it (recursively) in its destructor. Move-only. Not
/// thread-safe (one owner).
class PrivateDir {
 public:
  /// Creates `<base>/<prefix>XXXXXX` (mkdtemp) and checks it with
  /// CheckPrivateDirectory. kFailedPrecondition naming the path if it cannot
  /// be created or fails the check (the directory is then removed).
  static StatusOr<PrivateDir> Create(const std::filesystem::path& base, std::string_view prefix = "clams-");

  PrivateDir(PrivateDir&& other) noexcept;
  PrivateDir& operator=(PrivateDir&& other) noexcept;
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  ~PrivateDir();

  const std::filesystem::path& path() const { return path_; }

 private:
  explicit PrivateDir(std::filesystem::path path) : path_(std::move(path)) {}
  void Remove();

  std::filesystem::path path_;
};

/// Where the server's private directories go: `xdg_runtime_dir` (the value
/// of $XDG_RUNTIME_DIR, passed in by the caller) when it is set and names a
/// directory, else the temporary directory ($TMPDIR, else /tmp).
std::filesystem::path PrivateDirBase(std::string_view xdg_runtime_dir);

/// Ok if `path` is a directory (not a symbolic link) owned by this process's
/// effective user with mode 0700; kFailedPrecondition saying what is wrong
/// otherwise, e.g. `/tmp/clams-1 is a symbolic link`, `... is owned by uid
/// 65534, not 0`, `... has mode 0755, not 0700`.
Status CheckPrivateDirectory(const std::filesystem::path& path);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_PRIVATE_DIR_H_
