#include "server/file_limit.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "clams/base/log.h"

namespace clams::server {
namespace {

// The soft limit found at start-up; RLIM_INFINITY means "nothing to restore".
// Written once before any thread or child exists, read in children.
rlim_t g_inherited_soft = RLIM_INFINITY;
rlim_t g_raised_soft = RLIM_INFINITY;

std::string LimitText(rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); }

}  // namespace

StatusOr<FileLimit> RaiseFileLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    return InternalError(std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  FileLimit out;
  out.before = rl.rlim_cur;
  out.hard = rl.rlim_max;
  out.after = rl.rlim_cur;
  if (rl.rlim_cur < rl.rlim_max) {
    const rlim_t before = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) {
      return InternalError("setrlimit(RLIMIT_NOFILE) to " + LimitText(rl.rlim_max) + ": " + std::strerror(errno));
    }
    g_inherited_soft = before;
    g_raised_soft = rl.rlim_max;
    out.after = rl.rlim_max;
    CLAMS_LOG(kInfo, "open file limit raised from {} to {} (the hard limit)", LimitText(before),
              LimitText(rl.rlim_max));
  } else {
    CLAMS_LOG(kInfo, "open file limit: {} (the hard limit)", LimitText(rl.rlim_cur));
  }
  return out;
}

void RestoreInheritedFileLimit() {
  if (g_inherited_soft == RLIM_INFINITY) return;
  rlimit rl{};
  rl.rlim_cur = g_inherited_soft;
  rl.rlim_max = g_raised_soft;
  (void)::setrlimit(RLIMIT_NOFILE, &rl);
}

}  // namespace clams::server
