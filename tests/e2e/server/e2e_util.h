// Helpers for end-to-end tests of app servers: HTTP calls, and the
// independent schema check of every MMIF the tests receive (Debian's
// python3-jsonschema validates them all when the test binary ends).
#ifndef CLAMS_TESTS_E2E_SERVER_E2E_UTIL_H_
#define CLAMS_TESTS_E2E_SERVER_E2E_UTIL_H_

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "clams/mmif/json.h"
#include "server/http.h"
#include "server/http_client.h"
#include "testing/process.h"
#include "testing/testing.h"

namespace clams::e2e {

using server::HttpResponse;

/// Sends one request to 127.0.0.1:`port`; fails the test on connection errors.
HttpResponse Call(int port, const std::string& method, const std::string& target, const std::string& body = "",
                  server::Headers headers = {}, std::chrono::milliseconds timeout = std::chrono::seconds(120));

/// Parses a JSON body, failing the test if it is not JSON.
boost::json::value Json(const std::string& body);

/// Keeps an MMIF answer for the schema check at the end of the run: every
/// test binary that links this file validates what it kept with
/// python3-jsonschema when its tests are done (a global test environment,
/// registered before main), whichever tests ran.
void KeepForSchemaCheck(const std::string& body);

/// A small valid MMIF with one TextDocument holding `text`.
std::string TextMmif(const std::string& text, const std::string& id = "d1");

/// Waits until GET /ready answers 200.
bool WaitReady(int port, std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// The `runtime` object of GET /?includeVRAM=true (null if unavailable).
boost::json::value Runtime(int port);
/// The pids of the server's workers, by worker id.
std::vector<int> WorkerPids(int port);
/// The runtime entry of the server's first worker (throws if there is none).
boost::json::object FirstWorker(int port);
/// True if there are `count` workers (any number > 0 when 0) and all are idle.
bool AllWorkersIdle(int port, std::size_t count = 0);
/// The devices `clams gpu --json` reports with `env` (simulated GPUs).
boost::json::value Gpus(const std::map<std::string, std::string>& env);
/// The last view of an MMIF document.
const boost::json::object& LastView(const boost::json::value& mmif);

}  // namespace clams::e2e

#endif  // CLAMS_TESTS_E2E_SERVER_E2E_UTIL_H_
