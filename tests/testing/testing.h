// Helpers shared by all test binaries: paths to test data, temporary
// directories, reading files.
#ifndef CLAMS_TESTING_TESTING_H_
#define CLAMS_TESTING_TESTING_H_

#include <filesystem>
#include <string>

namespace clams::testing {

/// The shared/ folder beside the repository (MMIF schema, samples, bench data).
std::filesystem::path SharedDir();
/// shared/data/mmif.
std::filesystem::path MmifDataDir();
/// The repository root and the build directory.
std::filesystem::path SourceDir();
std::filesystem::path BinaryDir();

/// A fresh empty directory, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

/// The whole content of a file; fails the current test if it cannot be read.
std::string ReadFileOrDie(const std::filesystem::path& path);
void WriteFileOrDie(const std::filesystem::path& path, const std::string& content);

}  // namespace clams::testing

#endif  // CLAMS_TESTING_TESTING_H_
