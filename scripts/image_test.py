#!/usr/bin/python3
"""make image-test: the Containerfile, built and run without a container engine or a registry.

Base images cannot be pulled here, but Debian's package mirror can be reached. So each stage of
the Containerfile is built in a chroot made by debootstrap (Debian 12, minbase, the closest thing
to debian:bookworm-slim): FROM, ARG, ENV, WORKDIR, COPY (from the build context, which honours
.containerignore, or --from another stage), RUN (in the chroot, with the stage's ARG and ENV),
then the final stage's CMD runs as its USER with its ENV, with /proc and /dev mounted; its
HEALTHCHECK runs inside the chroot until it passes, and the server must answer from outside:
GET /, POST / (an annotation), /ready, /metrics. SIGTERM must drain it and exit 0.

Not part of CI: it needs root (debootstrap, chroot, mount), the Debian mirror, about 3 GB in
WORK_DIR and several minutes. The debootstrap result is cached in WORK_DIR/cache.

  scripts/image_test.py [--app sentence-splitter] [--work-dir build-image-test] [--keep]
"""
import argparse
import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Base images this script knows how to make: image -> (Debian suite, debootstrap variant).
BASES = {
    "docker.io/library/debian:bookworm": ("bookworm", "minbase"),
    "docker.io/library/debian:bookworm-slim": ("bookworm", "minbase"),
}
HTTP_TIMEOUT_S = 60


def log(msg):
    print(f"image-test: {msg}", flush=True)


class Failure(Exception):
    pass


# --- the Containerfile ---------------------------------------------------------------------------

def instructions(text):
    """Logical lines: comments dropped, backslash continuations joined."""
    out, cur = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith("#") or (not cur and not stripped):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        cur += line
        keyword, _, rest = cur.strip().partition(" ")
        out.append((keyword.upper(), rest.strip()))
        cur = ""
    return out


def substitute(text, values):
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  lambda m: values.get(m.group(1) or m.group(2), ""), text)


def parse_stages(path, build_args):
    """[(name, base, [(keyword, rest)])] with FROM resolved through the global ARGs."""
    global_args, stages = {}, []
    for keyword, rest in instructions(open(path).read()):
        if keyword == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            base = substitute(m.group(1), global_args)
            stages.append({"name": m.group(2) or str(len(stages)), "base": base, "steps": []})
        elif not stages:
            if keyword != "ARG":
                raise Failure(f"{keyword} before the first FROM")
            name, _, default = rest.partition("=")
            global_args[name] = build_args.get(name, default)
        else:
            stages[-1]["steps"].append((keyword, rest))
    return global_args, stages


# --- the build context -----------------------------------------------------------------------------

def context_files():
    """Tracked and untracked-but-not-ignored files, minus .containerignore."""
    files = subprocess.run(["git", "-C", REPO, "ls-files", "-c", "-o", "--exclude-standard", "-z"], check=True,
                           capture_output=True).stdout.decode().split("\0")
    patterns = []
    ignore = os.path.join(REPO, ".containerignore")
    if os.path.exists(ignore):
        patterns = [line.strip() for line in open(ignore) if line.strip() and not line.startswith("#")]

    def ignored(path):
        parts = path.split("/")
        for p in patterns:
            if p.startswith("**/"):
                if any(fnmatch.fnmatch(part, p[3:]) for part in parts):
                    return True
            elif any(fnmatch.fnmatch("/".join(parts[:i]), p) for i in range(1, len(parts) + 1)):
                return True
        return False

    return [f for f in files if f and not ignored(f) and os.path.lexists(os.path.join(REPO, f))]


# --- chroots ---------------------------------------------------------------------------------------

class Chroot:
    """A root file system with /proc and /dev mounted while it is in use."""

    def __init__(self, root):
        self.root = root
        self.mounts = []

    def __enter__(self):
        # No /dev/pts: a mount below the bind of /dev could propagate to the host's /dev (apt only
        # warns that it cannot open a pseudo terminal for its log).
        for target, args in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"])):
            path = os.path.join(self.root, target)
            os.makedirs(path, exist_ok=True)
            subprocess.run(["mount", *args, path], check=True)
            self.mounts.append(path)
        shutil.copyfile("/etc/resolv.conf", os.path.join(self.root, "etc", "resolv.conf"))
        return self

    def __exit__(self, *exc):
        for path in reversed(self.mounts):
            if subprocess.run(["umount", path]).returncode != 0:
                subprocess.run(["umount", "-l", path])
        self.mounts = []

    def path(self, inside):
        return os.path.join(self.root, inside.lstrip("/"))


def mirror():
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        if os.path.exists(path):
            m = re.search(r"(?:URIs:\s*|deb\s+)(https?://\S+/debian)\b", open(path).read())
            if m:
                return m.group(1)
    return "http://deb.debian.org/debian"


def base_root(base, work, dest):
    if base not in BASES:
        raise Failure(f"no debootstrap recipe for the base image {base}")
    suite, variant = BASES[base]
    cache = os.path.join(work, "cache", f"{suite}-{variant}.tar")
    if not os.path.exists(cache):
        if shutil.which("debootstrap") is None:
            log("installing debootstrap")
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"], check=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        tmp = os.path.join(work, "cache", "debootstrap")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        log(f"debootstrap --variant={variant} {suite} from {mirror()}")
        subprocess.run(["debootstrap", f"--variant={variant}", suite, tmp, mirror()], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["tar", "--numeric-owner", "-cpf", cache + ".part", "-C", tmp, "."], check=True)
        os.rename(cache + ".part", cache)
        shutil.rmtree(tmp)
    remove_root(dest)
    os.makedirs(dest)
    subprocess.run(["tar", "--numeric-owner", "-xpf", cache, "-C", dest], check=True)


def mounted_under(root):
    root = os.path.realpath(root) + "/"
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if (line.split()[1] + "/").startswith(root)]


def remove_root(root):
    """Removes a stage root, never while something (a bind mount of /dev!) is mounted in it."""
    if not os.path.exists(root):
        return
    busy = mounted_under(root)
    if busy:
        raise Failure(f"not removing {root}: still mounted there: {busy}")
    shutil.rmtree(root)


def copy_into(src, dest_path, dest_is_dir):
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, dest_path, symlinks=True, dirs_exist_ok=True)
    else:
        target = os.path.join(dest_path, os.path.basename(src)) if dest_is_dir else dest_path
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.lexists(target):
            os.remove(target)
        shutil.copy2(src, target, follow_symlinks=False)


def build_stage(stage, global_args, build_args, roots, work, context, log_file, jobs):
    name = stage["name"]
    root = os.path.join(work, f"stage-{name}")
    started = time.monotonic()
    base_root(stage["base"], work, root)
    args = {}
    env = {"PATH": DEFAULT_PATH, "HOME": "/root"}
    workdir = "/"
    meta = {"user": "0:0", "cmd": None, "healthcheck": None, "expose": [], "volumes": []}
    with Chroot(root) as ch:
        for keyword, rest in stage["steps"]:
            values = {**global_args, **args, **env}
            if keyword == "ARG":
                arg, _, default = rest.partition("=")
                args[arg] = build_args.get(arg, global_args.get(arg, default))
            elif keyword == "ENV":
                for item in shlex.split(rest):
                    k, _, v = item.partition("=")
                    env[k] = substitute(v, values)
            elif keyword == "WORKDIR":
                workdir = substitute(rest, values)
                os.makedirs(ch.path(workdir), exist_ok=True)
            elif keyword == "COPY":
                words = shlex.split(rest)
                source_root = None
                if words[0].startswith("--from="):
                    source_root = roots[words[0].split("=", 1)[1]]
                    words = words[1:]
                *sources, dest = [substitute(w, values) for w in words]
                dest_is_dir = dest.endswith("/") or len(sources) > 1
                for src in sources:
                    if source_root is not None:
                        copy_into(os.path.join(source_root, src.lstrip("/")), ch.path(dest), dest_is_dir)
                    elif src in (".", "./"):
                        for f in context:
                            copy_into(os.path.join(REPO, f), ch.path(os.path.join(dest, os.path.dirname(f))), True)
                    else:
                        copy_into(os.path.join(REPO, src), ch.path(dest), dest_is_dir)
            elif keyword == "RUN":
                run_env = {**global_args, **args, **env, "CMAKE_BUILD_PARALLEL_LEVEL": str(jobs)}
                cmd = ["chroot", root, "/usr/bin/env", "-i", *[f"{k}={v}" for k, v in run_env.items()],
                       "/bin/sh", "-c", f"cd {shlex.quote(workdir)} && {rest}"]
                log(f"[{name}] RUN {rest[:100]}{'...' if len(rest) > 100 else ''}")
                r = subprocess.run(cmd, stdout=log_file, stderr=subprocess.STDOUT)
                if r.returncode != 0:
                    raise Failure(f"stage {name}: RUN failed ({r.returncode}); see {log_file.name}")
            elif keyword == "USER":
                meta["user"] = rest
            elif keyword == "CMD":
                meta["cmd"] = json.loads(rest)
            elif keyword == "HEALTHCHECK":
                m = re.search(r"\bCMD\s+(\[.*\])\s*$", rest)
                options = dict(re.findall(r"--([a-z-]+)=(\S+)", rest))
                meta["healthcheck"] = {"cmd": json.loads(m.group(1)), "options": options}
            elif keyword == "EXPOSE":
                meta["expose"] += rest.split()
            elif keyword == "VOLUME":
                meta["volumes"] += json.loads(rest) if rest.startswith("[") else rest.split()
            else:
                raise Failure(f"stage {name}: {keyword} is not supported by this test")
    log(f"stage {name}: built in {time.monotonic() - started:.0f} s")
    meta.update({"root": root, "env": env, "workdir": workdir})
    return root, meta


# --- running the final stage ---------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, target, body=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{target}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, ConnectionError):
        return 0, ""


def seconds(text):
    m = re.fullmatch(r"(\d+)(s|m)?", text)
    return int(m.group(1)) * (60 if m.group(2) == "m" else 1)


def run_final(meta, work):
    root = meta["root"]
    exposed = meta["expose"][0] if meta["expose"] else "5000"
    port = free_port()
    swap = lambda args: [a.replace(f":{exposed}/", f":{port}/") if a != exposed else str(port) for a in args]
    cmd, health = swap(meta["cmd"]), swap(meta["healthcheck"]["cmd"])
    uid, _, gid = meta["user"].partition(":")
    env = [f"{k}={v}" for k, v in meta["env"].items()]
    for volume in meta["volumes"]:
        path = os.path.join(root, volume.lstrip("/"))
        os.makedirs(path, exist_ok=True)
    inside = lambda argv: ["chroot", f"--userspec={uid}:{gid or uid}", root, "/usr/bin/env", "-i", *env, "/bin/sh",
                           "-c", f"cd {shlex.quote(meta['workdir'])} && exec \"$@\"", "sh", *argv]
    results = {}
    with Chroot(root):
        # The volume must be writable by the image's user.
        probe = subprocess.run(inside(["touch", os.path.join(meta["volumes"][0], ".writable")]), capture_output=True)
        if probe.returncode != 0:
            raise Failure(f"the volume {meta['volumes'][0]} is not writable by {meta['user']}: {probe.stderr!r}")
        server_log = open(os.path.join(work, "server.log"), "wb")
        started = time.monotonic()
        log(f"running CMD {' '.join(cmd)} as {meta['user']} on port {port}")
        proc = subprocess.Popen(inside(cmd), stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            start_period = seconds(meta["healthcheck"]["options"].get("start-period", "30s"))
            healthy = False
            while time.monotonic() - started < start_period and proc.poll() is None:
                if subprocess.run(inside(health), capture_output=True).returncode == 0:
                    healthy = True
                    break
                time.sleep(0.5)
            if not healthy:
                raise Failure("the HEALTHCHECK never passed; server log: " +
                              open(os.path.join(work, "server.log")).read()[-3000:])
            results["healthy_after_s"] = time.monotonic() - started
            uid_line = next(l for l in open(f"/proc/{proc.pid}/status") if l.startswith("Uid:"))
            results["uid"] = uid_line.split()[1]
            if results["uid"] != uid:
                raise Failure(f"the server runs as uid {results['uid']}, not {uid}")
            deadline = time.monotonic() + HTTP_TIMEOUT_S
            while http(port, "GET", "/ready")[0] != 200 and time.monotonic() < deadline:
                time.sleep(0.2)
            status, body = http(port, "GET", "/")
            if status != 200:
                raise Failure(f"GET / answered {status}")
            metadata = json.loads(body)
            results["app"] = f"{metadata['name']} {metadata['app_version']}"
            mmif = json.dumps({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [
                {"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1",
                 "properties": {"id": "d1", "text": {"@value": "A container. It answers.", "@language": "en"}}}],
                "views": []}).encode()
            status, body = http(port, "POST", "/", mmif)
            if status != 200:
                raise Failure(f"POST / answered {status}: {body[:500]}")
            results["views"] = len(json.loads(body)["views"])
            status, body = http(port, "GET", "/metrics")
            m = re.search(r'^clams_build_info\{([^}]*)\} 1$', body, re.M)
            if status != 200 or not m:
                raise Failure(f"/metrics answered {status} without clams_build_info")
            results["build_info"] = m.group(1)
            stopped = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=60)
            if code != 0:
                raise Failure(f"after SIGTERM the server exited with {code}")
            results["stop_s"] = time.monotonic() - stopped
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return port, results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="sentence-splitter")
    parser.add_argument("--app-version", default="", help="the APP_VERSION build argument")
    parser.add_argument("--work-dir", default=os.path.join(REPO, "build-image-test"))
    parser.add_argument("--keep", action="store_true", help="keep the stage roots after the run")
    parser.add_argument("--jobs", type=int, default=os.cpu_count(),
                        help="parallel compile jobs in RUN steps (CMAKE_BUILD_PARALLEL_LEVEL)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("image-test: needs root (debootstrap, chroot, mount)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    work = os.path.abspath(args.work_dir)
    os.makedirs(os.path.join(work, "cache"), exist_ok=True)
    revision = subprocess.run(["git", "-C", REPO, "describe", "--tags", "--always", "--abbrev=10"],
                              capture_output=True, text=True).stdout.strip()
    build_args = {"APP": args.app, "CLAMS_GIT_REVISION": revision, "APP_VERSION": args.app_version or revision}
    started = time.monotonic()
    global_args, stages = parse_stages(os.path.join(REPO, "Containerfile"), build_args)
    context = context_files()
    log(f"{len(stages)} stages ({', '.join(s['name'] for s in stages)}); context: {len(context)} files; "
        f"APP={args.app}")
    roots, meta = {}, None
    try:
        with open(os.path.join(work, "build.log"), "wb") as build_log:
            for stage in stages:
                roots[stage["name"]], meta = build_stage(stage, global_args, build_args, roots, work, context,
                                                         build_log, args.jobs)
        port, results = run_final(meta, work)
        log(f"PASS in {time.monotonic() - started:.0f} s: {results['app']} answered from the runtime stage on "
            f"port {port} as uid {results['uid']} (HEALTHCHECK passed {results['healthy_after_s']:.1f} s after "
            f"start; GET / 200, POST / 200 with {results['views']} view(s), /ready 200, /metrics "
            f"clams_build_info{{{results['build_info']}}}; SIGTERM: exit 0 in {results['stop_s']:.1f} s)")
        return 0
    except (Failure, subprocess.CalledProcessError) as e:
        log(f"FAIL: {e}")
        return 1
    finally:
        if not args.keep:
            for root in roots.values():
                try:
                    remove_root(root)
                except Failure as e:
                    log(str(e))


if __name__ == "__main__":
    sys.exit(main())
