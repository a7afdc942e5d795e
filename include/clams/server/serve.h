// clams/server/serve.h
//
// Serving an app: `clams::Serve(app, argc, argv)` is the whole main() of a
// CLAMS app written in C++.
//
//   int main(int argc, char** argv) {
//     MyApp app;
//     return clams::Serve(app, argc, argv);
//   }
//
// The same binary then:
//   APP [--port 5000] [--host 0.0.0.0]   development server (in-process)
//   APP --production [--workers N] ...   production server (worker processes,
//                                        GPU admission control, supervision)
//   APP annotate IN.mmif [OUT.mmif] [--param value ...]
//                                        annotate a file locally, no HTTP
//   APP --help                           every flag (docs/server-flags.md)
#ifndef CLAMS_SERVER_SERVE_H_
#define CLAMS_SERVER_SERVE_H_

#include "clams/app/app.h"

namespace clams {

/// Runs `app` as described above and returns the process exit code: 0 on
/// success or a clean shutdown, 1 on failure, 2 for bad command lines.
int Serve(App& app, int argc, char** argv);

/// `clams serve [server flags] -- CMD...`: runs an unmodified CLAMS app
/// (for instance a Python app: `-- python3 app.py --port {port}`) as N
/// worker processes behind the production front. `argv[0]` is "serve".
/// Returns the process exit code.
int ServeExternal(int argc, char** argv);

}  // namespace clams

#endif  // CLAMS_SERVER_SERVE_H_
