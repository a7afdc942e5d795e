#include "server/process_executor.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>

#include "clams/base/log.h"

extern char** environ;

namespace clams::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kLostConnectionGrace{2000};
constexpr std::chrono::milliseconds kExternalReadyPoll{200};
constexpr std::string_view kReadyToken = "ready";
// One read() of a worker's stderr pipe.
constexpr std::size_t kStderrReadBytes = 4096;

std::string SignalName(int sig) {
  switch (sig) {
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    case SIGABRT: return "SIGABRT";
    case SIGTERM: return "SIGTERM";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGINT: return "SIGINT";
    case SIGHUP: return "SIGHUP";
    case SIGPIPE: return "SIGPIPE";
    default: {
      const char* d = ::sigdescr_np(sig);
      return d != nullptr ? d : "signal " + std::to_string(sig);
    }
  }
}

// A free loopback TCP port (bound and released; the small race with other
// programs is acceptable for workers started right away).
int FreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = -1;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

// Workers lead their own process group: signal the whole group, so that
// processes an external app started go too.
void KillTree(pid_t pid, int sig) {
  if (pid <= 0) return;
  if (::kill(-pid, sig) != 0) ::kill(pid, sig);
}

// A stderr line fit for one log line: control characters other than tab
// become \xNN (a worker cannot forge log lines of the front).
std::string PrintableLine(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() > kStderrLineMaxBytes) line = line.substr(0, kStderrLineMaxBytes);
  std::string out;
  out.reserve(line.size());
  for (unsigned char c : line) {
    if (c < 0x20 && c != '\t') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Replace(std::string s, std::string_view from, std::string_view to) {
  for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

}  // namespace

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + SignalName(sig) + ")";
  }
  return "ended (status " + std::to_string(status) + ")";
}

struct ProcessExecutor::Slot {
  WorkerInfo info;
  std::uint64_t generation = 0;  // bumps at every spawn; stale callbacks compare it
  std::string socket_path;
  int port = 0;
  int ready_fd = -1;
  // External workers: the read end of the stderr pipe, the unfinished last
  // line and the last kStderrTailLines lines.
  int stderr_fd = -1;
  std::string stderr_partial;
  std::deque<std::string> stderr_tail;
  std::unique_ptr<HttpConnection> conn;
  Clock::time_point spawned;
  EventLoop::TimerId ready_timer = 0;
  EventLoop::TimerId stop_timer = 0;
  EventLoop::TimerId spawn_timer = 0;
  EventLoop::TimerId request_timer = 0;
  EventLoop::TimerId lost_timer = 0;
  // The request in flight.
  std::function<void(ExecResult)> done;
  bool timed_out = false;
  bool connection_lost = false;
  bool killed_after_loss = false;  // we killed it because it lingered after the connection broke
  std::string connection_error;
  // Supervision.
  bool stopping = false;
  std::string stop_reason;
  bool reload_pending = false;
  int consecutive_failures = 0;
};

ProcessExecutor::ProcessExecutor(EventLoop& loop, Metrics& metrics, ProcessExecutorOptions options)
    : loop_(loop), metrics_(metrics), options_(std::move(options)), rng_(std::random_device{}()) {}

ProcessExecutor::~ProcessExecutor() {
  for (auto& s : slots_) {
    if (s->info.pid > 0) {
      KillTree(s->info.pid, SIGKILL);
      int status = 0;
      ::waitpid(s->info.pid, &status, 0);
    }
    if (s->ready_fd >= 0) ::close(s->ready_fd);
    if (s->stderr_fd >= 0) ::close(s->stderr_fd);
  }
}

ProcessExecutor::Slot* ProcessExecutor::Find(int slot_id) {
  for (auto& s : slots_) {
    if (s->info.id == slot_id) return s.get();
  }
  return nullptr;
}

std::uint64_t ProcessExecutor::DrawMaxRequests() {
  if (options_.max_requests == 0) return 0;
  std::uint64_t jitter = 0;
  if (options_.max_requests_jitter > 0) {
    jitter = std::uniform_int_distribution<std::uint64_t>(0, options_.max_requests_jitter)(rng_);
  }
  return options_.max_requests + jitter;
}

void ProcessExecutor::Notify() {
  if (on_change_) on_change_();
}

Status ProcessExecutor::Start(WorkersChanged on_change) {
  on_change_ = std::move(on_change);
  std::error_code ec;
  std::filesystem::create_directories(options_.socket_dir, ec);
  if (ec) return FailedPreconditionError("cannot create the worker socket directory " + options_.socket_dir.string());
  loop_.OnSignal(SIGCHLD, [this] { Reap(); });
  for (std::size_t i = 0; i < options_.worker_devices.size(); ++i) {
    auto slot = std::make_unique<Slot>();
    slot->info.id = static_cast<int>(i) + 1;
    slot->info.device = options_.worker_devices[i];
    slot->info.include_children = !options_.external_command.empty();
    slots_.push_back(std::move(slot));
  }
  for (auto& s : slots_) Spawn(*s);
  return Status::Ok();
}

void ProcessExecutor::AddWorkers(const std::vector<int>& devices) {
  for (int device : devices) {
    auto slot = std::make_unique<Slot>();
    slot->info.id = static_cast<int>(slots_.size()) + 1;
    slot->info.device = device;
    slot->info.include_children = !options_.external_command.empty();
    slots_.push_back(std::move(slot));
    Spawn(*slots_.back());
  }
}

Endpoint ProcessExecutor::WorkerEndpoint(int worker_id) const {
  for (const auto& s : slots_) {
    if (s->info.id == worker_id) return EndpointOf(*s);
  }
  return Endpoint{};
}

Endpoint ProcessExecutor::EndpointOf(const Slot& slot) const {
  // Native workers and external commands with {socket} listen on a Unix
  // socket; other external commands on their loopback {port}.
  const bool external = !options_.external_command.empty();
  const bool uses_socket =
      !external || std::any_of(options_.external_command.begin(), options_.external_command.end(),
                               [](const std::string& a) { return a.find("{socket}") != std::string::npos; });
  if (uses_socket) return Endpoint{slot.socket_path, "", 0};
  return Endpoint{"", "127.0.0.1", static_cast<std::uint16_t>(slot.port)};
}

std::vector<WorkerInfo> ProcessExecutor::Workers() const {
  std::vector<WorkerInfo> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) out.push_back(s->info);
  return out;
}

void ProcessExecutor::Spawn(Slot& slot) {
  slot.generation++;
  slot.info.state = vram::WorkerState::kStarting;
  slot.info.requests = 0;
  slot.info.max_requests = DrawMaxRequests();
  slot.info.pid = 0;
  slot.stopping = false;
  slot.stop_reason.clear();
  slot.conn.reset();
  slot.spawned = Clock::now();
  slot.info.started = slot.spawned;
  slot.info.last_used = slot.spawned;
  const bool external = !options_.external_command.empty();

  // Everything the child needs is prepared before fork(): after it only
  // async-signal-safe calls are allowed (the front has other threads).
  std::vector<std::string> args;
  if (external) {
    slot.port = FreeLoopbackPort();
    slot.socket_path = (options_.socket_dir / ("app-" + std::to_string(slot.info.id) + ".sock")).string();
    std::error_code ec;
    std::filesystem::remove(slot.socket_path, ec);  // a previous copy's socket
    for (const auto& a : options_.external_command) {
      args.push_back(Replace(Replace(a, "{port}", std::to_string(slot.port)), "{socket}", slot.socket_path));
    }
  } else {
    slot.socket_path = (options_.socket_dir / ("worker-" + std::to_string(slot.info.id) + "-" +
                                               std::to_string(slot.generation) + ".sock"))
                           .string();
    args.push_back(options_.executable);
    args.insert(args.end(), options_.worker_args.begin(), options_.worker_args.end());
    args.push_back("--clams-worker-socket");
    args.push_back(slot.socket_path);
    args.push_back("--clams-worker-ready-fd");
    args.push_back("3");
  }
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0 || kv.rfind("CUDA_DEVICE_ORDER=", 0) == 0 ||
        kv.rfind("CLAMS_WORKER_ID=", 0) == 0) {
      continue;
    }
    env.emplace_back(kv);
  }
  if (slot.info.device >= 0) {
    std::string pin = std::to_string(slot.info.device);
    for (const auto& d : options_.devices) {
      if (d.index == slot.info.device && !d.uuid.empty()) pin = d.uuid;
    }
    env.push_back("CUDA_VISIBLE_DEVICES=" + pin);
    env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
  } else if (!options_.devices.empty()) {
    env.push_back("CUDA_VISIBLE_DEVICES=");
  }
  env.push_back("CLAMS_WORKER_ID=" + std::to_string(slot.info.id));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  // Native workers: a pipe for the ready handshake (fd 3). External ones:
  // a pipe for their stderr.
  int pipe_fds[2] = {-1, -1};
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
    CLAMS_LOG(kError, "cannot create a pipe for worker {}: {}", slot.info.id, std::strerror(errno));
    ScheduleSpawn(slot);
    return;
  }
  // Written by the child if exec fails (prepared here: after fork only
  // async-signal-safe calls).
  const std::string exec_failed = "clams serve: cannot execute " + args[0] + ": ";
  const pid_t front = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    CLAMS_LOG(kError, "cannot start worker {}: fork failed: {}", slot.info.id, std::strerror(errno));
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
    ScheduleSpawn(slot);
    return;
  }
  if (pid == 0) {
    // Child: die with the front, own process group (a terminal's Ctrl-C
    // reaches only the front, which drains), clean fds, default signals.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != front) ::_exit(127);
    ::setpgid(0, 0);
    if (!external) {
      ::dup2(pipe_fds[1], 3);
      ::close_range(4, ~0U, 0);
    } else {
      ::dup2(pipe_fds[1], STDERR_FILENO);
      ::close_range(3, ~0U, 0);
    }
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(argv[0], argv.data(), envp.data());
    if (external) {
      ::execvpe(argv[0], argv.data(), envp.data());
      const char* why = ::strerrordesc_np(errno);
      if (why == nullptr) why = "unknown error";
      (void)!::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
      (void)!::write(STDERR_FILENO, why, std::strlen(why));
      (void)!::write(STDERR_FILENO, "\n", 1);
    }
    ::_exit(kExitCommandNotFound);
  }
  slot.info.pid = pid;
  CLAMS_LOG(kInfo, "worker {} starting: pid {}{}", slot.info.id, pid,
            slot.info.device >= 0 ? ", device " + std::to_string(slot.info.device) : "");
  const int id = slot.info.id;
  const std::uint64_t gen = slot.generation;
  ::close(pipe_fds[1]);
  if (!external) {
    slot.ready_fd = pipe_fds[0];
    loop_.WatchReadable(slot.ready_fd, [this, id, gen] { OnReadyPipe(id, gen); });
  } else {
    ::fcntl(pipe_fds[0], F_SETFL, ::fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
    slot.stderr_fd = pipe_fds[0];
    slot.stderr_partial.clear();
    loop_.WatchReadable(slot.stderr_fd, [this, id, gen] { OnStderr(id, gen); });
    loop_.After(kExternalReadyPoll, [this, id, gen] { PollExternalReady(id, gen); });
  }
  slot.ready_timer = loop_.After(options_.ready_timeout, [this, id, gen] {
    Slot* s = Find(id);
    if (s == nullptr || s->generation != gen || s->info.state != vram::WorkerState::kStarting) return;
    CLAMS_LOG(kError, "worker {} (pid {}) was not ready after {} s: killing it", id, s->info.pid,
              options_.ready_timeout.count() / 1000);
    KillTree(s->info.pid, SIGKILL);
  });
  Notify();
}

void ProcessExecutor::ScheduleSpawn(Slot& slot) {
  if (shutting_down_) return;
  std::chrono::milliseconds delay{0};
  if (slot.consecutive_failures > 0) {
    delay = options_.backoff_initial * (1LL << std::min(slot.consecutive_failures - 1, 16));
    delay = std::min(delay, options_.backoff_max);
    CLAMS_LOG(kError, "worker {} failed {} time(s) in a row; next start in {:.1f} s (crash loop protection)",
              slot.info.id, slot.consecutive_failures, delay.count() / 1000.0);
  }
  slot.info.state = vram::WorkerState::kStarting;
  slot.info.pid = 0;
  const int id = slot.info.id;
  slot.spawn_timer = loop_.After(delay, [this, id] {
    Slot* s = Find(id);
    if (s != nullptr && !shutting_down_) Spawn(*s);
  });
}

void ProcessExecutor::OnReadyPipe(int slot_id, std::uint64_t generation) {
  Slot* slot = Find(slot_id);
  if (slot == nullptr || slot->generation != generation || slot->ready_fd < 0) return;
  char buf[16] = {0};
  const ssize_t n = ::read(slot->ready_fd, buf, sizeof(buf) - 1);
  ::close(slot->ready_fd);
  slot->ready_fd = -1;
  if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)).rfind(kReadyToken, 0) == 0) {
    BecomeReady(*slot);
  }
  // EOF without the token: the worker died while starting; OnExit handles it.
}

void ProcessExecutor::OnStderr(int slot_id, std::uint64_t generation) {
  Slot* slot = Find(slot_id);
  if (slot == nullptr || slot->generation != generation || slot->stderr_fd < 0) return;
  DrainStderr(*slot, /*worker_gone=*/false);
  if (slot->stderr_fd >= 0) {
    loop_.WatchReadable(slot->stderr_fd, [this, slot_id, generation] { OnStderr(slot_id, generation); });
  }
}

void ProcessExecutor::DrainStderr(Slot& slot, bool worker_gone) {
  char buf[kStderrReadBytes];
  while (slot.stderr_fd >= 0) {
    const ssize_t n = ::read(slot.stderr_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !worker_gone) return;
    if (n <= 0) {
      // EOF (or, when the worker is gone, nothing more to read now: a
      // process it left behind may still hold the pipe).
      if (!slot.stderr_partial.empty()) StderrLine(slot, slot.stderr_partial);
      slot.stderr_partial.clear();
      ::close(slot.stderr_fd);
      slot.stderr_fd = -1;
      return;
    }
    slot.stderr_partial.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl = slot.stderr_partial.find('\n'); nl != std::string::npos;
         nl = slot.stderr_partial.find('\n', start)) {
      StderrLine(slot, std::string_view(slot.stderr_partial).substr(start, nl - start));
      start = nl + 1;
    }
    slot.stderr_partial.erase(0, start);
    if (slot.stderr_partial.size() > kStderrLineMaxBytes) {
      StderrLine(slot, slot.stderr_partial);
      slot.stderr_partial.clear();
    }
  }
}

void ProcessExecutor::StderrLine(Slot& slot, std::string_view line) {
  std::string text = PrintableLine(line);
  CLAMS_LOG(kInfo, "worker {} (pid {}): {}", slot.info.id, slot.info.pid, text);
  slot.stderr_tail.push_back(std::move(text));
  while (slot.stderr_tail.size() > kStderrTailLines) slot.stderr_tail.pop_front();
}

bool ProcessExecutor::GiveUp(Slot& slot, int status) {
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::string why;
  if (code == kExitCommandNotFound) {
    why = "the command could not be executed (not found, or not executable)";
  } else if (auto it = options_.give_up_exit_codes.find(code); code >= 0 && it != options_.give_up_exit_codes.end()) {
    why = it->second;
  } else if (options_.give_up_after_failures > 0 && slot.consecutive_failures >= options_.give_up_after_failures) {
    why = "it failed " + std::to_string(slot.consecutive_failures) + " times in a row";
  } else {
    return false;
  }
  std::string message = "worker " + std::to_string(slot.info.id) + " " + DescribeExit(status) +
                        " before any worker ever answered: " + why;
  if (slot.stderr_tail.empty()) {
    message += "; it wrote nothing to stderr";
  } else {
    message += "; its last output:";
    for (const std::string& line : slot.stderr_tail) message += "\n  " + line;
  }
  gave_up_ = true;
  slot.info.state = vram::WorkerState::kStopping;
  options_.on_give_up(message);
  return true;
}

void ProcessExecutor::PollExternalReady(int slot_id, std::uint64_t generation) {
  Slot* slot = Find(slot_id);
  if (slot == nullptr || slot->generation != generation || slot->info.state != vram::WorkerState::kStarting ||
      slot->info.pid <= 0) {
    return;
  }
  auto conn = std::shared_ptr<HttpConnection>(HttpConnection::Create(loop_, EndpointOf(*slot)));
  HttpRequest probe;
  probe.method = "GET";
  probe.target = "/";
  conn->Send(std::move(probe), std::chrono::milliseconds(5000),
             [this, slot_id, generation, conn](StatusOr<HttpResponse> r) {
               Slot* s = Find(slot_id);
               if (s == nullptr || s->generation != generation) return;
               if (r.ok() && r->status == 200) {
                 BecomeReady(*s);
               } else if (s->info.state == vram::WorkerState::kStarting && s->info.pid > 0) {
                 loop_.After(kExternalReadyPoll, [this, slot_id, generation] { PollExternalReady(slot_id, generation); });
               }
             });
}

void ProcessExecutor::BecomeReady(Slot& slot) {
  loop_.Cancel(slot.ready_timer);
  ever_ready_ = true;
  slot.info.state = vram::WorkerState::kIdle;
  slot.info.last_used = Clock::now();
  slot.conn = HttpConnection::Create(loop_, EndpointOf(slot));
  CLAMS_LOG(kInfo, "worker {} ready (pid {}, {:.0f} ms to start)", slot.info.id, slot.info.pid,
            std::chrono::duration<double, std::milli>(Clock::now() - slot.spawned).count());
  if (reloading_slot_ == slot.info.id) reloading_slot_ = 0;
  AdvanceReload();
  Notify();
}

void ProcessExecutor::Reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& s : slots_) {
      if (s->info.pid == pid) {
        OnExit(*s, status);
        break;
      }
    }
  }
}

void ProcessExecutor::OnExit(Slot& slot, int status) {
  const std::string how = DescribeExit(status);
  const int pid = slot.info.pid;
  const bool was_starting = slot.info.state == vram::WorkerState::kStarting;
  const bool expected = slot.stopping;
  loop_.Cancel(slot.ready_timer);
  loop_.Cancel(slot.stop_timer);
  loop_.Cancel(slot.request_timer);
  loop_.Cancel(slot.lost_timer);
  if (slot.ready_fd >= 0) {
    ::close(slot.ready_fd);
    slot.ready_fd = -1;
  }
  // What the worker wrote before it ended (the tail goes into messages).
  DrainStderr(slot, /*worker_gone=*/true);
  slot.conn.reset();
  slot.info.pid = 0;
  if (!slot.socket_path.empty() && options_.external_command.empty()) {
    std::error_code ec;
    std::filesystem::remove(slot.socket_path, ec);
  }

  if (slot.done) {
    ExecResult r;
    if (slot.timed_out) {
      r.fate = ExecResult::Fate::kTimedOut;
      r.fate_text = "the request ran longer than --request-timeout; worker " + std::to_string(slot.info.id) +
                    " (pid " + std::to_string(pid) + ") was killed";
    } else if (slot.killed_after_loss) {
      r.fate = ExecResult::Fate::kLost;
      r.fate_text = "lost the connection to worker " + std::to_string(slot.info.id) + " (pid " + std::to_string(pid) +
                    "): " + slot.connection_error;
    } else {
      r.fate = ExecResult::Fate::kWorkerDied;
      r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      r.fate_text = "worker " + std::to_string(slot.info.id) + " (pid " + std::to_string(pid) + ") " + how +
                    " while running the request";
    }
    auto done = std::move(slot.done);
    slot.done = nullptr;
    slot.timed_out = false;
    slot.connection_lost = false;
    slot.killed_after_loss = false;
    CLAMS_LOG(kError, "{}", r.fate_text);
    metrics_.Add("clams_worker_restarts_total", {{"reason", r.fate == ExecResult::Fate::kTimedOut ? "timeout" : "crash"}});
    ++restarts_;
    done(std::move(r));
  } else if (!expected) {
    CLAMS_LOG(kError, "worker {} (pid {}) {}{}", slot.info.id, pid, how, was_starting ? " while starting" : "");
    metrics_.Add("clams_worker_restarts_total", {{"reason", "crash"}});
    ++restarts_;
  } else {
    CLAMS_LOG(kInfo, "worker {} (pid {}) stopped ({}): {}", slot.info.id, pid, slot.stop_reason, how);
  }

  if (!expected) {
    // Crashes soon after start count towards the crash-loop backoff; a
    // worker that ran healthily for a while restarts at once.
    if (was_starting || Clock::now() - slot.spawned < options_.healthy_after) {
      ++slot.consecutive_failures;
    } else {
      slot.consecutive_failures = 0;
    }
    // A command that never worked is not retried forever.
    if (!ever_ready_ && !shutting_down_ && !gave_up_ && options_.on_give_up && GiveUp(slot, status)) return;
  }
  slot.stopping = false;
  slot.info.state = vram::WorkerState::kStarting;

  if (shutting_down_) {
    slot.info.state = vram::WorkerState::kStopping;
    const bool all_gone = std::all_of(slots_.begin(), slots_.end(), [](const auto& s) { return s->info.pid == 0; });
    if (all_gone && shutdown_done_) {
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      done();
    }
    return;
  }
  ScheduleSpawn(slot);
  Notify();
}

void ProcessExecutor::Dispatch(int worker_id, std::shared_ptr<ExecRequest> request,
                               std::function<void(ExecResult)> done) {
  Slot* slot = Find(worker_id);
  if (slot == nullptr || slot->info.state != vram::WorkerState::kIdle || !slot->conn) {
    ExecResult r;
    r.fate = ExecResult::Fate::kNotSent;
    r.fate_text = "worker " + std::to_string(worker_id) + " is not available";
    done(std::move(r));
    return;
  }
  slot->info.state = vram::WorkerState::kBusy;
  slot->done = std::move(done);
  slot->timed_out = false;
  slot->connection_lost = false;
  slot->killed_after_loss = false;
  const int id = slot->info.id;
  const std::uint64_t gen = slot->generation;
  if (request->timeout.count() > 0) {
    slot->request_timer = loop_.After(request->timeout, [this, id, gen] {
      Slot* s = Find(id);
      if (s == nullptr || s->generation != gen || !s->done || s->info.pid <= 0) return;
      CLAMS_LOG(kWarning, "worker {} (pid {}) exceeded --request-timeout: killing it", id, s->info.pid);
      s->timed_out = true;
      KillTree(s->info.pid, SIGKILL);
    });
  }
  HttpRequest req;
  req.method = "POST";
  req.target = request->target.empty() ? "/" : request->target;
  req.headers.emplace_back("Content-Type", "application/json");
  req.body = std::move(request->body);
  slot->conn->Send(std::move(req), std::chrono::milliseconds(0),
                   [this, id, gen](StatusOr<HttpResponse> r) { OnResponse(id, gen, std::move(r)); });
  Notify();
}

void ProcessExecutor::OnResponse(int slot_id, std::uint64_t generation, StatusOr<HttpResponse> response) {
  Slot* slot = Find(slot_id);
  if (slot == nullptr || slot->generation != generation || !slot->done) return;
  if (!response.ok()) {
    // The worker is probably dying: wait for its exit status to say how;
    // kill it if it lingers.
    slot->connection_lost = true;
    slot->connection_error = response.status().message();
    if (slot->info.pid > 0) {
      const int pid = slot->info.pid;
      slot->lost_timer = loop_.After(kLostConnectionGrace, [this, slot_id, generation, pid] {
        Slot* s = Find(slot_id);
        if (s != nullptr && s->generation == generation && s->info.pid == pid) {
          s->killed_after_loss = true;
          KillTree(pid, SIGKILL);
        }
      });
    }
    return;
  }
  loop_.Cancel(slot->request_timer);
  ExecResult r;
  AnnotateOutcome& a = r.answer;
  a.http_status = response->status;
  a.content_type = response->content_type;
  a.body = std::move(response->body);
  const std::string_view failure = FindHeader(response->headers, kFailureHeader);
  if (failure == "app-oom") {
    a.failure = FailureKind::kAppOom;
  } else if (failure == "app-error") {
    a.failure = FailureKind::kAppError;
  } else if (failure == "bad-input") {
    a.failure = FailureKind::kBadInput;
  } else if (failure == "bad-parameters") {
    a.failure = FailureKind::kBadParameters;
  } else if (a.http_status >= 500 && !FindHeader(response->headers, kOomHeader).empty()) {
    a.failure = FailureKind::kAppOom;  // the Python adapter's mark of a framework OOM
  } else if (!options_.external_command.empty() && a.http_status >= 500 && LooksLikeOutOfMemory(a.body)) {
    a.failure = FailureKind::kAppOom;  // an external app's CUDA OOM answer
  }
  if (a.failure == FailureKind::kAppOom || a.failure == FailureKind::kAppError) a.error = "app failure";
  std::string_view views = FindHeader(response->headers, kNewViewsHeader);
  while (!views.empty()) {
    auto comma = views.find(',');
    if (comma != 0) a.new_view_ids.emplace_back(views.substr(0, comma));
    if (comma == std::string_view::npos) break;
    views.remove_prefix(comma + 1);
  }
  a.hw_fetch = FindHeader(response->headers, kHwFetchHeader) == "1";

  auto done = std::move(slot->done);
  slot->done = nullptr;
  slot->info.state = vram::WorkerState::kIdle;
  slot->info.requests++;
  slot->info.last_used = Clock::now();
  if (slot->info.max_requests > 0 && slot->info.requests >= slot->info.max_requests) {
    Stop(*slot, "max_requests", true);
  }
  done(std::move(r));
  AdvanceReload();
}

void ProcessExecutor::Stop(Slot& slot, std::string_view reason, bool count_restart) {
  if (slot.stopping || slot.info.pid <= 0) return;
  slot.stopping = true;
  slot.stop_reason = std::string(reason);
  slot.info.state = vram::WorkerState::kStopping;
  if (count_restart) {
    metrics_.Add("clams_worker_restarts_total", {{"reason", std::string(reason)}});
    ++restarts_;
  }
  const int pid = slot.info.pid;
  KillTree(pid, SIGTERM);
  const int id = slot.info.id;
  const std::uint64_t gen = slot.generation;
  slot.stop_timer = loop_.After(options_.stop_timeout, [this, id, gen, pid] {
    Slot* s = Find(id);
    if (s != nullptr && s->generation == gen && s->info.pid == pid) {
      CLAMS_LOG(kWarning, "worker {} (pid {}) did not stop after SIGTERM: killing it", id, pid);
      KillTree(pid, SIGKILL);
    }
  });
}

void ProcessExecutor::Recycle(int worker_id, std::string_view reason) {
  Slot* slot = Find(worker_id);
  if (slot == nullptr) return;
  if (slot->info.state == vram::WorkerState::kBusy) {
    CLAMS_LOG(kWarning, "not recycling busy worker {} ({})", worker_id, reason);
    return;
  }
  Stop(*slot, reason, true);
  Notify();
}

void ProcessExecutor::ReplaceAll() {
  CLAMS_LOG(kInfo, "SIGHUP: replacing {} worker(s) one by one", slots_.size());
  for (auto& s : slots_) s->reload_pending = true;
  AdvanceReload();
}

void ProcessExecutor::AdvanceReload() {
  // One at a time: wait while the last replaced worker is on its way back.
  if (shutting_down_ || reloading_slot_ != 0) return;
  for (auto& s : slots_) {
    if (!s->reload_pending) continue;
    if (s->info.state == vram::WorkerState::kIdle) {
      s->reload_pending = false;
      reloading_slot_ = s->info.id;
      Stop(*s, "reload", true);
      return;
    }
    if (s->info.state == vram::WorkerState::kStarting || s->info.state == vram::WorkerState::kStopping) {
      s->reload_pending = false;  // it is being replaced anyway
    }
    // Busy: try again after its answer.
  }
}

void ProcessExecutor::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  bool any = false;
  for (auto& s : slots_) {
    loop_.Cancel(s->spawn_timer);
    if (s->info.pid > 0) {
      any = true;
      Stop(*s, "shutdown", false);
    }
  }
  if (!any && shutdown_done_) {
    auto d = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    d();
  }
}

}  // namespace clams::server
