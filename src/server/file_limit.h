// The open-file limit of a server process. A front holds one descriptor per
// client connection (and per worker connection), so the usual soft limit of
// 1024 is reached long before the hard limit (often 524288 or more): the
// server raises its soft limit to the hard one at start-up.
#ifndef CLAMS_SRC_SERVER_FILE_LIMIT_H_
#define CLAMS_SRC_SERVER_FILE_LIMIT_H_

#include <cstdint>

#include "clams/base/status.h"

namespace clams::server {

struct FileLimit {
  std::uint64_t before = 0;  ///< soft RLIMIT_NOFILE at the call
  std::uint64_t after = 0;   ///< soft RLIMIT_NOFILE now (the hard limit unless it could not be raised)
  std::uint64_t hard = 0;
};

/// Raises the soft RLIMIT_NOFILE of this process to its hard limit and logs
/// the result (one info line). Remembers the soft limit it found for
/// RestoreInheritedFileLimit(). kInternal if getrlimit/setrlimit fail (the
/// process then keeps its limit and still serves). Call once, from main's
/// thread, before starting threads.
StatusOr<FileLimit> RaiseFileLimit();

/// In a child after fork() and before exec(): puts back the soft limit
/// RaiseFileLimit() found, so programs the server starts (apps that use
/// select(), which breaks on descriptors >= 1024) inherit the limit they
/// would have had without us. Async-signal-safe; a no-op if RaiseFileLimit()
/// changed nothing.
void RestoreInheritedFileLimit();

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_FILE_LIMIT_H_
