// Response decoration: what the front adds to a worker's successful answer
// (DESIGN.md §3.8). hwFetch: the measured hardware record in the new views'
// `appProfiling.hardware.cuda`; runningTime, for an external app that does
// not declare it, in `appProfiling.runningTime`. Loop thread only.
#ifndef CLAMS_SRC_SERVER_DECORATE_H_
#define CLAMS_SRC_SERVER_DECORATE_H_

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "clams/mmif/json.h"

namespace clams::server {

struct Decoration {
  bool hardware = false;      ///< write appProfiling.hardware (cpu kept when present, cuda replaced)
  bool running_time = false;  ///< write appProfiling.runningTime
  boost::json::array cuda;    ///< the hardware record's cuda entries
  std::chrono::microseconds elapsed{0};
  bool pretty = false;
  /// The views this request added, as the worker named them; for an
  /// external app also every view of `app_identifier` not in the input.
  std::vector<std::string> new_views;
  bool find_new_views = false;
  std::string app_identifier;
};

/// `answer` with the decoration applied to its new views; `answer`
/// unchanged if it is not an MMIF with views. `input_mmif`: the MMIF the
/// request sent (to tell new views from old ones when find_new_views).
std::string DecorateAnswer(const std::string& answer, std::string_view input_mmif, const Decoration& decoration);

}  // namespace clams::server

#endif  // CLAMS_SRC_SERVER_DECORATE_H_
