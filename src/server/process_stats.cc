#include "server/process_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "server/metrics.h"

namespace clams::server {
namespace {

std::optional<std::string> ReadAll(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double OrNan(std::optional<double> v) { return v ? *v : std::numeric_limits<double>::quiet_NaN(); }

}  // namespace

std::optional<double> CpuSecondsFromStat(std::string_view stat, long ticks_per_second) {
  // "pid (comm) state ppid ...": the command name ends at the last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string_view::npos || ticks_per_second <= 0) return std::nullopt;
  std::istringstream rest{std::string(stat.substr(close + 1))};
  // Fields 3..13 come before utime (14) and stime (15).
  std::string field;
  for (int i = 3; i <= 13; ++i) {
    if (!(rest >> field)) return std::nullopt;
  }
  unsigned long long utime = 0, stime = 0;
  if (!(rest >> utime >> stime)) return std::nullopt;
  return static_cast<double>(utime + stime) / static_cast<double>(ticks_per_second);
}

std::optional<double> ResidentBytesFromStatm(std::string_view statm, long page_bytes) {
  std::istringstream in{std::string(statm)};
  unsigned long long size = 0, resident = 0;
  if (page_bytes <= 0 || !(in >> size >> resident)) return std::nullopt;
  return static_cast<double>(resident) * static_cast<double>(page_bytes);
}

std::optional<double> ProcessCpuSeconds() {
  auto stat = ReadAll("/proc/self/stat");
  if (!stat) return std::nullopt;
  return CpuSecondsFromStat(*stat, ::sysconf(_SC_CLK_TCK));
}

std::optional<double> ProcessResidentBytes() {
  auto statm = ReadAll("/proc/self/statm");
  if (!statm) return std::nullopt;
  return ResidentBytesFromStatm(*statm, ::sysconf(_SC_PAGESIZE));
}

std::optional<double> ProcessOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  const int own = ::dirfd(dir);
  double count = 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    if (std::atoi(e->d_name) == own) continue;  // the descriptor that reads the directory
    ++count;
  }
  ::closedir(dir);
  return count;
}

void DeclareProcessMetrics(Metrics& m) {
  using T = Metrics::Type;
  m.DeclareFunction("clams_process_resident_memory_bytes", "Resident memory of the front process.", T::kGauge,
                    [] { return OrNan(ProcessResidentBytes()); });
  m.DeclareFunction("clams_process_open_fds", "Open file descriptors of the front process.", T::kGauge,
                    [] { return OrNan(ProcessOpenFds()); });
  m.DeclareFunction("clams_process_cpu_seconds_total", "User and system CPU time of the front process.",
                    T::kCounter, [] { return OrNan(ProcessCpuSeconds()); });
}

}  // namespace clams::server
