// A private directory for the server's own sockets: made with mkdtemp(3)
// (an unpredictable name another local user cannot create first), mode 0700,
// checked after creation, removed with its contents when the owner goes away.
// A process killed outright (SIGKILL, the OOM killer) cannot remove it: each
// directory names its process in an `owner` file, and the next server that
// makes one in the same base removes those whose process is gone.
//
//   RemoveStalePrivateDirs(base);
//   CLAMS_ASSIGN_OR_RETURN(PrivateDir dir, PrivateDir::Create(base));
//   options.socket_dir = dir.path();
#ifndef CLAMS_SRC_SERVER_PRIVATE_DIR_H_
#define CLAMS_SRC_SERVER_PRIVATE_DIR_H_

#include <filesystem>
#include <string>
#include <string_view>

#include "clams/base/status.h"

namespace clams::server {

/// The file in a private directory that names the process it belongs to,
/// one "key value" per line:
///   pid 1234
///   start 567890        (field 22 of /proc/1234/stat: tells a reused pid apart)
///   pidns 4026531836    (the inode of /proc/self/ns/pid)
///   boot 0c6d...        (/proc/sys/kernel/random/boot_id)
/// A field that could not be read is left out.
inline constexpr std::string_view kPrivateDirOwnerFile = "owner";

/// Lifecycle: Create() makes and verifies the directory; the object owns it
/// and removes it (recursively) in its destructor. Move-only. Not
/// thread-safe (one owner).
class PrivateDir {
 public:
  /// Creates `<base>/<prefix>XXXXXX` (mkdtemp), checks it with
  /// CheckPrivateDirectory and writes its kPrivateDirOwnerFile.
  /// kFailedPrecondition naming the path if it cannot be created, fails the
  /// check or the owner file cannot be written (the directory is then
  /// removed).
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

/// Removes the directories `<base>/<prefix>XXXXXX` that PrivateDir::Create
/// made for a process that is gone (it was killed before it could remove
/// its own): a directory of ours with mode 0700 whose owner file names a
/// process of an earlier boot, or of this boot and our PID namespace that no
/// longer runs (or whose pid now belongs to a process started at another
/// time). Everything else is left alone: a directory without a readable
/// owner file (one being created right now, or made by an older version), a
/// symbolic link, another user's, one whose owner is in another PID namespace
/// (a container sharing the base: we cannot see its processes). Logs what it
/// removed; returns how many.
int RemoveStalePrivateDirs(const std::filesystem::path& base, std::string_view prefix = "clams-");

/// Ok if `path` is a directory (not a symbolic link) owned by this process's
/// effective user with mode 0700; kFailedPrecondition saying what is wrong
/// otherwise, e.g. `/tmp/clams-1 is a symbolic link`, `... is owned by uid
/// 65534, not 0`, `... has mode 0755, not 0700`.
Status CheckPrivateDirectory(const std::filesystem::path& path);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_PRIVATE_DIR_H_
