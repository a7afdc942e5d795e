#include "clams/server/serve.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <fstream>
#include <optional>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include <fmt/ranges.h>

#include "clams/app/runner.h"
#include "clams/base/log.h"
#include "clams/base/version.h"
#include "clams/gpu/probe.h"
#include "clams/vram/vram.h"
#include "server/command_line.h"
#include "server/config_file.h"
#include "server/event_loop.h"
#include "server/file_limit.h"
#include "server/front.h"
#include "server/http_server.h"
#include "server/in_process_executor.h"
#include "server/metrics.h"
#include "server/options.h"
#include "server/private_dir.h"
#include "server/process_executor.h"
#include "server/scheduler.h"
#include "server/worker_plan.h"

namespace clams {
namespace {

using server::ServerOptions;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

std::string ExecutablePath() {
  std::error_code ec;
  auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.string();
}

}  // namespace
}  // namespace clams

// Defined by clams_app_version() in the app's build (cmake/ClamsAppVersion.cmake): the app's
// `git describe` at build time. Weak, so apps built without it link too.
extern "C" const char* clams_app_build_version() __attribute__((weak));

namespace clams {
namespace {

// The version an app without its own app_version gets: CLAMS_APP_VERSION,
// else the build-time stamp, else "unresolvable". Never the directory the
// server was started from (a class key must not depend on it).
std::string DefaultAppVersion() {
  if (std::string env = Env("CLAMS_APP_VERSION"); !env.empty()) return env;
  if (clams_app_build_version != nullptr) {
    const char* stamped = clams_app_build_version();
    if (stamped != nullptr && *stamped != '\0') return stamped;
  }
  return "unresolvable";
}

Status SetLogLevel(const std::string& name) {
  CLAMS_ASSIGN_OR_RETURN(log::Level level, log::ParseLevel(name));
  log::SetLevel(level);
  return Status::Ok();
}

// The settings every server command reads after its flags: the config file,
// environment fallbacks, the log level and format, the access log. Also what
// a SIGHUP needs to re-read the config file.
struct StartupSettings {
  ServerOptions command_line;
  std::set<std::string> given;  // flags on the command line
  server::Settings resolved;
};

StatusOr<StartupSettings> ApplyLoggingAndEnvironment(const ServerOptions& command_line,
                                                     std::set<std::string> given) {
  StartupSettings s{command_line, std::move(given), {}};
  CLAMS_ASSIGN_OR_RETURN(s.resolved, server::ResolveSettings(s.command_line, s.given));
  CLAMS_RETURN_IF_ERROR(server::ApplyLogSettings(s.resolved.options));
  return s;
}

// The arguments a native worker process is started with: its log settings
// and its request slots.
std::vector<std::string> WorkerArgs(const ServerOptions& o, int threads) {
  std::vector<std::string> args = {"--log-level", o.log_level, "--log-format", o.log_format, "--threads",
                                   std::to_string(threads)};
  if (o.no_access_log) args.push_back("--no-access-log");
  return args;
}

// --- local batch use ---------------------------------------------------------

void PrintAnnotateUsage(const AppMetadata& md, std::ostream& out, const char* argv0) {
  out << md.name << " " << md.app_version << ": " << md.description << "\n\n"
      << "usage: " << argv0 << " annotate [IN.mmif|-] [OUT.mmif|-] [--PARAM VALUE ...]\n"
      << "  IN defaults to stdin, OUT to stdout. Repeat a flag for several values.\n\nparameters:\n";
  for (const auto& p : md.parameters) {
    out << "  --" << p.name << " (" << ParamTypeName(p.type) << (p.multivalued ? ", multivalued" : "") << ")";
    if (!p.default_value.is_null()) out << " default " << mmif::WriteJson(p.default_value);
    if (!p.choices.empty()) out << " choices " << mmif::WriteJson(json::array(p.choices.begin(), p.choices.end()));
    out << "\n      " << p.description << "\n";
  }
}

int RunBatch(AppRunner& runner, const char* program, int argc, char** argv) {
  std::vector<std::string> positional;
  RawParams params;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      PrintAnnotateUsage(runner.metadata(), std::cout, program);
      return 0;
    }
    if (arg.rfind("--", 0) == 0 && arg.size() > 2) {
      std::string name = arg.substr(2);
      std::string value;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name.resize(eq);
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        std::cerr << "annotate: --" << name << " needs a value\n";
        return 2;
      }
      params.Add(name, std::move(value));
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() > 2) {
    std::cerr << "annotate: expected at most IN and OUT, got " << positional.size() << " files\n";
    return 2;
  }
  std::string input;
  const std::string in_path = positional.empty() ? "-" : positional[0];
  if (in_path == "-") {
    if (::isatty(STDIN_FILENO) != 0) {
      PrintAnnotateUsage(runner.metadata(), std::cerr, program);
      return 2;
    }
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    input = ss.str();
  } else {
    std::ifstream in(in_path, std::ios::binary);
    if (!in) {
      std::cerr << "annotate: cannot read " << in_path << "\n";
      return 1;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    input = ss.str();
  }
  AnnotateOutcome outcome = runner.Run(input, params);
  if (outcome.failure == FailureKind::kBadInput) {
    std::cerr << "annotate: " << in_path << ": " << outcome.error << "\n";
    return 1;
  }
  const std::string out_path = positional.size() > 1 ? positional[1] : "-";
  if (out_path == "-") {
    std::cout << outcome.body;
    if (!outcome.body.empty() && outcome.body.back() != '\n') std::cout << "\n";
    std::cout.flush();
  } else {
    std::ofstream out(out_path, std::ios::binary);
    out << outcome.body;
    if (!out) {
      std::cerr << "annotate: cannot write " << out_path << "\n";
      return 1;
    }
  }
  if (outcome.http_status != 200) {
    std::cerr << "annotate: the app failed (" << outcome.http_status << "): " << outcome.error
              << "; the error view was written to " << (out_path == "-" ? "stdout" : out_path) << "\n";
    return 1;
  }
  return 0;
}

// --- the server ---------------------------------------------------------------

StatusOr<vram::AdmissionOptions> AdmissionFromFlags(const ServerOptions& o) {
  vram::AdmissionOptions a;
  if (!o.vram_headroom.empty()) {
    if (o.vram_headroom.back() == '%') {
      char* end = nullptr;
      const std::string number = o.vram_headroom.substr(0, o.vram_headroom.size() - 1);
      double pct = std::strtod(number.c_str(), &end);
      if (number.empty() || end != number.c_str() + number.size() || pct < 0 || pct >= 100) {
        return InvalidArgumentError("--vram-headroom: \"" + o.vram_headroom + "\" is not a percentage below 100%");
      }
      a.headroom_fraction = pct / 100.0;
    } else {
      auto bytes = gpu::ParseBytes(o.vram_headroom);
      if (!bytes.ok()) return InvalidArgumentError("--vram-headroom: " + bytes.status().message());
      a.headroom_bytes = *bytes;
    }
  }
  return a;
}

std::chrono::milliseconds Ms(double seconds) {
  return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// The GPU side of a front: probe, devices, sampler. No GPUs is not an error.
struct GpuStack {
  std::unique_ptr<gpu::Probe> probe;
  std::vector<gpu::DeviceInfo> devices;
  std::unique_ptr<vram::Sampler> sampler;
};

StatusOr<GpuStack> StartGpus(bool per_process_wanted) {
  GpuStack g;
  CLAMS_ASSIGN_OR_RETURN(g.probe, gpu::CreateProbe(gpu::ProbeOptions::FromEnvironment()));
  if (auto d = g.probe->Devices(); d.ok()) {
    g.devices = *d;
  } else {
    CLAMS_LOG(kWarning, "cannot list GPUs ({}): serving without GPU accounting", d.status().ToString());
  }
  for (const auto& d : g.devices) {
    CLAMS_LOG(kInfo, "GPU {}: {} ({}), {} total, {} free [{}]", d.index, d.name, d.uuid, gpu::FormatBytes(d.total_bytes),
              gpu::FormatBytes(d.free_bytes), g.probe->backend());
  }
  if (!g.devices.empty()) {
    vram::Sampler::Options so;
    so.per_process = per_process_wanted && g.probe->per_process_accounting();
    if (!so.per_process) {
      CLAMS_LOG(kInfo, "GPU memory is accounted per device ({})",
                per_process_wanted ? "per-process numbers are not available"
                                   : "development mode runs the app in-process");
    }
    g.sampler = vram::Sampler::Start(g.probe.get(), so);
  }
  return g;
}

std::unique_ptr<vram::ProfileStore> OpenProfiles(const ServerOptions& o, const std::string& app_id, bool gpus) {
  if (!gpus) return nullptr;
  const std::string root =
      o.profile_dir.empty()
          ? vram::DefaultProfileRoot(Env("CLAMS_PROFILE_DIR"), Env("XDG_CACHE_HOME"), Env("HOME")).string()
          : o.profile_dir;
  auto store = vram::ProfileStore::Open({root, app_id, o.max_profiles});
  if (!store.ok()) {
    CLAMS_LOG(kWarning, "memory profiles are not kept: {}", store.status().ToString());
    return nullptr;
  }
  CLAMS_LOG(kInfo, "memory profiles: {} ({} known request classes)", (*store)->directory().string(), (*store)->size());
  return std::move(store).value();
}

StatusOr<server::SchedulerOptions> SchedulerOptionsFromFlags(const ServerOptions& o) {
  server::SchedulerOptions so;
  so.queue_timeout = Ms(o.queue_timeout_seconds);
  so.max_queue = o.max_queue;
  auto queued = gpu::ParseBytes(o.max_queued_bytes);
  if (!queued.ok()) return InvalidArgumentError("--max-queued-bytes: " + queued.status().message());
  so.max_queued_bytes = *queued;
  so.request_timeout = Ms(o.request_timeout_seconds);
  so.client_gone_grace = Ms(o.client_gone_grace_seconds);
  so.class_params = server::SplitNames(o.class_params);
  so.expose_runtime = o.expose_runtime;
  CLAMS_ASSIGN_OR_RETURN(so.admission, AdmissionFromFlags(o));
  so.estimates.margin = o.vram_margin;
  so.estimates.conservative_fraction = o.vram_conservative_fraction;
  return so;
}

StatusOr<server::HttpServerOptions> HttpOptionsFromFlags(const ServerOptions& o) {
  server::HttpServerOptions ho;
  ho.host = o.host;
  ho.port = static_cast<std::uint16_t>(o.port);
  auto max_body = gpu::ParseBytes(o.max_body_size);
  if (!max_body.ok()) return InvalidArgumentError("--max-body-size: " + max_body.status().message());
  ho.max_body_bytes = *max_body;
  ho.header_timeout = std::chrono::seconds(static_cast<long long>(o.header_timeout_seconds));
  ho.body_timeout = std::chrono::seconds(static_cast<long long>(o.body_timeout_seconds));
  ho.idle_timeout = std::chrono::seconds(static_cast<long long>(o.idle_timeout_seconds));
  return ho;
}

// The private directory of the worker sockets (mode 0700, unpredictable
// name), under $XDG_RUNTIME_DIR when set, else the temporary directory.
StatusOr<server::PrivateDir> MakeSocketDir() {
  const std::filesystem::path base = server::PrivateDirBase(Env("XDG_RUNTIME_DIR"));
  // Those of servers that were killed before they could remove their own.
  server::RemoveStalePrivateDirs(base);
  auto dir = server::PrivateDir::Create(base);
  if (!dir.ok()) return dir.status().WithContext("worker sockets");
  CLAMS_LOG(kDebug, "worker sockets in {}", dir->path().string());
  return dir;
}

// Process-wide set-up shared by both server commands.
void PrepareServerProcess() {
  ::signal(SIGPIPE, SIG_IGN);
  if (auto limit = server::RaiseFileLimit(); !limit.ok()) {
    CLAMS_LOG(kWarning, "cannot raise the open file limit: {}", limit.status().message());
  }
}

// The part of a front that exists once the app's metadata is known: the
// scheduler, the router and the listening socket.
struct FrontParts {
  std::unique_ptr<server::Scheduler> scheduler;
  std::unique_ptr<server::Front> front;
  std::unique_ptr<server::HttpServer> http;
};

Status StartFront(server::EventLoop& loop, AppRunner& runner, server::Executor& executor, GpuStack& gpus,
                  vram::ProfileStore* profiles, server::Metrics& metrics, const ServerOptions& o,
                  server::SchedulerOptions so, const std::string& port_file, FrontParts& parts) {
  CLAMS_ASSIGN_OR_RETURN(server::HttpServerOptions ho, HttpOptionsFromFlags(o));
  parts.scheduler =
      std::make_unique<server::Scheduler>(loop, runner, executor, gpus.sampler.get(), profiles, metrics, std::move(so));
  parts.front = std::make_unique<server::Front>(runner, *parts.scheduler, metrics);
  server::Front* front = parts.front.get();
  CLAMS_ASSIGN_OR_RETURN(parts.http, server::HttpServer::Start(loop, ho,
                                                               [front](server::HttpRequest r,
                                                                       server::HttpServer::Respond respond,
                                                                       std::shared_ptr<server::CancelSignal> c) {
                                                                 front->Handle(std::move(r), std::move(respond), c);
                                                               }));
  const std::uint16_t port = parts.http->port();
  const AppMetadata& md = runner.metadata();
  server::SetBuildInfo(metrics, md.name, md.app_version);
  CLAMS_LOG(kInfo, "serving {} ({}) on http://{}:{} with the {} executor", md.name, md.identifier, o.host, port,
            executor.kind());
  if (!port_file.empty()) {
    std::ofstream pf(port_file);
    pf << port << "\n";
  }
  return Status::Ok();
}

// How long the last answers of a drain may take to reach their clients
// before the process exits anyway (a client that does not read its answer
// must not hold the shutdown).
constexpr std::chrono::seconds kFlushBeforeExit{5};

// SIGHUP with a config file: re-read it and apply what can change while
// serving (null without a config file). `workers` is null for external apps.
std::unique_ptr<server::ConfigReloader> MakeReloader(const StartupSettings& s, FrontParts& parts,
                                                     server::ProcessExecutor* workers, int threads) {
  if (s.resolved.options.config_file.empty()) return nullptr;
  server::ConfigReloader::Hooks hooks;
  hooks.set_limits = [&parts](const server::RuntimeLimits& l) {
    if (parts.scheduler) {
      parts.scheduler->SetLimits(l.max_queue, Ms(l.queue_timeout_seconds), Ms(l.request_timeout_seconds));
    }
  };
  if (workers != nullptr) {
    hooks.set_worker_options = [workers, threads](const ServerOptions& o) {
      workers->SetWorkerArgs(WorkerArgs(o, threads));
    };
  }
  return std::make_unique<server::ConfigReloader>(s.command_line, s.given, s.resolved, std::move(hooks));
}

// Signals and the loop: SIGTERM/SIGINT drain then stop (a second one stops
// at once), SIGHUP re-reads the config file (if any) and replaces the workers.
void RunUntilStopped(server::EventLoop& loop, server::Executor& executor, FrontParts& parts, const ServerOptions& o,
                     server::ConfigReloader* reloader = nullptr) {
  bool stopping = false;
  auto shutdown = [&](const char* why) {
    if (stopping || !parts.scheduler) {
      CLAMS_LOG(kWarning, "{}: stopping now", why);
      loop.Stop();
      return;
    }
    stopping = true;
    CLAMS_LOG(kInfo, "{}: draining", why);
    // Answers from now on close their connections; when the scheduler and
    // the workers are done, the HTTP server answers what still arrives with
    // a 503 and flushes every answer before the loop stops.
    if (parts.http) parts.http->BeginDrain();
    parts.scheduler->Drain(Ms(o.graceful_timeout_seconds), [&] {
      executor.Shutdown([&] {
        if (!parts.http) return loop.Stop();
        parts.http->Shutdown(kFlushBeforeExit, [&] { loop.Stop(); });
      });
    });
  };
  loop.OnSignal(SIGTERM, [&] { shutdown("SIGTERM"); });
  loop.OnSignal(SIGINT, [&] { shutdown("SIGINT"); });
  loop.OnSignal(SIGHUP, [&] {
    if (reloader != nullptr) (void)reloader->Reload();  // logs what it applied or could not
    executor.ReplaceAll();
  });
  // gunicorn's convention: SIGTTIN adds a worker, SIGTTOU removes one.
  loop.OnSignal(SIGTTIN, [&] { executor.Scale(+1); });
  loop.OnSignal(SIGTTOU, [&] { executor.Scale(-1); });
  loop.Run();
  if (parts.http) parts.http->StopAccepting();
}

int RunServer(AppRunner& runner, const StartupSettings& startup, const std::string& port_file) {
  const ServerOptions& o = startup.resolved.options;
  const std::string& workers_source = startup.resolved.workers_source;
  PrepareServerProcess();
  server::EventLoop loop;
  const AppMetadata& md = runner.metadata();
  auto gpus_or = StartGpus(o.production);
  if (!gpus_or.ok()) {
    CLAMS_LOG(kCritical, "GPU probe: {}", gpus_or.status().ToString());
    return 1;
  }
  GpuStack gpus = std::move(gpus_or).value();
  std::unique_ptr<vram::ProfileStore> profiles = OpenProfiles(o, md.identifier, !gpus.devices.empty());
  server::Metrics metrics;
  server::DeclareServerMetrics(metrics);

  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // Declared before the executor: removed after the workers are gone.
  std::optional<server::PrivateDir> socket_dir;
  std::unique_ptr<server::Executor> executor;
  int threads = std::max(1, o.threads);
  if (threads > 1 && !runner.app().thread_safe()) {
    CLAMS_LOG(kWarning, "--threads {}: {} ({}) is not thread-safe (App::thread_safe() is false); each worker runs "
              "one request at a time", threads, md.name, md.identifier);
    threads = 1;
  }
  if (o.production) {
    server::WorkerPlan plan = server::PlanWorkers(gpus.devices, cores, md.est_gpu_mem_typ, o.workers, workers_source);
    CLAMS_LOG(kInfo, "{}", plan.reasoning);
    CLAMS_LOG(kInfo, "Worker recycling: {}",
              o.max_requests == 0 ? std::string("disabled (workers persist)")
                                  : fmt::format("after {} request(s)", o.max_requests));
    server::ProcessExecutorOptions po;
    po.executable = ExecutablePath();
    po.worker_args = WorkerArgs(o, threads);
    po.worker_devices = plan.devices;
    po.threads = threads;
    po.take_ahead = true;  // the worker's HttpServer reads pipelined requests in order
    po.devices = gpus.devices;
    po.max_requests = o.max_requests;
    po.max_requests_jitter = o.max_requests_jitter;
    auto dir = MakeSocketDir();
    if (!dir.ok()) {
      CLAMS_LOG(kCritical, "{}", dir.status().ToString());
      return 1;
    }
    socket_dir.emplace(std::move(dir).value());
    po.socket_dir = socket_dir->path();
    executor = std::make_unique<server::ProcessExecutor>(loop, metrics, std::move(po));
  } else {
    const int dev_threads = o.workers > 0 ? o.workers : std::min(server::kDefaultDevelopmentThreads, 2 * cores + 1);
    executor = std::make_unique<server::InProcessExecutor>(loop, runner, dev_threads, gpus.devices.empty() ? -1 : 0);
  }
  auto so = SchedulerOptionsFromFlags(o);
  if (!so.ok()) {
    CLAMS_LOG(kCritical, "{}", so.status().message());
    return 2;
  }
  FrontParts parts;
  if (Status s = StartFront(loop, runner, *executor, gpus, profiles.get(), metrics, o, *so, port_file, parts); !s.ok()) {
    CLAMS_LOG(kCritical, "{}", s.ToString());
    return 1;
  }
  server::Scheduler* scheduler = parts.scheduler.get();
  if (Status s = executor->Start([scheduler](const server::WorkerEvent& e) { scheduler->OnWorkerEvent(e); }); !s.ok()) {
    CLAMS_LOG(kCritical, "cannot start workers: {}", s.ToString());
    return 1;
  }
  auto reloader = MakeReloader(startup, parts,
                               o.production ? static_cast<server::ProcessExecutor*>(executor.get()) : nullptr, threads);
  RunUntilStopped(loop, *executor, parts, o, reloader.get());
  CLAMS_LOG(kInfo, "stopped");
  return 0;
}

// --- clams serve app.py --------------------------------------------------------

// The Python worker adapter, relative to the clams executable's folder or
// one above it: <prefix>/share/clams/ next to <prefix>/bin/clams after
// `make install`, <build>/share/clams/ next to <build>/src/cli/clams in a
// build tree (src/cli/CMakeLists.txt copies it there).
constexpr std::string_view kAdapterRelativePath = "share/clams/clams_worker.py";
// Folders searched: the executable's and two above it (bin/ -> prefix;
// build/src/cli/ -> build).
constexpr int kAdapterSearchLevels = 3;
// The interpreter `clams serve app.py` runs the adapter with, unless --python.
constexpr std::string_view kDefaultPython = "python3";
// A command that fails this many times in a row before any worker ever
// answered is not retried (it would only crash-loop until --startup-timeout).
constexpr int kGiveUpAfterFailures = 3;

// The adapter's exit codes that mean it can never start (python/clams_worker.py).
const std::map<int, std::string>& AdapterExitCodes() {
  static const auto* codes = new std::map<int, std::string>{
      {2, "the Python worker adapter did not accept its arguments"},
      {3, "the app cannot be imported"},
      {4, "the adapter found no app object it can serve in the app file"},
      {5, "the Python interpreter cannot import the Python SDK (clams-python); choose the interpreter with "
          "--python (e.g. the app's virtualenv's python)"},
      {6, "the worker cannot listen on its socket"},
  };
  return *codes;
}

StatusOr<std::filesystem::path> FindWorkerAdapter() {
  const std::string exe = ExecutablePath();
  if (exe.empty()) return NotFoundError("cannot find the clams executable (/proc/self/exe)");
  std::filesystem::path dir = std::filesystem::path(exe).parent_path();
  for (int level = 0; level < kAdapterSearchLevels; ++level) {
    std::filesystem::path candidate = dir / kAdapterRelativePath;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
    if (!dir.has_parent_path() || dir.parent_path() == dir) break;
    dir = dir.parent_path();
  }
  return NotFoundError("cannot find the Python worker adapter (" + std::string(kAdapterRelativePath) +
                       ") in or above " + std::filesystem::path(exe).parent_path().string() +
                       "; install clams-cpp with `make install`");
}

// The worker command of `clams serve app.py` (APP is a file or a folder
// holding app.py), or a usage error.
StatusOr<std::vector<std::string>> AdapterCommand(const std::string& app_arg, const std::string& python, int threads,
                                                   bool no_torch_cap) {
  std::filesystem::path app = app_arg;
  std::error_code ec;
  if (std::filesystem::is_directory(app, ec)) app /= "app.py";
  if (!std::filesystem::is_regular_file(app, ec)) {
    return InvalidArgumentError(app.string() + ": no such file (give an app file, a folder holding app.py, or a "
                                "command after --)");
  }
  app = std::filesystem::absolute(app, ec);
  CLAMS_ASSIGN_OR_RETURN(std::filesystem::path adapter, FindWorkerAdapter());
  std::vector<std::string> command = {python,     adapter.string(), "--app",     app.string(),
                                      "--socket", "{socket}",       "--threads", std::to_string(threads)};
  if (no_torch_cap) command.emplace_back("--no-torch-cap");
  return command;
}

// An app that lives in other processes (`clams serve -- CMD`): the front
// needs its metadata and nothing else.
class ExternalApp : public App {
 public:
  explicit ExternalApp(AppMetadata metadata) : metadata_(std::move(metadata)) {}
  AppMetadata Metadata() const override { return metadata_; }
  Status Annotate(mmif::Mmif&, const Params&) override {
    return InternalError("an external app runs in its own processes, never in the front");
  }

 private:
  AppMetadata metadata_;
};

}  // namespace

int Serve(App& app, int argc, char** argv) {
  if (const char* level = std::getenv("CLAMS_LOGLEVEL"); level != nullptr && *level != '\0') {
    (void)SetLogLevel(level);
  }
  AppRunner::Options runner_options;
  runner_options.default_app_version = DefaultAppVersion();
  auto runner_or = AppRunner::Create(app, runner_options);
  if (!runner_or.ok()) {
    std::cerr << "invalid app metadata: " << runner_or.status().message() << "\n";
    return 1;
  }
  AppRunner& runner = **runner_or;

  if (argc > 1 && std::string_view(argv[1]) == "annotate") return RunBatch(runner, argv[0], argc - 1, argv + 1);

  const AppMetadata& md = runner.metadata();
  CLI::App cli{md.name + " " + md.app_version + ": " + md.description +
               "\n\nServes the app over HTTP (the CLAMS app API). Also: `" + std::string(argv[0]) +
               " annotate --help` for local batch use."};
  ServerOptions options;
  server::RegisterServerFlags(cli, options);
  std::string port_file;
  cli.add_option("--port-file", port_file, "Write the bound port to this file (for tests and scripts).");
  bool print_flags = false;
  cli.add_flag("--print-flags-markdown", print_flags)->group("");
  const std::string program = server::ProgramName(argv[0]);
  server::AddVersionFlag(cli, program + " " + md.app_version + " (clams-cpp " + std::string(Version()) + ")");
  if (auto exit_code = server::ParseCommandLine(cli, argc, argv)) return *exit_code;
  if (print_flags) {
    std::cout << server::FlagsMarkdown();
    return 0;
  }
  std::set<std::string> given = server::CommandLineKeys(cli);
  if (!options.worker_socket.empty()) {
    // Workers take their settings from the front's command line only.
    options.config_file.clear();
    given.insert("config");
  }
  auto startup = ApplyLoggingAndEnvironment(options, std::move(given));
  if (!startup.ok()) {
    std::cerr << program << ": " << startup.status().message() << "\n";
    return server::kUsageExitCode;
  }
  if (!options.worker_socket.empty()) {
    const int threads = runner.app().thread_safe() ? std::max(1, options.threads) : 1;
    return server::RunNativeWorker(runner, options.worker_socket, options.worker_ready_fd, threads);
  }
  return RunServer(runner, *startup, port_file);
}

int ServeExternal(int argc, char** argv) {
  CLI::App cli{"clams serve: runs an unmodified CLAMS app as N worker processes behind the clams-cpp front: GPU "
               "admission control, queueing, supervision, metrics.\n\n"
               "usage: clams serve [server flags] APP.py           a Python SDK app (or a folder holding app.py)\n"
               "       clams serve [server flags] -- CMD [ARGS...]  any HTTP service with the CLAMS API\n"
               "APP.py runs in clams-cpp's Python worker adapter (share/clams/clams_worker.py). In CMD, {port} is "
               "replaced by a free loopback port per worker ({socket} by a Unix socket path)."};
  ServerOptions o;
  o.production = true;
  server::RegisterServerFlags(cli, o);
  std::string port_file;
  cli.add_option("--port-file", port_file, "Write the bound port to this file (for tests and scripts).");
  double startup_timeout = 300;
  cli.add_option("--startup-timeout", startup_timeout,
                 "Seconds the first copy of the app has to answer GET / (model loading included).")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  std::string python(kDefaultPython);
  cli.add_option("--python", python,
                 "clams serve APP.py: the Python interpreter that runs the app (e.g. its virtualenv's python).")
      ->capture_default_str();
  cli.add_flag("--no-torch-cap", o.no_torch_cap,
               "clams serve APP.py: do not cap PyTorch at the GPU memory the front granted each worker.");
  std::vector<std::string> command;
  cli.add_option("command", command, "APP.py (or a folder holding app.py), or the app's command line after --")
      ->required();
  server::AddVersionFlag(cli, "clams serve " + std::string(Version()));
  // `--` selects the generic form; without it the one argument is a Python app.
  const bool generic = std::any_of(argv + 1, argv + argc, [](const char* a) { return std::string_view(a) == "--"; });
  if (auto exit_code = server::ParseCommandLine(cli, argc, argv, "clams serve")) return *exit_code;
  auto startup = ApplyLoggingAndEnvironment(o, server::CommandLineKeys(cli));
  if (!startup.ok()) {
    std::cerr << "clams serve: " << startup.status().message() << "\n";
    return server::kUsageExitCode;
  }
  o = startup->resolved.options;
  const std::string& workers_source = startup->resolved.workers_source;
  const bool python_app = !generic;
  if (python_app) {
    if (command.size() != 1) {
      std::cerr << "clams serve: give one Python app (clams serve APP.py) or a command after -- (clams serve -- "
                   "CMD ... {port})\n";
      return server::kUsageExitCode;
    }
    auto adapter_command = AdapterCommand(command[0], python, o.threads, o.no_torch_cap);
    if (!adapter_command.ok()) {
      std::cerr << "clams serve: " << adapter_command.status().message() << "\n";
      return adapter_command.status().code() == StatusCode::kInvalidArgument ? server::kUsageExitCode : 1;
    }
    command = std::move(adapter_command).value();
  } else if (cli.count("--python") > 0 || o.no_torch_cap) {
    std::cerr << "clams serve: --python and --no-torch-cap apply to a Python app (clams serve APP.py), not to a "
                 "command after --\n";
    return server::kUsageExitCode;
  }
  if (std::none_of(command.begin(), command.end(), [](const std::string& a) {
        return a.find("{port}") != std::string::npos || a.find("{socket}") != std::string::npos;
      })) {
    std::cerr << "clams serve: the command must contain {port} (or {socket}) so each worker gets its own address\n";
    return 2;
  }
  auto so = SchedulerOptionsFromFlags(o);
  if (!so.ok()) {
    std::cerr << so.status().message() << "\n";
    return 2;
  }
  PrepareServerProcess();
  server::EventLoop loop;
  auto gpus_or = StartGpus(/*per_process_wanted=*/true);
  if (!gpus_or.ok()) {
    CLAMS_LOG(kCritical, "GPU probe: {}", gpus_or.status().ToString());
    return 1;
  }
  GpuStack gpus = std::move(gpus_or).value();
  server::Metrics metrics;
  server::DeclareServerMetrics(metrics);

  // One copy starts first: its metadata (est_gpu_mem_typ) sizes the pool.
  server::ProcessExecutorOptions po;
  po.external_command = command;
  po.worker_devices = {gpus.devices.empty() ? -1 : gpus.devices.front().index};
  po.devices = gpus.devices;
  po.max_requests = o.max_requests;
  po.max_requests_jitter = o.max_requests_jitter;
  // Declared before the executor: removed after the app processes are gone.
  auto socket_dir = MakeSocketDir();
  if (!socket_dir.ok()) {
    CLAMS_LOG(kCritical, "{}", socket_dir.status().ToString());
    return 1;
  }
  po.socket_dir = socket_dir->path();
  po.ready_timeout = Ms(startup_timeout);
  po.threads = std::max(1, o.threads);
  // The adapter reads pipelined requests in order; an arbitrary command's
  // HTTP server may not (Werkzeug's closes every connection).
  po.take_ahead = python_app;
  // A command that never answers is given up on within seconds, not at --startup-timeout.
  std::function<void(const std::string&)> give_up;
  if (python_app) po.give_up_exit_codes = AdapterExitCodes();
  po.give_up_after_failures = kGiveUpAfterFailures;
  po.on_give_up = [&give_up](const std::string& message) { give_up(message); };
  server::ProcessExecutor executor(loop, metrics, std::move(po));

  std::unique_ptr<ExternalApp> app;
  std::unique_ptr<AppRunner> runner;
  std::unique_ptr<vram::ProfileStore> profiles;
  FrontParts parts;
  int exit_code = 0;
  bool asked = false;
  std::vector<server::WorkerEvent> buffered;        // before the scheduler exists
  std::vector<server::WorkerEvent> pending_events;  // replayed into it
  std::unique_ptr<server::HttpConnection> metadata_conn;
  auto fail = [&](const std::string& why) {
    CLAMS_LOG(kCritical, "{}", why);
    exit_code = 1;
    executor.Shutdown([&] { loop.Stop(); });
  };
  give_up = [&](const std::string& message) { fail("cannot start the app: " + message); };
  auto on_metadata = [&](StatusOr<server::HttpResponse> r) {
    if (!r.ok() || r->status != 200) {
      return fail("the app's GET / did not answer its metadata: " +
                  (r.ok() ? "HTTP " + std::to_string(r->status) : r.status().ToString()));
    }
    auto tree = mmif::ParseJson(r->body);
    StatusOr<AppMetadata> md = tree.ok() ? AppMetadata::FromJson(*tree) : StatusOr<AppMetadata>(tree.status());
    if (!md.ok()) return fail("the app's metadata cannot be read: " + md.status().message());
    std::vector<std::string> front_only;
    for (const char* name : {"runningTime", "hwFetch"}) {
      bool declared = false;
      for (const auto& p : tree->at("parameters").as_array()) {
        if (p.is_object() && p.get_object().contains("name") && p.at("name") == name) declared = true;
      }
      if (!declared) front_only.emplace_back(name);
    }
    app = std::make_unique<ExternalApp>(std::move(md).value());
    AppRunner::Options ro;
    ro.metadata_json = r->body;
    auto created = AppRunner::Create(*app, ro);
    if (!created.ok()) return fail("the app's metadata is not usable: " + created.status().message());
    runner = std::move(created).value();
    const AppMetadata& meta = runner->metadata();
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    server::WorkerPlan plan = server::PlanWorkers(gpus.devices, cores, meta.est_gpu_mem_typ, o.workers, workers_source);
    CLAMS_LOG(kInfo, "app: {} ({}); {}", meta.name, meta.identifier, plan.reasoning);
    if (!front_only.empty()) {
      CLAMS_LOG(kInfo, "the app does not declare {}: the front records it", fmt::join(front_only, " and "));
    }
    profiles = OpenProfiles(o, meta.identifier, !gpus.devices.empty());
    server::SchedulerOptions sched = *so;
    sched.external = true;
    sched.front_only_parameters = front_only;
    // Events that came before the scheduler existed (the first copy's).
    pending_events.swap(buffered);
    if (Status s = StartFront(loop, *runner, executor, gpus, profiles.get(), metrics, o, sched, port_file, parts);
        !s.ok()) {
      return fail(s.ToString());
    }
    for (const auto& e : pending_events) parts.scheduler->OnWorkerEvent(e);
    pending_events.clear();
    // The first copy is worker 1 on plan.devices[0]; start the rest.
    executor.AddWorkers(std::vector<int>(plan.devices.begin() + 1, plan.devices.end()));
    parts.scheduler->Pump();
  };
  auto on_event = [&](const server::WorkerEvent& event) {
    if (parts.scheduler) {
      parts.scheduler->OnWorkerEvent(event);
      return;
    }
    buffered.push_back(event);
    if (asked) return;
    for (int id : executor.ReadyWorkers()) {
      asked = true;
      metadata_conn = server::HttpConnection::Create(loop, executor.WorkerEndpoint(id));
      server::HttpRequest get;
      get.method = "GET";
      get.target = "/";
      metadata_conn->Send(std::move(get), std::chrono::seconds(60), on_metadata);
      return;
    }
  };
  if (Status s = executor.Start(on_event); !s.ok()) {
    CLAMS_LOG(kCritical, "cannot start the app: {}", s.ToString());
    return 1;
  }
  loop.After(Ms(startup_timeout), [&] {
    if (!parts.scheduler && exit_code == 0) {
      fail("the app did not answer GET / within --startup-timeout (" + fmt::format("{:.0f}", startup_timeout) +
           " s); check its command line and log above");
    }
  });
  CLAMS_LOG(kInfo, "starting the app: {}", fmt::join(command, " "));
  auto reloader = MakeReloader(*startup, parts, nullptr, 1);
  RunUntilStopped(loop, executor, parts, o, reloader.get());
  CLAMS_LOG(kInfo, "stopped");
  return exit_code;
}

}  // namespace clams
