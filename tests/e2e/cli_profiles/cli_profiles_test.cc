// `clams profiles list|show|clear`, run as a separate process the way
// operators use it.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "clams/mmif/json.h"
#include "clams/vram/profile_store.h"
#include "testing/status_matchers.h"
#include "testing/testing.h"

extern char** environ;

namespace clams::testing {
namespace {

namespace fs = std::filesystem;
namespace json = ::boost::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kWhisper[] = "http://apps.clams.ai/whisper-wrapper/v10";
constexpr char kWhisperDir[] = "http---apps.clams.ai-whisper-wrapper-v10";
constexpr char kSplitter[] = "http://apps.clams.ai/sentence-splitter/v1";
constexpr std::uint64_t kMiB = std::uint64_t{1} << 20;

struct Result {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Environment changes: a value sets the variable, nullopt removes it.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

// Runs `clams ARGS...` with the profile variables removed from the
// environment unless `env` sets them.
Result RunClams(const std::vector<std::string>& args, EnvChanges env = {}) {
  for (const char* name : {"CLAMS_PROFILE_DIR", "XDG_CACHE_HOME"}) env.emplace(name, std::nullopt);
  TempDir io;
  const fs::path out_path = io.path() / "out";
  const fs::path err_path = io.path() / "err";
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> argv_store = {(BinaryDir() / "src" / "cli" / "clams").string()};
  argv_store.insert(argv_store.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_store) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry = *e;
    if (env.count(entry.substr(0, entry.find('='))) == 0) env_store.push_back(entry);
  }
  for (const auto& [name, value] : env) {
    if (value) env_store.push_back(name + "=" + *value);
  }
  std::vector<char*> envp;
  for (std::string& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = 0;
  Result r;
  const int spawn = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  EXPECT_EQ(spawn, 0) << "cannot run " << argv[0];
  if (spawn != 0) return r;
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFileOrDie(out_path);
  r.err = ReadFileOrDie(err_path);
  return r;
}

json::object ParseObject(const std::string& text) {
  auto v = mmif::ParseJson(text);
  EXPECT_THAT(v, IsOk()) << text;
  if (!v.ok() || !v->is_object()) return {};
  return v->get_object();
}

class CliProfilesTest : public ::testing::Test {
 protected:
  // Two whisper classes (large measured cold and warm, tiny cold) and one
  // sentence-splitter class.
  void SetUp() override {
    root_ = tmp_.path() / "profiles";
    auto whisper = vram::ProfileStore::Open({.root = root_, .app_id = kWhisper});
    ASSERT_THAT(whisper, IsOk());
    large_ = vram::RequestClass::Make(kWhisper, "v10", R"({"model":"large"})");
    tiny_ = vram::RequestClass::Make(kWhisper, "v10", R"({"model":"tiny"})");
    json::object large_params{{"model", "large"}};
    json::object tiny_params{{"model", "tiny"}};
    ASSERT_THAT((*whisper)->Record(large_, large_params, 11264 * kMiB, false, 9000, "GPU 0"),
                IsOk());
    ASSERT_THAT((*whisper)->Record(large_, large_params, 1536 * kMiB, true, 3000, "GPU 0"), IsOk());
    ASSERT_THAT((*whisper)->Record(tiny_, tiny_params, 1200 * kMiB, false, 800, "GPU 0"), IsOk());
    auto splitter = vram::ProfileStore::Open({.root = root_, .app_id = kSplitter});
    ASSERT_THAT(splitter, IsOk());
    split_ = vram::RequestClass::Make(kSplitter, "v1", "{}");
    ASSERT_THAT((*splitter)->Record(split_, {}, 0, false, 5, "GPU 0"), IsOk());
  }

  std::vector<std::string> Args(std::vector<std::string> args) {
    args.push_back("--profile-dir");
    args.push_back(root_.string());
    return args;
  }

  TempDir tmp_;
  fs::path root_;
  vram::RequestClass large_;
  vram::RequestClass tiny_;
  vram::RequestClass split_;
};

TEST_F(CliProfilesTest, ListShowsEveryProfileWithItsNumbers) {
  Result r = RunClams(Args({"profiles", "list"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("CLASS KEY"));
  EXPECT_THAT(r.out, HasSubstr("PEAK MiB"));
  EXPECT_THAT(r.out, HasSubstr("3 profile(s) under " + root_.string()));
  // One line per profile: key, app, peak MiB, warm MiB, samples, OOMs, updated, parameters.
  EXPECT_THAT(r.out, ::testing::ContainsRegex(large_.key + " +" + kWhisper +
                                              " +11264 +1536 +1\\+1 +0 +[0-9T:-]+Z +"
                                              "\\{\"model\":\"large\"\\}"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(tiny_.key + " +" + kWhisper +
                                              " +1200 +- +1\\+0 +0 .*\\{\"model\":\"tiny\"\\}"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex(split_.key + " +" + kSplitter + " +0 +- +1\\+0"));
}

TEST_F(CliProfilesTest, ListOneAppAsJson) {
  Result r = RunClams(Args({"profiles", "list", "--app", kWhisper, "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object out = ParseObject(r.out);
  EXPECT_EQ(out["profile_dir"].as_string(), root_.string());
  const json::array& profiles = out["profiles"].as_array();
  ASSERT_EQ(profiles.size(), 2u);
  // Sorted by key within the app.
  const bool large_first = large_.key < tiny_.key;
  const json::object& large = profiles[large_first ? 0 : 1].as_object();
  EXPECT_EQ(large.at("class_key").as_string(), large_.key);
  EXPECT_EQ(large.at("app").as_string(), kWhisper);
  EXPECT_EQ(large.at("app_dir").as_string(), kWhisperDir);
  EXPECT_EQ(large.at("peak_bytes").to_number<std::uint64_t>(), 11264 * kMiB);
  EXPECT_EQ(large.at("warm_peak_bytes").to_number<std::uint64_t>(), 1536 * kMiB);
  EXPECT_EQ(large.at("samples").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(large.at("warm_samples").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(large.at("oom_events").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(large.at("mean_duration_ms").to_number<double>(), 6000.0);
  EXPECT_EQ(large.at("parameters").at("model").as_string(), "large");
  EXPECT_EQ(large.at("device").as_string(), "GPU 0");
  EXPECT_EQ(large.at("app_version").as_string(), "v10");
  EXPECT_TRUE(out["errors"].as_array().empty());
  // The directory name works as --app too.
  Result by_dir = RunClams(Args({"profiles", "list", "--app", kWhisperDir, "--json"}));
  EXPECT_EQ(ParseObject(by_dir.out)["profiles"].as_array().size(), 2u);
}

TEST_F(CliProfilesTest, DefaultDirectoryFollowsTheEnvironment) {
  // CLAMS_PROFILE_DIR first.
  Result r = RunClams({"profiles", "list", "--json"},
                      {{"CLAMS_PROFILE_DIR", root_.string()}, {"XDG_CACHE_HOME", "/nonexistent"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseObject(r.out)["profiles"].as_array().size(), 3u);
  // Then $XDG_CACHE_HOME/clams/memory_profiles.
  const fs::path xdg = tmp_.path() / "xdg";
  fs::create_directories(xdg / "clams");
  fs::rename(root_, xdg / "clams" / "memory_profiles");
  r = RunClams({"profiles", "list", "--json"}, {{"XDG_CACHE_HOME", xdg.string()}});
  json::object out = ParseObject(r.out);
  EXPECT_EQ(out["profile_dir"].as_string(), (xdg / "clams" / "memory_profiles").string());
  EXPECT_EQ(out["profiles"].as_array().size(), 3u);
  // Then $HOME/.cache/clams/memory_profiles.
  const fs::path home = tmp_.path() / "home";
  fs::create_directories(home / ".cache");
  fs::rename(xdg / "clams", home / ".cache" / "clams");
  r = RunClams({"profiles", "list", "--json"}, {{"HOME", home.string()}});
  out = ParseObject(r.out);
  EXPECT_EQ(out["profile_dir"].as_string(),
            (home / ".cache" / "clams" / "memory_profiles").string());
  EXPECT_EQ(out["profiles"].as_array().size(), 3u);
}

TEST_F(CliProfilesTest, ListOfAnEmptyOrMissingDirectory) {
  Result r = RunClams({"profiles", "list", "--profile-dir", (tmp_.path() / "none").string()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("no memory profiles under " + (tmp_.path() / "none").string()));
  r = RunClams(Args({"profiles", "list", "--app", "no-such-app", "--json"}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(ParseObject(r.out)["profiles"].as_array().empty());
}

TEST_F(CliProfilesTest, ShowByKeyOrUniquePrefix) {
  Result r = RunClams(Args({"profiles", "show", large_.key}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("class key:     " + large_.key));
  EXPECT_THAT(r.out, HasSubstr(std::string("app:           ") + kWhisper));
  EXPECT_THAT(r.out, HasSubstr("peak:          11811160064 bytes (11264 MiB)"));
  EXPECT_THAT(r.out, HasSubstr("warm peak:     1610612736 bytes (1536 MiB)"));
  EXPECT_THAT(r.out, HasSubstr("samples:       1 full, 1 warm"));
  EXPECT_THAT(r.out, HasSubstr("mean duration: 6000.0 ms"));
  EXPECT_THAT(r.out, HasSubstr("\"model\": \"large\""));

  // The shortest prefix that no other key shares.
  std::size_t n = 1;
  for (const auto* other : {&tiny_, &split_}) {
    while (other->key.compare(0, n, large_.key, 0, n) == 0) ++n;
  }
  r = RunClams(Args({"profiles", "show", large_.key.substr(0, n), "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json::object out = ParseObject(r.out);
  EXPECT_EQ(out["class_key"].as_string(), large_.key);
  EXPECT_EQ(out["peak_bytes"].to_number<std::uint64_t>(), 11264 * kMiB);
}

TEST_F(CliProfilesTest, ShowFailsForUnknownOrAmbiguousKeys) {
  Result r = RunClams(Args({"profiles", "show", "ffffffffffffffffffffffffffffffff0"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no profile ffffffffffffffffffffffffffffffff0"));
  r = RunClams(Args({"profiles", "show", ""}));  // every key starts with ""
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("matches 3 profiles"));
  r = RunClams(Args({"profiles", "show"}));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("KEY"));
}

TEST_F(CliProfilesTest, CorruptFilesAreReportedNotFatal) {
  const fs::path bad = root_ / kWhisperDir / "memory_0badc0de.json";
  WriteFileOrDie(bad, "{\"peak_bytes\": ");
  Result r = RunClams(Args({"profiles", "list"}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("3 profile(s)"));
  EXPECT_THAT(r.err, HasSubstr("skipping " + bad.string()));
  r = RunClams(Args({"profiles", "list", "--json"}));
  json::object out = ParseObject(r.out);
  ASSERT_EQ(out["errors"].as_array().size(), 1u);
  EXPECT_EQ(out["errors"].as_array()[0].at("path").as_string(), bad.string());
  r = RunClams(Args({"profiles", "show", "0badc0de"}));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("malformed JSON"));
  // clear removes it like any other profile.
  r = RunClams(Args({"profiles", "clear", "0badc0de"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(bad));
}

TEST_F(CliProfilesTest, ReadsPythonSdkProfiles) {
  const fs::path dir = root_ / "http---apps.clams.ai-example-app-v1.0";
  fs::create_directories(dir);
  WriteFileOrDie(dir / "memory_3bdf005f28916e0ccc9e51154d896571.json",
                 "{\n  \"peak_bytes\": 3758096384,\n  \"parameters\": {\"model\": \"turbo\"}\n}");
  Result r = RunClams(Args({"profiles", "list", "--app", "http://apps.clams.ai/example-app/v1.0"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("3bdf005f28916e0ccc9e51154d896571 +"
                                              "http---apps.clams.ai-example-app-v1.0 +3584 +- +"
                                              "0\\+0 +0 +- +\\{\"model\":\"turbo\"\\}"));
}

TEST_F(CliProfilesTest, ClearOneAnAppOrEverything) {
  Result r = RunClams(Args({"profiles", "clear", tiny_.key}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("removed 1 profile(s)"));
  EXPECT_FALSE(fs::exists(root_ / kWhisperDir / vram::ProfileFileName(tiny_.key)));
  EXPECT_TRUE(fs::exists(root_ / kWhisperDir / vram::ProfileFileName(large_.key)));

  r = RunClams(Args({"profiles", "clear", "--app", kSplitter, "--json"}));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseObject(r.out)["removed"].to_number<std::uint64_t>(), 1u);
  EXPECT_TRUE(fs::exists(root_ / kWhisperDir / vram::ProfileFileName(large_.key)));

  r = RunClams(Args({"profiles", "clear", tiny_.key}));
  EXPECT_EQ(r.exit_code, 1);  // already gone
  EXPECT_THAT(r.err, HasSubstr("no profile " + tiny_.key));

  r = RunClams(Args({"profiles", "clear"}));
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("removed 1 profile(s)"));
  r = RunClams(Args({"profiles", "list"}));
  EXPECT_THAT(r.out, HasSubstr("no memory profiles"));
  EXPECT_THAT(r.out, Not(HasSubstr(large_.key)));
}

}  // namespace
}  // namespace clams::testing
