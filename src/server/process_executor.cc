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
#include "server/keeper.h"

extern char** environ;

namespace clams::server {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::chrono::milliseconds kLostConnectionGrace{2000};
constexpr std::chrono::milliseconds kExternalReadyPoll{200};
constexpr std::chrono::milliseconds kExternalProbeTimeout{5000};
constexpr std::string_view kReadyToken = "ready";
// One read() of a worker's stderr pipe.
constexpr std::size_t kStderrReadBytes = 4096;
// Descriptors the keeper finds: native workers' ready pipe is fd 3 (the
// worker's --clams-worker-ready-fd) and the channel fd 4; external workers'
// stderr pipe is fd 2 and the channel fd 3.
constexpr int kReadyFd = 3;
constexpr int kNativeChannelFd = 4;
constexpr int kExternalChannelFd = 3;
// In the child before exec, descriptors are first moved at or above this
// (above every target) so that no dup2() overwrites a source.
constexpr int kScratchFd = 10;
// The name of an external worker's keeper: also the prefix of the line it
// writes when the command cannot be executed.
constexpr char kExternalKeeperName[] = "clams serve";

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

// What the client is told when the server killed a worker under its request.
std::string KilledText(int worker_id, KillCause cause) {
  const std::string w = "worker " + std::to_string(worker_id);
  switch (cause) {
    case KillCause::kRequestTimeout:
      return w + " was restarted because another request on it ran past --request-timeout";
    case KillCause::kClientGone: return w + " was stopped because its client went away";
    case KillCause::kShutdown: return w + " was stopped because the server is shutting down";
    case KillCause::kLostConnection: return "the connection to " + w + " was lost and it was restarted";
    default: return w + " was stopped by the server (" + std::string(KillCauseName(cause)) + ")";
  }
}

}  // namespace

std::string_view KillCauseName(KillCause cause) {
  switch (cause) {
    case KillCause::kNone: return "none";
    case KillCause::kRequestTimeout: return "request_timeout";
    case KillCause::kClientGone: return "client_gone";
    case KillCause::kEvict: return "evict";
    case KillCause::kDrift: return "drift";
    case KillCause::kOom: return "oom";
    case KillCause::kMaxRequests: return "max_requests";
    case KillCause::kReload: return "reload";
    case KillCause::kShutdown: return "shutdown";
    case KillCause::kReadyTimeout: return "ready_timeout";
    case KillCause::kLostConnection: return "lost_connection";
    case KillCause::kScaleDown: return "scale_down";
  }
  return "unknown";
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return "was killed by signal " + std::to_string(sig) + " (" + SignalName(sig) + ")";
  }
  return "ended (status " + std::to_string(status) + ")";
}

// One worker slot: its own connection, one request running at a time, and
// with ProcessExecutorOptions::take_ahead one more pipelined behind it.
struct Connection {
  std::unique_ptr<HttpConnection> http;
  std::function<void(ExecResult)> done;
  // The request taken ahead: written behind the running one, which the
  // worker answers first. It starts (and its timeout with it) when that
  // answer is read.
  std::function<void(ExecResult)> next_done;
  std::chrono::milliseconds next_timeout{0};
  // --request-timeout of the running request. The timer is not set per
  // request: a pending wait that ends before the deadline waits again for
  // the rest, and one that finds the slot idle just ends (each set timer is
  // an allocation, and each cancelled one a completion to run).
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point timer_at{};
  EventLoop::TimerId request_timer = 0;
  bool timed_out = false;
};

struct ProcessExecutor::Worker {
  int id = 0;
  int device = -1;
  // The keeper (our child; 0: none runs) and the worker under it (0 until
  // the keeper reported it). A worker "runs" while its keeper does.
  int keeper = 0;
  int pid = 0;
  int channel_fd = -1;           // to the keeper: its report in, kill commands out
  bool ready_on_report = false;  // ready before its pid was known
  std::uint64_t generation = 0;  // bumps at every spawn; stale callbacks compare it
  bool ready = false;
  std::string socket_path;
  int port = 0;
  int ready_fd = -1;
  // External workers: the read end of the stderr pipe, the unfinished last
  // line and the last kStderrTailLines lines.
  int stderr_fd = -1;
  std::string stderr_partial;
  std::deque<std::string> stderr_tail;
  std::vector<Connection> slots;
  Clock::time_point spawned;
  EventLoop::TimerId ready_timer = 0;
  EventLoop::TimerId stop_timer = 0;
  EventLoop::TimerId spawn_timer = 0;
  EventLoop::TimerId lost_timer = 0;
  std::string connection_error;
  bool killed_after_loss = false;
  // Supervision.
  bool stopping = false;                    // SIGTERM or SIGKILL sent
  KillCause stop_cause = KillCause::kNone;  // why the server stopped or killed it
  KillCause retire_cause = KillCause::kNone;  // stop once it runs nothing
  bool reload_pending = false;
  bool served = false;  // answered at least one request since spawn
  bool removed = false;  // scaled down: not respawned
  int consecutive_failures = 0;
  std::uint64_t requests = 0;
  std::uint64_t max_requests = 0;

  // Requests sent to it and not answered (those taken ahead included).
  int running() const {
    int n = 0;
    for (const Connection& c : slots) n += (c.done != nullptr) + (c.next_done != nullptr);
    return n;
  }
};

ProcessExecutor::ProcessExecutor(EventLoop& loop, Metrics& metrics, ProcessExecutorOptions options)
    : loop_(loop), metrics_(metrics), options_(std::move(options)), rng_(std::random_device{}()) {
  options_.threads = std::max(1, options_.threads);
}

ProcessExecutor::~ProcessExecutor() {
  // Keepers still running kill their workers' trees and exit.
  for (auto& w : workers_) SendKill(*w);
  for (auto& w : workers_) {
    if (w->channel_fd >= 0) ::close(w->channel_fd);
    if (w->keeper > 0) {
      int status = 0;
      ::waitpid(w->keeper, &status, 0);
    }
    if (w->ready_fd >= 0) ::close(w->ready_fd);
    if (w->stderr_fd >= 0) ::close(w->stderr_fd);
  }
}

int ProcessExecutor::Ahead(const Worker& w) const { return options_.take_ahead && w.device < 0 ? 1 : 0; }

ProcessExecutor::Worker* ProcessExecutor::Find(int worker_id) {
  for (auto& w : workers_) {
    if (w->id == worker_id) return w.get();
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

void ProcessExecutor::Emit(const Worker& w, WorkerEvent::Kind kind, KillCause cause, std::string how) {
  if (!on_event_) return;
  WorkerEvent e;
  e.kind = kind;
  e.worker_id = w.id;
  e.pid = w.pid;
  e.tree_pid = w.keeper;
  e.device = w.device;
  e.threads = options_.threads;
  e.ahead = Ahead(w);
  e.include_children = true;
  e.cause = cause;
  e.how = std::move(how);
  on_event_(e);
}

Status ProcessExecutor::Start(EventSink on_event) {
  on_event_ = std::move(on_event);
  std::error_code ec;
  if (!std::filesystem::is_directory(options_.socket_dir, ec)) {
    return FailedPreconditionError("the worker socket directory " + options_.socket_dir.string() + " does not exist");
  }
  loop_.OnSignal(SIGCHLD, [this] { Reap(); });
  AddWorkers(options_.worker_devices);
  return Status::Ok();
}

void ProcessExecutor::AddWorkers(const std::vector<int>& devices) {
  for (int device : devices) {
    auto w = std::make_unique<Worker>();
    w->id = static_cast<int>(workers_.size()) + 1;
    w->device = device;
    workers_.push_back(std::move(w));
    Spawn(*workers_.back());
  }
}

Endpoint ProcessExecutor::WorkerEndpoint(int worker_id) const {
  for (const auto& w : workers_) {
    if (w->id == worker_id) return EndpointOf(*w);
  }
  return Endpoint{};
}

std::vector<int> ProcessExecutor::ReadyWorkers() const {
  std::vector<int> out;
  for (const auto& w : workers_) {
    if (w->ready && !w->stopping) out.push_back(w->id);
  }
  return out;
}

Endpoint ProcessExecutor::EndpointOf(const Worker& w) const {
  // Native workers and external commands with {socket} listen on a Unix
  // socket; other external commands on their loopback {port}.
  const bool uses_socket =
      !External() || std::any_of(options_.external_command.begin(), options_.external_command.end(),
                                 [](const std::string& a) { return a.find("{socket}") != std::string::npos; });
  if (uses_socket) return Endpoint{w.socket_path, "", 0};
  return Endpoint{"", "127.0.0.1", static_cast<std::uint16_t>(w.port)};
}

void ProcessExecutor::Spawn(Worker& w) {
  w.generation++;
  w.ready = false;
  w.ready_on_report = false;
  w.requests = 0;
  w.max_requests = DrawMaxRequests();
  w.keeper = 0;
  w.pid = 0;
  w.stopping = false;
  w.stop_cause = KillCause::kNone;
  w.retire_cause = KillCause::kNone;
  w.served = false;
  w.killed_after_loss = false;
  w.slots.clear();
  w.spawned = Clock::now();

  // Everything the child needs is prepared before fork(): after it only
  // async-signal-safe calls are allowed (the front has other threads).
  std::vector<std::string> command;
  std::string keeper_name;
  if (External()) {
    w.port = FreeLoopbackPort();
    w.socket_path = (options_.socket_dir / ("app-" + std::to_string(w.id) + ".sock")).string();
    std::error_code ec;
    std::filesystem::remove(w.socket_path, ec);  // a previous copy's socket
    for (const auto& a : options_.external_command) {
      command.push_back(Replace(Replace(a, "{port}", std::to_string(w.port)), "{socket}", w.socket_path));
    }
    keeper_name = kExternalKeeperName;
  } else {
    w.socket_path =
        (options_.socket_dir / ("worker-" + std::to_string(w.id) + "-" + std::to_string(w.generation) + ".sock"))
            .string();
    command.push_back(options_.executable);
    command.insert(command.end(), options_.worker_args.begin(), options_.worker_args.end());
    command.push_back("--clams-worker-socket");
    command.push_back(w.socket_path);
    command.push_back("--clams-worker-ready-fd");
    command.push_back(std::to_string(kReadyFd));
    keeper_name = options_.executable;
  }
  const int channel_target = External() ? kExternalChannelFd : kNativeChannelFd;
  std::vector<std::string> args = keeper::CommandLine(keeper_name, channel_target, command);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view kv(*e);
    if (kv.rfind("CUDA_VISIBLE_DEVICES=", 0) == 0 || kv.rfind("CUDA_DEVICE_ORDER=", 0) == 0 ||
        kv.rfind("CLAMS_WORKER_ID=", 0) == 0) {
      continue;
    }
    env.emplace_back(kv);
  }
  if (w.device >= 0) {
    std::string pin = std::to_string(w.device);
    for (const auto& d : options_.devices) {
      if (d.index == w.device && !d.uuid.empty()) pin = d.uuid;
    }
    env.push_back("CUDA_VISIBLE_DEVICES=" + pin);
    env.push_back("CUDA_DEVICE_ORDER=PCI_BUS_ID");
  } else if (!options_.devices.empty()) {
    env.push_back("CUDA_VISIBLE_DEVICES=");
  }
  env.push_back("CLAMS_WORKER_ID=" + std::to_string(w.id));
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  // Native workers: a pipe for the ready handshake (fd 3). External ones:
  // a pipe for their stderr. Both: the channel to the keeper, whose end in
  // the front closes when the front dies, however it dies.
  int pipe_fds[2] = {-1, -1};
  int channel[2] = {-1, -1};
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0 || ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, channel) != 0) {
    CLAMS_LOG(kError, "cannot create a pipe for worker {}: {}", w.id, std::strerror(errno));
    for (int fd : {pipe_fds[0], pipe_fds[1]}) {
      if (fd >= 0) ::close(fd);
    }
    ++w.consecutive_failures;
    ScheduleSpawn(w);
    return;
  }
  // Written by the child if the keeper cannot be executed (prepared here:
  // after fork only async-signal-safe calls).
  const std::string exec_failed =
      keeper_name + ": cannot start the worker's keeper " + options_.keeper_executable + ": ";
  const char* keeper_path = options_.keeper_executable.c_str();
  const bool external = External();
  const pid_t front = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    CLAMS_LOG(kError, "cannot start worker {}: fork failed: {}", w.id, std::strerror(errno));
    for (int fd : {pipe_fds[0], pipe_fds[1], channel[0], channel[1]}) ::close(fd);
    ++w.consecutive_failures;
    ScheduleSpawn(w);
    return;
  }
  if (pid == 0) {
    // Child, soon the keeper: learns the front's death (kFrontDiedSignal,
    // and EOF on the channel), own process group (a terminal's Ctrl-C
    // reaches only the front, which drains), its descriptors at their
    // places and no others, default signals.
    ::prctl(PR_SET_PDEATHSIG, keeper::kFrontDiedSignal);
    if (::getppid() != front) ::_exit(kExitCommandNotFound);
    ::setpgid(0, 0);
    const int pipe_end = ::fcntl(pipe_fds[1], F_DUPFD, kScratchFd);
    const int channel_end = ::fcntl(channel[1], F_DUPFD, kScratchFd);
    if (pipe_end < 0 || channel_end < 0) ::_exit(kExitCommandNotFound);
    ::dup2(pipe_end, external ? STDERR_FILENO : kReadyFd);
    ::dup2(channel_end, channel_target);
    ::close_range(static_cast<unsigned>(channel_target) + 1, ~0U, 0);
    ::signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::execve(keeper_path, argv.data(), envp.data());
    const char* why = ::strerrordesc_np(errno);
    if (why == nullptr) why = "unknown error";
    (void)!::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
    (void)!::write(STDERR_FILENO, why, std::strlen(why));
    (void)!::write(STDERR_FILENO, "\n", 1);
    ::_exit(kExitCommandNotFound);
  }
  w.keeper = pid;
  CLAMS_LOG(kInfo, "worker {} starting: keeper pid {}{}", w.id, pid,
            w.device >= 0 ? ", device " + std::to_string(w.device) : "");
  const int id = w.id;
  const std::uint64_t gen = w.generation;
  ::close(pipe_fds[1]);
  ::close(channel[1]);
  if (w.channel_fd >= 0) ::close(w.channel_fd);
  w.channel_fd = channel[0];
  ::fcntl(w.channel_fd, F_SETFL, ::fcntl(w.channel_fd, F_GETFL) | O_NONBLOCK);
  loop_.WatchReadable(w.channel_fd, [this, id, gen] { OnKeeperReport(id, gen); });
  if (!External()) {
    w.ready_fd = pipe_fds[0];
    loop_.WatchReadable(w.ready_fd, [this, id, gen] { OnReadyPipe(id, gen); });
  } else {
    ::fcntl(pipe_fds[0], F_SETFL, ::fcntl(pipe_fds[0], F_GETFL) | O_NONBLOCK);
    if (w.stderr_fd >= 0) ::close(w.stderr_fd);
    w.stderr_fd = pipe_fds[0];
    w.stderr_partial.clear();
    loop_.WatchReadable(w.stderr_fd, [this, id, gen] { OnStderr(id, gen); });
    loop_.After(kExternalReadyPoll, [this, id, gen] { PollExternalReady(id, gen); });
  }
  w.ready_timer = loop_.After(options_.ready_timeout, [this, id, gen] {
    Worker* s = Find(id);
    if (s == nullptr || s->generation != gen || s->ready || s->keeper <= 0) return;
    CLAMS_LOG(kError, "worker {} (pid {}) was not ready after {} s: killing it", id, s->pid,
              options_.ready_timeout.count() / 1000);
    KillNow(*s, KillCause::kReadyTimeout);
  });
  // Its pid is not known yet (the keeper reports it); its tree's root is.
  Emit(w, WorkerEvent::Kind::kStarted);
}

void ProcessExecutor::OnKeeperReport(int worker_id, std::uint64_t generation) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->generation != generation) return;
  ReadKeeperReport(*w);
}

// The keeper's one message: the worker's pid. A worker becomes ready only
// once it is known (kReady carries it).
void ProcessExecutor::ReadKeeperReport(Worker& w) {
  if (w.pid > 0 || w.channel_fd < 0 || w.keeper <= 0) return;
  std::int32_t pid = 0;
  const ssize_t n = ::recv(w.channel_fd, &pid, sizeof(pid), MSG_DONTWAIT);
  if (n != static_cast<ssize_t>(sizeof(pid)) || pid <= 0) return;  // EOF: the keeper ended; OnExit follows
  w.pid = pid;
  CLAMS_LOG(kInfo, "worker {} started: pid {} (keeper pid {})", w.id, w.pid, w.keeper);
  if (w.ready_on_report) BecomeReady(w);
}

// Asks the keeper to SIGKILL the worker's tree (it then exits as the worker
// did: killed by SIGKILL).
void ProcessExecutor::SendKill(Worker& w) {
  if (w.keeper <= 0 || w.channel_fd < 0) return;
  const char command = keeper::kKillCommand;
  const bool sent = ::send(w.channel_fd, &command, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1;
  if (!sent && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    // It does not read its commands: end it the hard way (the worker dies
    // with it; the rest of the tree may not). Other errors: the keeper is
    // gone and its exit is on its way.
    CLAMS_LOG(kWarning, "worker {}: the keeper (pid {}) does not take commands: killing it", w.id, w.keeper);
    ::kill(w.keeper, SIGKILL);
  }
}

void ProcessExecutor::ScheduleSpawn(Worker& w) {
  if (shutting_down_) return;
  std::chrono::milliseconds delay{0};
  if (w.consecutive_failures > 0) {
    delay = options_.backoff_initial * (1LL << std::min(w.consecutive_failures - 1, 16));
    delay = std::min(delay, options_.backoff_max);
    CLAMS_LOG(kError, "worker {} failed {} time(s) in a row without serving; next start in {:.1f} s (crash loop "
              "protection)", w.id, w.consecutive_failures, delay.count() / 1000.0);
  }
  w.keeper = 0;
  w.pid = 0;
  const int id = w.id;
  w.spawn_timer = loop_.After(delay, [this, id] {
    Worker* s = Find(id);
    if (s != nullptr && !shutting_down_) Spawn(*s);
  });
}

void ProcessExecutor::OnReadyPipe(int worker_id, std::uint64_t generation) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->generation != generation || w->ready_fd < 0) return;
  char buf[16] = {0};
  const ssize_t n = ::read(w->ready_fd, buf, sizeof(buf) - 1);
  ::close(w->ready_fd);
  w->ready_fd = -1;
  if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)).rfind(kReadyToken, 0) == 0) BecomeReady(*w);
  // EOF without the token: the worker died while starting; OnExit handles it.
}

void ProcessExecutor::OnStderr(int worker_id, std::uint64_t generation) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->generation != generation || w->stderr_fd < 0) return;
  DrainStderr(*w, /*worker_gone=*/false);
  if (w->stderr_fd >= 0) {
    loop_.WatchReadable(w->stderr_fd, [this, worker_id, generation] { OnStderr(worker_id, generation); });
  }
}

void ProcessExecutor::DrainStderr(Worker& w, bool worker_gone) {
  char buf[kStderrReadBytes];
  while (w.stderr_fd >= 0) {
    const ssize_t n = ::read(w.stderr_fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !worker_gone) return;
    if (n <= 0) {
      // EOF (or, when the worker is gone, nothing more to read now: a
      // process it left behind may still hold the pipe).
      if (!w.stderr_partial.empty()) StderrLine(w, w.stderr_partial);
      w.stderr_partial.clear();
      ::close(w.stderr_fd);
      w.stderr_fd = -1;
      return;
    }
    w.stderr_partial.append(buf, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t nl = w.stderr_partial.find('\n'); nl != std::string::npos; nl = w.stderr_partial.find('\n', start)) {
      StderrLine(w, std::string_view(w.stderr_partial).substr(start, nl - start));
      start = nl + 1;
    }
    w.stderr_partial.erase(0, start);
    if (w.stderr_partial.size() > kStderrLineMaxBytes) {
      StderrLine(w, w.stderr_partial);
      w.stderr_partial.clear();
    }
  }
}

void ProcessExecutor::StderrLine(Worker& w, std::string_view line) {
  std::string text = PrintableLine(line);
  CLAMS_LOG(kInfo, "worker {} (pid {}): {}", w.id, w.pid, text);
  w.stderr_tail.push_back(std::move(text));
  while (w.stderr_tail.size() > kStderrTailLines) w.stderr_tail.pop_front();
}

bool ProcessExecutor::GiveUp(Worker& w, int status) {
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::string why;
  if (code == kExitCommandNotFound) {
    why = "the command could not be executed (not found, or not executable)";
  } else if (auto it = options_.give_up_exit_codes.find(code); code >= 0 && it != options_.give_up_exit_codes.end()) {
    why = it->second;
  } else if (options_.give_up_after_failures > 0 && w.consecutive_failures >= options_.give_up_after_failures) {
    why = "it failed " + std::to_string(w.consecutive_failures) + " times in a row";
  } else {
    return false;
  }
  std::string message =
      "worker " + std::to_string(w.id) + " " + DescribeExit(status) + " before any worker ever answered: " + why;
  if (w.stderr_tail.empty()) {
    message += "; it wrote nothing to stderr";
  } else {
    message += "; its last output:";
    for (const std::string& line : w.stderr_tail) message += "\n  " + line;
  }
  gave_up_ = true;
  options_.on_give_up(message);
  return true;
}

void ProcessExecutor::PollExternalReady(int worker_id, std::uint64_t generation) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->generation != generation || w->ready || w->keeper <= 0) return;
  auto conn = std::shared_ptr<HttpConnection>(HttpConnection::Create(loop_, EndpointOf(*w)));
  HttpRequest probe;
  probe.method = "GET";
  probe.target = "/";
  conn->Send(std::move(probe), kExternalProbeTimeout, [this, worker_id, generation, conn](StatusOr<HttpResponse> r) {
    Worker* s = Find(worker_id);
    if (s == nullptr || s->generation != generation) return;
    if (r.ok() && r->status == 200) {
      BecomeReady(*s);
    } else if (!s->ready && s->keeper > 0) {
      loop_.After(kExternalReadyPoll, [this, worker_id, generation] { PollExternalReady(worker_id, generation); });
    }
  });
}

void ProcessExecutor::BecomeReady(Worker& w) {
  if (w.ready) return;
  if (w.pid <= 0) {
    // It answered before its keeper's report was read: ready on the report.
    w.ready_on_report = true;
    return;
  }
  loop_.Cancel(w.ready_timer);
  w.ready = true;
  ever_ready_ = true;
  w.slots.resize(static_cast<std::size_t>(options_.threads));
  for (auto& c : w.slots) c.http = HttpConnection::Create(loop_, EndpointOf(w));
  CLAMS_LOG(kInfo, "worker {} ready (pid {}, {:.0f} ms to start)", w.id, w.pid,
            std::chrono::duration<double, std::milli>(Clock::now() - w.spawned).count());
  if (reloading_worker_ == w.id) reloading_worker_ = 0;
  Emit(w, WorkerEvent::Kind::kReady);
  AdvanceReload();
}

void ProcessExecutor::Reap() {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& w : workers_) {
      if (w->keeper == pid) {
        OnExit(*w, status);
        break;
      }
    }
  }
}

// `status` is the keeper's, which ends as its worker did.
void ProcessExecutor::OnExit(Worker& w, int status) {
  w.ready_on_report = false;
  ReadKeeperReport(w);  // a report not read yet: the pid for the messages
  if (w.channel_fd >= 0) {
    ::close(w.channel_fd);
    w.channel_fd = -1;
  }
  const std::string how = DescribeExit(status);
  const int pid = w.pid;
  const int keeper = w.keeper;
  // For the log: the worker's pid, or its keeper's if it never reported one.
  const std::string who = pid > 0 ? "pid " + std::to_string(pid) : "keeper pid " + std::to_string(keeper);
  const bool expected = w.stop_cause != KillCause::kNone;
  const KillCause cause = w.stop_cause;
  loop_.Cancel(w.ready_timer);
  loop_.Cancel(w.stop_timer);
  loop_.Cancel(w.lost_timer);
  if (w.ready_fd >= 0) {
    ::close(w.ready_fd);
    w.ready_fd = -1;
  }
  // What the worker wrote before it ended (the tail goes into messages).
  DrainStderr(w, /*worker_gone=*/true);
  if (!w.socket_path.empty() && !External()) {
    std::error_code ec;
    std::filesystem::remove(w.socket_path, ec);
  }
  // The requests it was running.
  std::vector<std::pair<std::function<void(ExecResult)>, ExecResult>> ended;
  for (auto& c : w.slots) {
    loop_.Cancel(c.request_timer);
    if (!c.done) continue;
    ExecResult r;
    if (c.timed_out) {
      r.fate = ExecResult::Fate::kTimedOut;
      r.cause = KillCause::kRequestTimeout;
      r.fate_text = "the request ran longer than --request-timeout; worker " + std::to_string(w.id) + " was killed";
    } else if (w.killed_after_loss) {
      r.fate = ExecResult::Fate::kLost;
      r.cause = KillCause::kLostConnection;
      r.fate_text = "lost the connection to worker " + std::to_string(w.id) + ": " + w.connection_error;
    } else {
      r.fate = ExecResult::Fate::kWorkerDied;
      r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      r.cause = cause;
      r.fate_text = cause == KillCause::kNone
                        ? "worker " + std::to_string(w.id) + " " + how + " while running the request"
                        : KilledText(w.id, cause);
    }
    r.log_text = r.fate_text + " (" + who + ", " + how + ")";
    ended.emplace_back(std::move(c.done), std::move(r));
    c.done = nullptr;
    if (c.next_done) {
      // Taken ahead, it never started: it runs elsewhere.
      ExecResult n;
      n.fate = ExecResult::Fate::kNotSent;
      n.fate_text = "worker " + std::to_string(w.id) + " ended before it started the request taken ahead";
      n.log_text = n.fate_text + " (" + who + ", " + how + ")";
      ended.emplace_back(std::move(c.next_done), std::move(n));
      c.next_done = nullptr;
    }
  }
  w.slots.clear();
  w.ready = false;
  w.ready_on_report = false;
  w.keeper = 0;
  w.pid = 0;
  if (!expected) {
    CLAMS_LOG(kError, "worker {} ({}) {}{}", w.id, who, how, w.served ? "" : " before it served a request");
    metrics_.Add("clams_worker_restarts_total", {{"reason", "crash"}});
    ++restarts_;
    // A worker that never served counts towards the crash-loop backoff;
    // one that served restarts at once.
    w.consecutive_failures = w.served ? 0 : w.consecutive_failures + 1;
  } else {
    CLAMS_LOG(kInfo, "worker {} ({}) stopped ({}): {}", w.id, who, KillCauseName(cause), how);
    if (cause != KillCause::kShutdown) {
      metrics_.Add("clams_worker_restarts_total", {{"reason", std::string(KillCauseName(cause))}});
      ++restarts_;
    }
    if (cause == KillCause::kReadyTimeout) ++w.consecutive_failures;
  }
  {
    // The event carries the pid that ended.
    WorkerEvent e;
    e.kind = WorkerEvent::Kind::kExited;
    e.worker_id = w.id;
    e.pid = pid;
    e.tree_pid = keeper;
    e.device = w.device;
    e.threads = options_.threads;
    e.ahead = Ahead(w);
    e.include_children = true;
    e.cause = cause;
    e.how = how;
    if (on_event_) on_event_(e);
  }
  for (auto& [done, r] : ended) done(std::move(r));
  if (shutting_down_) {
    const bool all_gone =
        std::all_of(workers_.begin(), workers_.end(), [](const auto& x) { return x->keeper == 0; });
    if (all_gone && shutdown_done_) {
      auto done = std::move(shutdown_done_);
      shutdown_done_ = nullptr;
      done();
    }
    return;
  }
  if (reloading_worker_ == w.id && w.stop_cause != KillCause::kReload) reloading_worker_ = 0;
  if (w.removed) {
    Emit(w, WorkerEvent::Kind::kRemoved, KillCause::kScaleDown);
    return;
  }
  // A command that never worked is not retried for ever.
  if (!expected && !ever_ready_ && !gave_up_ && options_.on_give_up && GiveUp(w, status)) return;
  ScheduleSpawn(w);
}

void ProcessExecutor::Dispatch(int worker_id, std::shared_ptr<ExecRequest> request,
                               std::function<void(ExecResult)> done) {
  Worker* w = Find(worker_id);
  std::size_t slot = 0;
  bool free_slot = false;
  bool behind = false;
  if (w != nullptr && w->ready && !w->stopping && w->retire_cause == KillCause::kNone) {
    for (; slot < w->slots.size(); ++slot) {
      if (!w->slots[slot].done) {
        free_slot = true;
        break;
      }
    }
    if (!free_slot && Ahead(*w) > 0) {
      for (slot = 0; slot < w->slots.size(); ++slot) {
        if (!w->slots[slot].next_done) {
          free_slot = behind = true;
          break;
        }
      }
    }
  }
  if (!free_slot) {
    ExecResult r;
    r.fate = ExecResult::Fate::kNotSent;
    r.fate_text = "worker " + std::to_string(worker_id) + " has no free slot";
    done(std::move(r));
    return;
  }
  Connection& c = w->slots[slot];
  const int id = w->id;
  const std::uint64_t gen = w->generation;
  if (behind) {
    c.next_done = std::move(done);
    c.next_timeout = request->timeout;
  } else {
    c.done = std::move(done);
    StartRequest(*w, slot, request->timeout);
  }
  HttpRequest req = External() ? wire::EncodeForExternal(request->call) : wire::EncodeForNative(request->call);
  c.http->Send(std::move(req), std::chrono::milliseconds(0),
               [this, id, gen, slot](StatusOr<HttpResponse> r) { OnResponse(id, gen, slot, std::move(r)); });
}

// The request in `c.done` of the slot starts running: its --request-timeout
// (0: none) counts from now.
void ProcessExecutor::StartRequest(Worker& w, std::size_t slot, std::chrono::milliseconds timeout) {
  Connection& c = w.slots[slot];
  c.timed_out = false;
  c.deadline = timeout.count() > 0 ? loop_.Now() + timeout : Clock::time_point::max();
  ArmRequestTimer(w, slot);
}

void ProcessExecutor::ArmRequestTimer(Worker& w, std::size_t slot) {
  Connection& c = w.slots[slot];
  if (c.deadline == Clock::time_point::max()) return;
  if (c.request_timer != 0 && c.timer_at <= c.deadline) return;  // it fires first and waits again
  loop_.Cancel(c.request_timer);
  c.timer_at = c.deadline;
  const auto delay = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - loop_.Now());
  const int id = w.id;
  const std::uint64_t gen = w.generation;
  c.request_timer = loop_.After(std::max(delay, std::chrono::milliseconds(0)), [this, id, gen, slot] {
    Worker* s = Find(id);
    if (s == nullptr || s->generation != gen || slot >= s->slots.size()) return;
    Connection& t = s->slots[slot];
    t.request_timer = 0;
    if (!t.done) return;  // idle: the next request arms it again
    if (loop_.Now() < t.deadline) return ArmRequestTimer(*s, slot);
    if (s->keeper <= 0) return;
    CLAMS_LOG(kWarning, "worker {} (pid {}) exceeded --request-timeout: killing it", id, s->pid);
    t.timed_out = true;
    KillNow(*s, KillCause::kRequestTimeout);
  });
}

void ProcessExecutor::OnResponse(int worker_id, std::uint64_t generation, std::size_t slot,
                                 StatusOr<HttpResponse> response) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->generation != generation || slot >= w->slots.size() || !w->slots[slot].done) return;
  if (!response.ok()) {
    // The worker is probably dying: wait for its exit status to say how;
    // kill it if it lingers.
    w->connection_error = response.status().message();
    if (w->keeper > 0 && w->lost_timer == 0) {
      const int keeper = w->keeper;
      w->lost_timer = loop_.After(kLostConnectionGrace, [this, worker_id, generation, keeper] {
        Worker* s = Find(worker_id);
        if (s != nullptr && s->generation == generation && s->keeper == keeper) {
          s->lost_timer = 0;
          s->killed_after_loss = true;
          KillNow(*s, KillCause::kLostConnection);
        }
      });
    }
    return;
  }
  Connection& c = w->slots[slot];
  c.deadline = Clock::time_point::max();
  ExecResult r;
  r.answer = wire::DecodeAnswer(std::move(response).value(), External());
  auto done = std::move(c.done);
  c.done = nullptr;
  if (c.next_done) {
    // The request taken ahead starts now, with its whole timeout.
    c.done = std::move(c.next_done);
    c.next_done = nullptr;
    StartRequest(*w, slot, c.next_timeout);
  }
  w->requests++;
  w->served = true;
  w->consecutive_failures = 0;
  if (w->max_requests > 0 && w->requests >= w->max_requests && w->retire_cause == KillCause::kNone) {
    Retire(*w, KillCause::kMaxRequests);
  } else if (w->retire_cause != KillCause::kNone && w->running() == 0) {
    Stop(*w, w->retire_cause);
  }
  done(std::move(r));
  AdvanceReload();
}

// Stops `w` gracefully once it runs nothing: at once if idle, else it takes
// no new requests (kStopping) and stops after its last answer.
void ProcessExecutor::Retire(Worker& w, KillCause cause) {
  if (w.stopping || w.keeper <= 0) return;
  if (w.running() == 0) {
    Stop(w, cause);
    return;
  }
  if (w.retire_cause == KillCause::kNone) {
    w.retire_cause = cause;
    Emit(w, WorkerEvent::Kind::kStopping, cause);
  }
}

// SIGTERM to the keeper, which forwards it to the worker's process group.
void ProcessExecutor::Stop(Worker& w, KillCause cause) {
  if (w.stopping || w.keeper <= 0) return;
  w.stopping = true;
  w.stop_cause = cause;
  loop_.Cancel(w.spawn_timer);
  ::kill(w.keeper, SIGTERM);
  const int id = w.id;
  const std::uint64_t gen = w.generation;
  w.stop_timer = loop_.After(options_.stop_timeout, [this, id, gen] {
    Worker* s = Find(id);
    if (s != nullptr && s->generation == gen && s->keeper > 0) {
      CLAMS_LOG(kWarning, "worker {} (pid {}) did not stop after SIGTERM: killing it", id, s->pid);
      SendKill(*s);
    }
  });
  Emit(w, WorkerEvent::Kind::kStopping, cause);
}

void ProcessExecutor::KillNow(Worker& w, KillCause cause) {
  if (w.keeper <= 0) return;
  const bool announce = !w.stopping;
  w.stopping = true;
  if (w.stop_cause == KillCause::kNone || cause == KillCause::kRequestTimeout) w.stop_cause = cause;
  SendKill(w);
  if (announce) Emit(w, WorkerEvent::Kind::kStopping, cause);
}

void ProcessExecutor::Recycle(int worker_id, KillCause cause) {
  Worker* w = Find(worker_id);
  if (w == nullptr) return;
  Retire(*w, cause);
}

bool ProcessExecutor::Kill(int worker_id, KillCause cause) {
  Worker* w = Find(worker_id);
  if (w == nullptr || w->keeper <= 0) return false;
  CLAMS_LOG(kInfo, "killing worker {} (pid {}): {}", w->id, w->pid, KillCauseName(cause));
  KillNow(*w, cause);
  return true;
}

void ProcessExecutor::ReplaceAll() {
  CLAMS_LOG(kInfo, "SIGHUP: replacing {} worker(s) one by one", workers_.size());
  for (auto& w : workers_) w->reload_pending = true;
  AdvanceReload();
}

void ProcessExecutor::AdvanceReload() {
  // One at a time: wait while the last replaced worker is on its way back.
  if (shutting_down_ || reloading_worker_ != 0) return;
  for (auto& w : workers_) {
    if (!w->reload_pending) continue;
    if (!w->ready || w->stopping) {
      w->reload_pending = false;  // it is being replaced anyway
      continue;
    }
    w->reload_pending = false;
    reloading_worker_ = w->id;
    Retire(*w, KillCause::kReload);
    return;
  }
}

int ProcessExecutor::Scale(int delta) {
  auto active = [&] {
    int n = 0;
    for (const auto& w : workers_) n += w->removed ? 0 : 1;
    return n;
  };
  if (shutting_down_) return active();
  for (; delta > 0; --delta) {
    // The device with the most memory per worker gets the new one.
    int device = -1;
    double best = -1;
    for (const auto& d : options_.devices) {
      int on = 0;
      for (const auto& w : workers_) on += (!w->removed && w->device == d.index) ? 1 : 0;
      const double per = static_cast<double>(d.total_bytes) / (on + 1);
      if (per > best) {
        best = per;
        device = d.index;
      }
    }
    AddWorkers({device});
    CLAMS_LOG(kInfo, "SIGTTIN: worker {} added{} ({} now)", workers_.back()->id,
              device >= 0 ? " on device " + std::to_string(device) : "", active());
  }
  for (; delta < 0 && active() > 1; ++delta) {
    // The newest worker goes; it finishes what it runs first.
    for (auto it = workers_.rbegin(); it != workers_.rend(); ++it) {
      Worker& w = **it;
      if (w.removed) continue;
      w.removed = true;
      loop_.Cancel(w.spawn_timer);
      if (w.pid > 0) {
        Retire(w, KillCause::kScaleDown);
      } else {
        Emit(w, WorkerEvent::Kind::kRemoved, KillCause::kScaleDown);
      }
      CLAMS_LOG(kInfo, "SIGTTOU: worker {} removed once it finishes its requests ({} left)", w.id, active());
      break;
    }
  }
  return active();
}

void ProcessExecutor::Shutdown(std::function<void()> done) {
  shutting_down_ = true;
  shutdown_done_ = std::move(done);
  bool any = false;
  for (auto& w : workers_) {
    loop_.Cancel(w->spawn_timer);
    if (w->keeper > 0) {
      any = true;
      if (w->stopping) {
        w->stop_cause = KillCause::kShutdown;
      } else {
        Stop(*w, KillCause::kShutdown);
      }
    }
  }
  if (!any && shutdown_done_) {
    auto d = std::move(shutdown_done_);
    shutdown_done_ = nullptr;
    d();
  }
}

}  // namespace clams::server
