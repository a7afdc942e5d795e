// clams/base/version.h
//
// The version of clams-cpp, as `clams --version`, every app's `--version` and
// the `clams_build_info` metric report it.
//
// Example:
//
//   std::cout << "clams " << clams::Version() << "\n";  // clams 0.1.0+g1de524c0a1
#ifndef CLAMS_BASE_VERSION_H_
#define CLAMS_BASE_VERSION_H_

#include <string_view>

namespace clams {

/// The CMake project version, plus the git revision when built from a git
/// checkout ("0.1.0+g1de524c0a1"; "0.1.0" at the tag v0.1.0). Thread-safe.
std::string_view Version();

}  // namespace clams

#endif  // CLAMS_BASE_VERSION_H_
