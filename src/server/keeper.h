// The keeper: a small supervisor process between the front and each worker,
// so that no process of a worker's tree outlives the front (DESIGN.md §2,
// docs/processes.md).
//
//   front --fork+exec--> keeper --fork+exec--> worker --> its children ...
//
// The front starts `/proc/self/exe --clams-keeper FD -- CMD ARGS...` (see
// CommandLine). The keeper role is chosen by a constructor in keeper.cc,
// before main() and before the app's own static initialisers: a keeper runs
// none of the app's code, loads no model and stays small. Any executable
// that links clams::server can therefore be a keeper.
//
// Lifecycle of one keeper:
//   start    becomes a child subreaper (PR_SET_CHILD_SUBREAPER: every orphan
//            of the worker's tree, such as a daemon that double-forked or a
//            child that called setsid() and lost its parent, is re-parented
//            to the keeper, never to init), starts CMD in its own process
//            group and sends the front the worker's pid (one int32 message
//            on the channel FD, a SOCK_SEQPACKET socket).
//   running  forwards SIGTERM, SIGINT and SIGHUP to the worker's process
//            group; kKillCommand on the channel SIGKILLs the group.
//   worker ends
//            SIGKILLs whatever is left of the tree, reaps it, then exits as
//            the worker did (its exit code, or killed by the same signal), so
//            the front reports the worker's end, not the keeper's.
//   front gone (EOF on the channel, or kFrontDiedSignal from
//            PR_SET_PDEATHSIG, set by the front before exec)
//            SIGKILLs the whole tree, reaps it and exits.
// Killing and reaping a tree is bounded by kSweepLimit (a process stuck in
// the kernel cannot hold the keeper for ever).
//
// The keeper writes nothing but one line on stderr when it cannot do its
// job: CMD cannot be executed ("ARGV0: cannot execute CMD: why", exit 127),
// its command line cannot be read (exit kExitUsage), fork or signalfd fail
// (exit 1).
#ifndef CLAMS_SRC_SERVER_KEEPER_H_
#define CLAMS_SRC_SERVER_KEEPER_H_

#include <signal.h>

#include <chrono>
#include <string>
#include <vector>

namespace clams::server::keeper {

/// The hidden first argument that selects the keeper role.
inline constexpr char kArgument[] = "--clams-keeper";
/// The front asks the keeper to SIGKILL the worker (a request timeout, a
/// worker that lingers after SIGTERM): this byte on the channel.
inline constexpr char kKillCommand = 'k';
/// What PR_SET_PDEATHSIG delivers to a keeper whose front died. Not
/// forwarded to the worker: it means "kill the whole tree".
inline constexpr int kFrontDiedSignal = SIGUSR2;
/// Exit code of a keeper started with a command line it cannot read.
inline constexpr int kExitUsage = 2;
/// How long a keeper keeps killing and reaping a tree before it exits
/// anyway: only a process stuck in uninterruptible sleep (a hung device
/// driver) survives SIGKILL this long.
inline constexpr std::chrono::milliseconds kSweepLimit{5000};
/// While sweeping, the keeper looks for re-parented orphans at least this
/// often (re-parenting sends no signal to the new parent).
inline constexpr std::chrono::milliseconds kSweepPoll{10};

/// The keeper's command line for running `command` (argv, non-empty):
/// `argv0 --clams-keeper CHANNEL_FD -- command...`. The keeper expects
/// the channel socket on `channel_fd`; `argv0` is its name in `ps` and
/// the prefix of the message written when `command` cannot be executed.
std::vector<std::string> CommandLine(const std::string& argv0, int channel_fd,
                                     const std::vector<std::string>& command);

/// Runs the keeper role for a command line built by CommandLine (argv[1] is
/// kArgument) and never returns: the process exits as the worker did, or
/// with kExitUsage when the command line cannot be read. Called before
/// main() by keeper.cc; single-threaded.
[[noreturn]] void Run(int argc, char** argv);

}  // namespace clams::server::keeper

#endif  // CLAMS_SRC_SERVER_KEEPER_H_
