// `clams gpu`, `clams gpu sim-alloc` and `clams gpu sim-reset`, run as
// separate processes the way operators and the server tests use them.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "testing/process.h"
#include "testing/testing.h"

extern char** environ;

namespace clams::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

std::string ClamsBinary() { return (BinaryDir() / "src" / "cli" / "clams").string(); }

// Environment changes: a value sets the variable, nullopt removes it.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

std::vector<std::string> Environment(const EnvChanges& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    if (changes.count(name) == 0) env.push_back(entry);
  }
  for (const auto& [name, value] : changes) {
    if (value.has_value()) env.push_back(name + "=" + *value);
  }
  return env;
}

// A running `clams` process with stdout on a pipe and stderr in a file.
class ClamsProcess {
 public:
  ClamsProcess(const std::vector<std::string>& args, const EnvChanges& env,
               const std::filesystem::path& stderr_path) {
    int out[2];
    EXPECT_EQ(::pipe(out), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    std::vector<std::string> argv_store = {ClamsBinary()};
    argv_store.insert(argv_store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_store = Environment(env);
    std::vector<char*> envp;
    for (std::string& e : env_store) envp.push_back(e.data());
    envp.push_back(nullptr);
    EXPECT_EQ(posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data()), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(out[1]);
    out_ = out[0];
    stderr_path_ = stderr_path;
  }
  ~ClamsProcess() {
    ::close(out_);
    if (!exited_) {
      ::kill(pid_, SIGKILL);
      Wait();
    }
  }
  int pid() const { return pid_; }

  // The next line of standard output ("" at end of file).
  std::string ReadLine() {
    std::string line;
    char c;
    while (::read(out_, &c, 1) == 1) {
      if (c == '\n') return line;
      line += c;
    }
    return line;
  }
  std::string ReadRest() {
    std::string text;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_, buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
    return text;
  }
  // Exit code, or -signal.
  int Wait() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  std::string Stderr() const { return ReadFileOrDie(stderr_path_); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool exited_ = false;
  std::filesystem::path stderr_path_;
};

struct Result {
  int exit_code;
  std::string out;
  std::string err;
};

class ClamsGpuTest : public ::testing::Test {
 protected:
  ClamsGpuTest() {
    env_["CLAMS_SIM_GPUS"] = "0:24GiB,1:16GiB";
    env_["CLAMS_SIM_STATE"] = (dir_.path() / "sim.state").string();
    env_["CUDA_VISIBLE_DEVICES"] = std::nullopt;
    env_["CLAMS_NVML_LIBRARY"] = (dir_.path() / "no-libnvidia-ml.so.1").string();
  }

  Result Run(const std::vector<std::string>& args) {
    ClamsProcess p(args, env_, dir_.path() / ("stderr-" + std::to_string(++runs_)));
    Result r;
    r.out = p.ReadRest();
    r.exit_code = p.Wait();
    r.err = p.Stderr();
    return r;
  }

  std::unique_ptr<ClamsProcess> Start(const std::vector<std::string>& args) {
    return std::make_unique<ClamsProcess>(args, env_,
                                          dir_.path() / ("stderr-" + std::to_string(++runs_)));
  }

  TempDir dir_;
  EnvChanges env_;
  int runs_ = 0;
};

std::string SimJson(std::uint64_t used0, std::uint64_t high0, std::uint64_t oom0) {
  constexpr std::uint64_t kTotal0 = 24ull << 30;
  constexpr std::uint64_t kTotal1 = 16ull << 30;
  return "{\"devices\":[{\"index\":0,\"name\":\"Simulated GPU 0\",\"uuid\":\"SIM-GPU-0\","
         "\"total_bytes\":" +
         std::to_string(kTotal0) + ",\"used_bytes\":" + std::to_string(used0) +
         ",\"free_bytes\":" + std::to_string(kTotal0 - used0) +
         ",\"high_water_bytes\":" + std::to_string(high0) +
         ",\"oom_events\":" + std::to_string(oom0) +
         "},{\"index\":1,\"name\":\"Simulated GPU 1\",\"uuid\":\"SIM-GPU-1\",\"total_bytes\":" +
         std::to_string(kTotal1) + ",\"used_bytes\":0,\"free_bytes\":" + std::to_string(kTotal1) +
         ",\"high_water_bytes\":0,\"oom_events\":0}],\"backend\":\"simulated\"}\n";
}

TEST_F(ClamsGpuTest, ListsSimulatedGpusAsJson) {
  Result r = Run({"gpu", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, SimJson(0, 0, 0));
}

TEST_F(ClamsGpuTest, ListsSimulatedGpusAsATable) {
  Result r = Run({"gpu"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "backend: simulated\n"
            "INDEX  NAME             UUID       TOTAL     USED  FREE      HIGH-WATER  OOM\n"
            "0      Simulated GPU 0  SIM-GPU-0  24.0 GiB  0 B   24.0 GiB  0 B         0\n"
            "1      Simulated GPU 1  SIM-GPU-1  16.0 GiB  0 B   16.0 GiB  0 B         0\n");
}

TEST_F(ClamsGpuTest, APinnedProcessSeesOneDeviceAsOrdinalZero) {
  env_["CUDA_VISIBLE_DEVICES"] = "SIM-GPU-1";
  Result r = Run({"gpu", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"devices\":[{\"index\":0,\"name\":\"Simulated GPU 1\",\"uuid\":\"SIM-GPU-1\","
            "\"total_bytes\":17179869184,\"used_bytes\":0,\"free_bytes\":17179869184,"
            "\"high_water_bytes\":0,\"oom_events\":0}],\"backend\":\"simulated\"}\n");
}

TEST_F(ClamsGpuTest, NoGpusWithoutTheNvmlLibrary) {
  env_["CLAMS_SIM_GPUS"] = std::nullopt;
  Result table = Run({"gpu"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_EQ(table.out, "no GPUs found (backend: none)\n");
  EXPECT_THAT(table.err, HasSubstr("no GPUs (backend: none): cannot load "));
  Result json = Run({"gpu", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(json.out, "{\"devices\":[],\"backend\":\"none\"}\n");
}

TEST_F(ClamsGpuTest, ListsNvmlGpusThroughTheLibrary) {
  WriteFileOrDie(dir_.path() / "nvml.conf",
                 "device GPU-aaaaaaaa-1111-2222-3333-444444444444 85899345920 1073741824 "
                 "NVIDIA H100 80GB HBM3\n"
                 "device GPU-bbbbbbbb-1111-2222-3333-444444444444 25769803776 0 NVIDIA A10\n"
                 "process 0 4242 1073741824\n");
  env_["CLAMS_SIM_GPUS"] = std::nullopt;
  env_["CLAMS_NVML_LIBRARY"] = CLAMS_FAKE_NVML;
  env_["FAKE_NVML_CONFIG"] = (dir_.path() / "nvml.conf").string();
  env_["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID";
  Result r = Run({"gpu", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "{\"devices\":[{\"index\":0,\"name\":\"NVIDIA H100 80GB HBM3\",\"uuid\":"
            "\"GPU-aaaaaaaa-1111-2222-3333-444444444444\",\"total_bytes\":85899345920,"
            "\"used_bytes\":1073741824,\"free_bytes\":84825604096},{\"index\":1,\"name\":"
            "\"NVIDIA A10\",\"uuid\":\"GPU-bbbbbbbb-1111-2222-3333-444444444444\","
            "\"total_bytes\":25769803776,\"used_bytes\":0,\"free_bytes\":25769803776}],"
            "\"backend\":\"nvml\"}\n");
  env_["CUDA_VISIBLE_DEVICES"] = "GPU-bbbb,GPU-aaaa";
  Result pinned = Run({"gpu"});
  EXPECT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_THAT(pinned.out,
              StartsWith("backend: nvml\n"
                         "INDEX  NAME                   UUID                             "
                         "         TOTAL     USED     FREE\n"
                         "0      NVIDIA A10             GPU-bbbbbbbb-1111-2222-3333-"
                         "444444444444  24.0 GiB  0 B      24.0 GiB\n"
                         "1      NVIDIA H100 80GB HBM3  GPU-aaaaaaaa-1111-2222-3333-"
                         "444444444444  80.0 GiB  1.0 GiB  79.0 GiB\n"));
}

TEST_F(ClamsGpuTest, SimAllocHoldsUntilSigterm) {
  auto holder = Start({"gpu", "sim-alloc", "10GiB"});
  const std::string line = holder->ReadLine();
  EXPECT_EQ(line, "holding 10.0 GiB (10737418240 bytes) on simulated GPU 0 (SIM-GPU-0), pid " +
                      std::to_string(holder->pid()) + ", until SIGTERM or SIGINT");
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(10ull << 30, 10ull << 30, 0));
  Result table = Run({"gpu"});
  const std::string pid = std::to_string(holder->pid());
  const std::size_t width = std::max<std::size_t>(pid.size(), 3);
  EXPECT_THAT(table.out, HasSubstr("\nPID" + std::string(width - 3 + 2, ' ') + "GPU  USED\n" + pid +
                                   std::string(width - pid.size() + 2, ' ') + "0    10.0 GiB\n"));
  ASSERT_EQ(::kill(holder->pid(), SIGTERM), 0);
  EXPECT_EQ(holder->ReadRest(), "released on SIGTERM\n");
  EXPECT_EQ(holder->Wait(), 0);
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(0, 10ull << 30, 0));
}

TEST_F(ClamsGpuTest, JsonWithProcessesListsEachHolderInBytes) {
  // Nothing held: an empty list after the same device entries as plain --json.
  EXPECT_EQ(Run({"gpu", "--json", "--processes"}).out,
            SimJson(0, 0, 0).substr(0, SimJson(0, 0, 0).rfind(",\"backend\"")) +
                ",\"per_process_accounting\":true,\"processes\":[],\"backend\":\"simulated\"}\n");
  auto holder = Start({"gpu", "sim-alloc", "1536MiB", "--device", "1"});
  ASSERT_THAT(holder->ReadLine(), StartsWith("holding"));
  Result r = Run({"gpu", "--json", "--processes"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(",\"per_process_accounting\":true,\"processes\":[{\"pid\":" +
                               std::to_string(holder->pid()) +
                               ",\"device\":1,\"used_bytes\":1610612736}],\"backend\":\"simulated\"}\n"));
  ASSERT_EQ(::kill(holder->pid(), SIGTERM), 0);
  EXPECT_EQ(holder->Wait(), 0);
}

TEST_F(ClamsGpuTest, SimAllocReleasesOnSigint) {
  auto holder = Start({"gpu", "sim-alloc", "1GiB", "--device", "1"});
  EXPECT_THAT(holder->ReadLine(), StartsWith("holding 1.0 GiB (1073741824 bytes) on simulated "
                                             "GPU 1 (SIM-GPU-1)"));
  ASSERT_EQ(::kill(holder->pid(), SIGINT), 0);
  EXPECT_EQ(holder->ReadRest(), "released on SIGINT\n");
  EXPECT_EQ(holder->Wait(), 0);
}

TEST_F(ClamsGpuTest, SimAllocEndsAfterItsSeconds) {
  const auto start = std::chrono::steady_clock::now();
  Result r = Run({"gpu", "sim-alloc", "2GiB", "--seconds", "0.3"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, MatchesRegex("holding 2.0 GiB \\(2147483648 bytes\\) on simulated GPU 0 "
                                  "\\(SIM-GPU-0\\), pid [0-9]+, for 0.3 s\nreleased\n"));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(0, 2ull << 30, 0));
}

TEST_F(ClamsGpuTest, SimAllocThatDoesNotFitExitsWithTheOomMessage) {
  auto holder = Start({"gpu", "sim-alloc", "20GiB"});
  ASSERT_THAT(holder->ReadLine(), StartsWith("holding"));
  Result r = Run({"gpu", "sim-alloc", "10GiB", "--seconds", "5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("clams gpu sim-alloc: CUDA out of memory. Tried to allocate "
                               "10.00 GiB (GPU 0; 24.00 GiB total capacity; 20.00 GiB already "
                               "allocated; 4.00 GiB free)\n"));
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(20ull << 30, 20ull << 30, 1));
}

TEST_F(ClamsGpuTest, TheMemoryOfAKilledHolderIsFreed) {
  auto holder = Start({"gpu", "sim-alloc", "8GiB"});
  ASSERT_THAT(holder->ReadLine(), StartsWith("holding"));
  ASSERT_EQ(::kill(holder->pid(), SIGKILL), 0);
  EXPECT_EQ(holder->Wait(), -SIGKILL);
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(0, 8ull << 30, 0));
}

TEST_F(ClamsGpuTest, SimResetClearsTheCounters) {
  EXPECT_EQ(Run({"gpu", "sim-alloc", "30GiB"}).exit_code, 1);
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(0, 0, 1));
  Result r = Run({"gpu", "sim-reset"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "reset the simulated GPU state " + *env_["CLAMS_SIM_STATE"] + "\n");
  EXPECT_EQ(Run({"gpu", "--json"}).out, SimJson(0, 0, 0));
}

TEST_F(ClamsGpuTest, UsageErrorsExitWithTwo) {
  Result bad_bytes = Run({"gpu", "sim-alloc", "lots"});
  EXPECT_EQ(bad_bytes.exit_code, 2);
  EXPECT_THAT(bad_bytes.err, HasSubstr("clams gpu sim-alloc: invalid byte size \"lots\""));
  Result bad_device = Run({"gpu", "sim-alloc", "1GiB", "--device", "2"});
  EXPECT_EQ(bad_device.exit_code, 2);
  EXPECT_THAT(bad_device.err,
              HasSubstr("clams gpu sim-alloc: invalid device ordinal 2: 2 simulated GPUs "
                        "visible\n"));
  Result negative = Run({"gpu", "sim-alloc", "1GiB", "--seconds", "-1"});
  EXPECT_EQ(negative.exit_code, 2);
  EXPECT_THAT(negative.err, HasSubstr("--seconds must be 0 or more"));
  env_["CLAMS_SIM_GPUS"] = "0:1GiB,0:2GiB";
  Result bad_spec = Run({"gpu", "--json"});
  EXPECT_EQ(bad_spec.exit_code, 2);
  EXPECT_THAT(bad_spec.err, HasSubstr("clams gpu: invalid CLAMS_SIM_GPUS \"0:1GiB,0:2GiB\": "
                                      "device 0 is listed twice\n"));
  env_["CLAMS_SIM_GPUS"] = std::nullopt;
  for (const char* sub : {"sim-alloc", "sim-reset"}) {
    std::vector<std::string> args = {"gpu", sub};
    if (std::string(sub) == "sim-alloc") args.push_back("1GiB");
    Result r = Run(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(std::string("clams gpu ") + sub +
                                 ": CLAMS_SIM_GPUS is not set: no simulated GPUs"));
  }
}

// The test harness (testing::RunProgram, Process, ServerProcess) gives a
// program no GPU unless the test names one, so that the tests that need a
// machine without a GPU (a worker taking requests ahead, issue 15) pass on
// a GPU workstation too. Here the machine "has" an H100: this test process's
// own environment points NVML at the fake library, as a real driver would
// be found.
TEST(TestHarnessGpuTest, AProgramStartedWithoutNamingAGpuSeesNoneOnAMachineThatHasOne) {
  TempDir dir;
  const std::string conf = (dir.path() / "nvml.conf").string();
  WriteFileOrDie(conf,
                 "device GPU-aaaaaaaa-1111-2222-3333-444444444444 85899345920 0 NVIDIA H100 80GB HBM3\n");
  ASSERT_EQ(::setenv("CLAMS_NVML_LIBRARY", CLAMS_FAKE_NVML, 1), 0);
  ASSERT_EQ(::setenv("FAKE_NVML_CONFIG", conf.c_str(), 1), 0);
  ::unsetenv("CLAMS_SIM_GPUS");
  ::unsetenv("CUDA_VISIBLE_DEVICES");

  RunResult plain = RunProgram({ClamsBinary(), "gpu", "--json"});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out, "{\"devices\":[],\"backend\":\"nvml\"}\n");

  // A test that names the GPU (here its NVML library) sees it.
  RunResult named = RunProgram({ClamsBinary(), "gpu", "--json"}, {{"CLAMS_NVML_LIBRARY", CLAMS_FAKE_NVML}});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  EXPECT_THAT(named.out, HasSubstr("\"name\":\"NVIDIA H100 80GB HBM3\""));

  ::unsetenv("CLAMS_NVML_LIBRARY");
  ::unsetenv("FAKE_NVML_CONFIG");
}

}  // namespace
}  // namespace clams::testing
