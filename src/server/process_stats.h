// What this process uses, from /proc/self, for the front's process metrics
// (clams_process_resident_memory_bytes, clams_process_open_fds,
// clams_process_cpu_seconds_total), read at every scrape.
#ifndef CLAMS_SRC_SERVER_PROCESS_STATS_H_
#define CLAMS_SRC_SERVER_PROCESS_STATS_H_

#include <optional>
#include <string_view>

namespace clams::server {

class Metrics;

/// User plus system CPU time in seconds from the text of /proc/<pid>/stat
/// (fields 14 and 15, in clock ticks). The command name (field 2) may hold
/// spaces and parentheses. nullopt if the text does not parse.
std::optional<double> CpuSecondsFromStat(std::string_view stat, long ticks_per_second);

/// Resident bytes from the text of /proc/<pid>/statm (second field, pages).
std::optional<double> ResidentBytesFromStatm(std::string_view statm, long page_bytes);

/// The same for this process (nullopt where /proc cannot be read), and the
/// number of its open file descriptors.
std::optional<double> ProcessCpuSeconds();
std::optional<double> ProcessResidentBytes();
std::optional<double> ProcessOpenFds();

/// Declares the three process metrics as function metrics of `metrics`.
void DeclareProcessMetrics(Metrics& metrics);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_PROCESS_STATS_H_
