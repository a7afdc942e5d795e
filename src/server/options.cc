#include "server/options.h"

#include <cstdlib>
#include <string_view>

#include "clams/base/log.h"
#include "server/command_line.h"

namespace clams::server {

const std::vector<FlagInfo>& ServerFlagTable() {
  static const std::vector<FlagInfo>* table = new std::vector<FlagInfo>{
      {"--host", "", "0.0.0.0", "Address to listen on."},
      {"--port", "", "5000", "TCP port to listen on (0 picks a free one and logs it)."},
      {"--production", "", "off",
       "Serve with worker processes (one request at a time each), VRAM admission control and supervision."},
      {"--workers", "CLAMS_GUNICORN_WORKERS, then CLAMS_WORKERS", "auto",
       "Worker processes (production) or threads (development). Auto: min(2 x cores + 1, sum over GPUs of "
       "total MiB / est_gpu_mem_typ) for GPU apps, 2 x cores + 1 otherwise; development caps threads at 4."},
      {"--threads", "CLAMS_THREADS", "1",
       "Requests each worker runs at once, sharing one loaded copy of the model; admission is per request. "
       "Native apps: only when the app is thread-safe (else 1, with a warning). `clams serve app.py` starts "
       "its Python workers with this many threads."},
      {"--max-requests", "", "0",
       "Replace a worker after this many requests (0: workers persist and keep their models warm; 1: the "
       "Python SDK's behaviour)."},
      {"--max-requests-jitter", "", "0", "Add 0..N to each worker's --max-requests so they do not restart together."},
      {"--queue-timeout", "", "300", "Seconds a request may wait for admission before a 503 with Retry-After."},
      {"--max-queue", "", "100", "Waiting requests beyond which new ones get a 503 with Retry-After."},
      {"--vram-headroom", "", "0",
       "GPU memory kept free on every device: bytes (\"512MiB\") or a percentage of the device (\"5%\")."},
      {"--profile-dir", "CLAMS_PROFILE_DIR, XDG_CACHE_HOME", "~/.cache/clams/memory_profiles",
       "Where measured memory profiles are kept (one subfolder per app)."},
      {"--request-timeout", "", "0", "Seconds a request may run before its worker is killed and a 504 returned (0: none)."},
      {"--max-body-size", "", "256MiB",
       "Largest request body; larger ones get a 413 (a 6-hour pipeline's MMIF is ~50 MB; answers and the "
       "worker's document tree are many times the body)."},
      {"--log-level", "CLAMS_LOGLEVEL", "info", "trace, debug, info, warning, error, critical or off."},
      {"--log-format", "CLAMS_LOG_FORMAT", "text",
       "text (for people) or json (one object per line: time, level, pid, request_id, msg and fields)."},
      {"--config", "CLAMS_CONFIG", "none",
       "Read settings from FILE: one key = value per line (keys are these flags without --), # comments. "
       "Flags on the command line win; the file is re-read on SIGHUP."},
      {"--header-timeout", "", "30",
       "Seconds a client has to send a request's headers: counted from the accept for a connection's first request, "
       "from the request's first byte for every later one; past it the connection is closed."},
      {"--body-timeout", "", "300",
       "Seconds a client has to send a request's body, counted from the end of its headers; past it the answer is "
       "a 408 and the connection is closed."},
      {"--idle-timeout", "", "75",
       "Seconds a keep-alive connection may wait between an answer and the first byte of the next request."},
      {"--graceful-timeout", "", "300",
       "On SIGTERM: seconds to let queued and running requests finish before the workers are stopped."},
      {"--class-params", "", "all",
       "Comma-separated names of the parameters that shape GPU memory (e.g. model); the request class, which "
       "keys memory profiles, uses only these. Default: the app's own list, else every parameter."},
      {"--max-queued-bytes", "", "1GiB",
       "Request bodies the queue may hold in total; past it new requests get a 503 with Retry-After at once."},
      {"--client-gone-grace", "", "5",
       "Seconds a running request whose client disconnected may go on before it is cancelled (its worker "
       "recycled)."},
      {"--expose-runtime", "", "off",
       "Show worker pids, the profile directory and every request class's parameters in "
       "GET /?includeVRAM=true, and serve /status to every client (else to loopback clients only)."},
      {"--max-profiles", "", "1000",
       "Distinct request classes whose memory profiles are kept (least recently used dropped first)."},
      {"--vram-margin", "", "0.2", "Safety margin on measured peaks (0.2 = +20 %)."},
      {"--vram-conservative-fraction", "", "0.8",
       "Share of a device assumed for a request class with no declared, measured or metadata estimate."},
      {"--no-access-log", "", "off", "Do not log one line per request."},
  };
  return *table;
}

void RegisterServerFlags(CLI::App& app, ServerOptions& o) {
  auto help = [](std::string_view flag) {
    for (const auto& f : ServerFlagTable()) {
      if (f.flag == flag) return f.help;
    }
    return std::string();
  };
  app.add_option("--host", o.host, help("--host"))->capture_default_str();
  app.add_option("--port", o.port, help("--port"))->capture_default_str()->check(CLI::Range(0, 65535));
  app.add_flag("--production", o.production, help("--production"));
  app.add_option("--workers", o.workers, help("--workers"))->check(CLI::Range(1, 1024));
  app.add_option("--threads", o.threads, help("--threads"))
      ->envname("CLAMS_THREADS")
      ->capture_default_str()
      ->check(CLI::Range(1, kMaxThreadsPerWorker));
  app.add_option("--max-requests", o.max_requests, help("--max-requests"))->capture_default_str();
  app.add_option("--max-requests-jitter", o.max_requests_jitter, help("--max-requests-jitter"))
      ->capture_default_str();
  app.add_option("--queue-timeout", o.queue_timeout_seconds, help("--queue-timeout"))
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-queue", o.max_queue, help("--max-queue"))->capture_default_str();
  app.add_option("--vram-headroom", o.vram_headroom, help("--vram-headroom"));
  app.add_option("--profile-dir", o.profile_dir, help("--profile-dir"));
  app.add_option("--request-timeout", o.request_timeout_seconds, help("--request-timeout"))
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-body-size", o.max_body_size, help("--max-body-size"))->capture_default_str();
  app.add_option("--log-level", o.log_level, help("--log-level"));
  app.add_option("--log-format", o.log_format, help("--log-format"))->capture_default_str();
  app.add_option("--config", o.config_file, help("--config"));
  app.add_option("--header-timeout", o.header_timeout_seconds, help("--header-timeout"))
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--body-timeout", o.body_timeout_seconds, help("--body-timeout"))
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--idle-timeout", o.idle_timeout_seconds, help("--idle-timeout"))
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--graceful-timeout", o.graceful_timeout_seconds, help("--graceful-timeout"))
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--class-params", o.class_params, help("--class-params"));
  app.add_option("--max-queued-bytes", o.max_queued_bytes, help("--max-queued-bytes"))->capture_default_str();
  app.add_option("--client-gone-grace", o.client_gone_grace_seconds, help("--client-gone-grace"))
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--expose-runtime", o.expose_runtime, help("--expose-runtime"));
  app.add_option("--max-profiles", o.max_profiles, help("--max-profiles"))->capture_default_str()->check(CLI::Range(1, 10000000));
  app.add_option("--vram-margin", o.vram_margin, help("--vram-margin"))
      ->capture_default_str()
      ->check(CLI::Range(0.0, 10.0));
  app.add_option("--vram-conservative-fraction", o.vram_conservative_fraction, help("--vram-conservative-fraction"))
      ->capture_default_str()
      ->check(CLI::Range(0.01, 1.0));
  app.add_flag("--no-access-log", o.no_access_log, help("--no-access-log"));
  AddServerHelp(app);
  // Internal (worker role); hidden from --help.
  app.add_option("--clams-worker-socket", o.worker_socket)->group("");
  app.add_option("--clams-worker-ready-fd", o.worker_ready_fd)->group("");
}

std::vector<std::string> SplitNames(const std::string& text) {
  std::vector<std::string> out;
  std::string current;
  auto flush = [&] {
    while (!current.empty() && current.back() == ' ') current.pop_back();
    if (!current.empty()) out.push_back(current);
    current.clear();
  };
  for (char c : text) {
    if (c == ',') {
      flush();
    } else if (c != ' ' || !current.empty()) {
      current.push_back(c);
    }
  }
  flush();
  return out;
}

Status ApplyEnvironment(ServerOptions& o, bool workers_from_flag, std::string* workers_source) {
  if (o.log_level.empty()) {
    const char* env = std::getenv("CLAMS_LOGLEVEL");
    o.log_level = env != nullptr && *env != '\0' ? env : "info";
  }
  if (workers_from_flag) {
    if (workers_source != nullptr) *workers_source = "--workers";
    return Status::Ok();
  }
  for (const char* name : {"CLAMS_GUNICORN_WORKERS", "CLAMS_WORKERS"}) {
    const char* env = std::getenv(name);
    if (env == nullptr || *env == '\0') continue;
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end == env || *end != '\0' || v < 1 || v > 1024) {
      return InvalidArgumentError(std::string(name) + "=" + env + " is not a worker count between 1 and 1024");
    }
    o.workers = static_cast<int>(v);
    if (workers_source != nullptr) *workers_source = name;
    return Status::Ok();
  }
  return Status::Ok();
}

std::string FlagsMarkdown() {
  std::string out = "| flag | environment | default | meaning |\n|---|---|---|---|\n";
  for (const auto& f : ServerFlagTable()) {
    out += "| `" + f.flag + "` | " + (f.env.empty() ? "" : "`" + f.env + "`") + " | " + f.default_text + " | " +
           f.help + " |\n";
  }
  return out;
}

}  // namespace clams::server
