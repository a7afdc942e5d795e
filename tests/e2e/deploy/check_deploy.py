#!/usr/bin/python3
"""The deploy path against a live server: every Kubernetes manifest under deploy/k8s and the
Grafana dashboard deploy/grafana/clams.json are parsed (python3-yaml, json), checked for the
things that break deployments (probe paths and ports, selectors, the PVC, the GPU limit, the
shutdown budget), and then checked against a production server on simulated GPUs started with the
Deployment's own arguments and the ConfigMap's config file, with load running:

  * every probe path answers 200 on the container port;
  * every metric a dashboard panel, an autoscaler query or a prometheus-adapter rule uses is
    exported by that server's /metrics (the ones the autoscalers use with samples);
  * SIGTERM drains and exits 0 well inside terminationGracePeriodSeconds.

The metric names the project promises (DESIGN.md §7 and CONTRACT.md) are listed once, in
KNOWN_METRICS; names used anywhere must be among them, and the ones the server does not export yet
are reported. With promtool installed, the live exposition and every PromQL expression are
checked by it too.

  check_deploy.py --repo SOURCE_DIR --workload build/apps/vram-workload/vram-workload
"""
import argparse
import concurrent.futures
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

# The metric families of the server's contract (DESIGN.md §7, CONTRACT.md): the one list.
KNOWN_METRICS = {
    "clams_requests_total", "clams_request_duration_seconds", "clams_queue_length", "clams_queue_wait_seconds",
    "clams_admission_rejections_total", "clams_gpu_memory_total_bytes", "clams_gpu_memory_used_bytes",
    "clams_gpu_memory_reserved_bytes", "clams_worker_vram_bytes", "clams_workers", "clams_worker_restarts_total",
    "clams_oom_total", "clams_build_info", "clams_worker_running_requests", "clams_client_gone_total",
    "clams_process_resident_memory_bytes", "clams_process_open_fds", "clams_process_cpu_seconds_total",
    "clams_evictions_total", "clams_gpu_accounting_per_process", "clams_profiles",
}
PROMTOOL = "/usr/bin/promtool"
START_TIMEOUT_S = 60
# Requests in flight while the metrics are read: more than the workers, so some wait.
LOAD_REQUESTS = 8
LOAD_WORKERS = 2
HOLD_MS = 400


def die_with_parent():
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


# --- the files -----------------------------------------------------------------------------------

def load_manifests(repo):
    docs = []
    for path in sorted(glob.glob(os.path.join(repo, "deploy", "k8s", "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if doc is None:
                    continue
                check(isinstance(doc, dict) and "kind" in doc and "apiVersion" in doc,
                      f"{path}: a document without kind/apiVersion")
                doc["__file__"] = os.path.relpath(path, repo)
                docs.append(doc)
    return docs


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    check(len(found) == 1, f"expected one {kind}, found {len(found)}")
    return found[0]


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def config_value(conf_text, key):
    for line in conf_text.splitlines():
        line = line.strip()
        if line.startswith("#") or "=" not in line:
            continue
        k, v = (s.strip() for s in line.split("=", 1))
        if k == key:
            return v.split(" #")[0].strip()
    return None


def arg_value(args, flag):
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_manifests(docs):
    """Static checks; returns what the live checks need."""
    kinds = {d["kind"] for d in docs}
    for kind in ("Deployment", "Service", "PodMonitor", "PodDisruptionBudget", "PersistentVolumeClaim", "ConfigMap",
                 "ScaledObject", "HorizontalPodAutoscaler"):
        check(kind in kinds, f"deploy/k8s has no {kind}")
    dep = one(docs, "Deployment")
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    check(labels_match(dep["spec"]["selector"]["matchLabels"], pod_labels), "the Deployment's selector misses its pods")
    containers = pod["spec"]["containers"]
    check(len(containers) == 1, "one container per pod")
    c = containers[0]
    args = c.get("args", [])
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    check("http" in ports, "the container has no port named http")
    check(str(ports["http"]) == arg_value(args, "--port"), "containerPort http differs from the server's --port")
    check(c["resources"]["limits"].get("nvidia.com/gpu") == 1, "the container does not ask for one GPU")
    probes = {}
    for name, path in (("livenessProbe", "/health"), ("readinessProbe", "/ready")):
        probe = c.get(name)
        check(probe is not None, f"no {name}")
        http = probe["httpGet"]
        check(http["path"] == path, f"{name} checks {http['path']}, not {path}")
        check(http["port"] in ports or http["port"] in ports.values(), f"{name} port {http['port']} is not a port")
        probes[name] = http["path"]
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    check(pre_stop[0] == "sleep", "preStop should wait for the endpoint removal (sleep)")
    pre_stop_s = float(pre_stop[1])
    conf_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "config")
    config_map = one(docs, "ConfigMap", conf_volume["configMap"]["name"])
    conf_mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    conf_path = arg_value(args, "--config")
    check(conf_path is not None and conf_path.startswith(conf_mount["mountPath"] + "/"),
          "--config does not point into the mounted ConfigMap")
    conf_text = config_map["data"][os.path.basename(conf_path)]
    queue_timeout = float(config_value(conf_text, "queue-timeout") or 300)
    graceful = float(config_value(conf_text, "graceful-timeout") or 300)
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    check(grace >= queue_timeout, f"terminationGracePeriodSeconds {grace} < queue timeout {queue_timeout}")
    check(grace >= pre_stop_s + graceful,
          f"terminationGracePeriodSeconds {grace} < preStop {pre_stop_s} s + graceful-timeout {graceful} s")
    # Profiles on the PVC, where the server looks for them ($XDG_CACHE_HOME).
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    pvc = one(docs, "PersistentVolumeClaim")
    volume = next(v for v in pod["spec"]["volumes"] if v.get("persistentVolumeClaim"))
    check(volume["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"], "the profile PVC is not mounted")
    mount = next(m for m in c["volumeMounts"] if m["name"] == volume["name"])
    check(env.get("XDG_CACHE_HOME") == mount["mountPath"], "XDG_CACHE_HOME is not the profile volume")
    sec = pod["spec"]["securityContext"]
    check(sec.get("runAsNonRoot") is True and sec.get("runAsUser", 0) != 0, "the pod may run as root")
    # Service, PodMonitor, PDB select these pods and name an existing port.
    svc = one(docs, "Service")
    check(labels_match(svc["spec"]["selector"], pod_labels), "the Service selects no pod")
    check(all(p["targetPort"] in ports or p["targetPort"] in ports.values() for p in svc["spec"]["ports"]),
          "the Service targets a port the container lacks")
    pm = one(docs, "PodMonitor")
    check(labels_match(pm["spec"]["selector"]["matchLabels"], pod_labels), "the PodMonitor selects no pod")
    for ep in pm["spec"]["podMetricsEndpoints"]:
        check(ep["port"] in ports and ep["path"] == "/metrics", "the PodMonitor scrapes something else than /metrics")
    pdb = one(docs, "PodDisruptionBudget")
    check(labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels), "the PodDisruptionBudget selects no pod")
    # Both autoscalers scale this Deployment.
    so = one(docs, "ScaledObject")
    check(so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "the ScaledObject scales something else")
    hpa = one(docs, "HorizontalPodAutoscaler")
    check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "the HPA scales something else")
    return {"args": args, "env": env, "conf_text": conf_text, "probes": probes, "grace": grace,
            "pre_stop": pre_stop_s}


def promql_in_manifests(docs):
    """(where, expression, used by an autoscaler) for every PromQL expression; HPA metric names."""
    exprs = []
    adapter_names = set()
    for d in docs:
        if d["kind"] == "ScaledObject":
            for t in d["spec"]["triggers"]:
                if t["type"] == "prometheus":
                    exprs.append((d["__file__"], t["metadata"]["query"], True))
        if d["kind"] == "ConfigMap" and "config.yaml" in d.get("data", {}):
            rules = yaml.safe_load(d["data"]["config.yaml"])["rules"]
            for r in rules:
                series = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)", r["seriesQuery"]).group(1)
                exprs.append((d["__file__"], r["seriesQuery"], True))
                query = r["metricsQuery"].replace("<<.Series>>", series).replace("<<.LabelMatchers>>", 'pod!=""')
                query = query.replace("<<.GroupBy>>", "pod")
                exprs.append((d["__file__"], query, True))
                adapter_names.add(r["name"]["as"])
    hpa_names = set()
    for d in docs:
        if d["kind"] == "HorizontalPodAutoscaler":
            for m in d["spec"]["metrics"]:
                hpa_names.add(m["pods"]["metric"]["name"])
    check(hpa_names <= adapter_names, f"HPA metrics without an adapter rule: {sorted(hpa_names - adapter_names)}")
    return exprs


def promql_in_dashboard(dash):
    exprs = []
    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                exprs.append((f"panel {p['title']!r}", t["expr"], False))
            walk(p.get("panels", []))
    walk(dash["panels"])
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.match(r"label_values\((.*),\s*[a-z_]+\)$", q)
            check(m is not None, f"variable {v['name']}: unexpected query {q}")
            exprs.append((f"variable {v['name']}", m.group(1), False))
    return exprs


def grafana_to_promql(expr):
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?[a-zA-Z_]+\}?", ".*", expr)


def metric_names(expr):
    return set(re.findall(r"\bclams_[a-z0-9_]+\b", expr))


# --- the live server -----------------------------------------------------------------------------

def http(port, method, target, body=None, timeout=60):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{target}", data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def parse_exposition(text):
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            samples[name] = samples.get(name, 0) + 1
    families = {}
    for name, kind in types.items():
        names = [name + s for s in ("_bucket", "_sum", "_count")] if kind == "histogram" else [name]
        families[name] = sum(samples.get(n, 0) for n in names)
    return types, families


def family_of(name, types):
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) == "histogram":
            return name[: -len(suffix)]
    return name


def start_server(workload, deploy, tmp):
    conf = os.path.join(tmp, "clams.conf")
    with open(conf, "w") as f:
        f.write(deploy["conf_text"])
    args, skip = [], {"--port", "--host", "--config"}
    it = iter(deploy["args"])
    for a in it:
        if a in skip:
            next(it)
        else:
            args.append(a)
    port_file = os.path.join(tmp, "port")
    argv = [workload] + args + ["--config", conf, "--port", "0", "--port-file", port_file, "--host", "127.0.0.1",
                                "--workers", str(LOAD_WORKERS)]
    env = dict(os.environ)
    env.update({k: v for k, v in deploy["env"].items() if v is not None})
    env.update({"XDG_CACHE_HOME": os.path.join(tmp, "cache"), "CLAMS_SIM_GPUS": "24GiB",
                "CLAMS_SIM_STATE": os.path.join(tmp, "sim-state"), "CLAMS_APP_VERSION": "v1", "CLAMS_CONFIG": ""})
    log = open(os.path.join(tmp, "server.log"), "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent)
    deadline = time.monotonic() + START_TIMEOUT_S
    port = 0
    while time.monotonic() < deadline and proc.poll() is None and not port:
        try:
            port = int(open(port_file).read().strip() or 0)
        except (OSError, ValueError):
            time.sleep(0.05)
    check(port, "the server did not start:\n" + open(os.path.join(tmp, "server.log")).read())
    while time.monotonic() < deadline and http(port, "GET", "/ready")[0] != 200:
        time.sleep(0.1)
    return proc, port


def text_mmif():
    return json.dumps({"metadata": {"mmif": "http://mmif.clams.ai/1.1.0"}, "documents": [
        {"@type": "http://mmif.clams.ai/vocabulary/TextDocument/v1",
         "properties": {"id": "d1", "text": {"@value": "Hello.", "@language": "en"}}}], "views": []}).encode()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", required=True)
    parser.add_argument("--workload", required=True, help="build/apps/vram-workload/vram-workload")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="clams-deploy-")
    proc = None
    try:
        docs = load_manifests(args.repo)
        deploy = check_manifests(docs)
        with open(os.path.join(args.repo, "deploy", "grafana", "clams.json")) as f:
            dash = json.load(f)
        check(dash.get("uid") and dash.get("panels"), "the dashboard has no uid or panels")
        exprs = promql_in_manifests(docs) + promql_in_dashboard(dash)
        used = {}
        for where, expr, autoscaler in exprs:
            for name in metric_names(expr):
                used.setdefault(name, set()).add((where, autoscaler))
        print(f"manifests: {len(docs)} documents; dashboard: {len(dash['panels'])} panels; "
              f"{len(exprs)} PromQL expressions use {len(used)} metric names")

        proc, port = start_server(args.workload, deploy, tmp)
        for name, path in deploy["probes"].items():
            status, body = http(port, "GET", path)
            check(status == 200, f"{name} {path} answered {status}: {body}")
        # Load: more requests than workers, so some wait in the queue while the metrics are read.
        target = f"/?model=tiny&holdMs={HOLD_MS}"
        with concurrent.futures.ThreadPoolExecutor(LOAD_REQUESTS) as pool:
            futures = [pool.submit(http, port, "POST", target, text_mmif()) for _ in range(LOAD_REQUESTS)]
            deadline = time.monotonic() + 30
            queued = 0
            while time.monotonic() < deadline and not all(f.done() for f in futures):
                m = re.search(r"^clams_queue_length (\d+)", http(port, "GET", "/metrics")[1], re.M)
                queued = max(queued, int(m.group(1)) if m else 0)
                time.sleep(0.05)
            results = [f.result() for f in futures]
        check(all(s == 200 for s, _ in results), f"load requests failed: {[s for s, _ in results]}")
        check(queued > 0, "no request ever waited: the queue metrics were not exercised")
        status, text = http(port, "GET", "/metrics")
        check(status == 200, f"/metrics answered {status}")
        types, families = parse_exposition(text)

        unknown = {n for n in used if family_of(n, types) not in KNOWN_METRICS and n not in KNOWN_METRICS}
        check(not unknown, f"names used that are not server metrics: {sorted(unknown)}")
        problems, no_samples = [], []
        for name, places in sorted(used.items()):
            family = family_of(name, types)
            autoscaler = any(a for _, a in places)
            where = ", ".join(sorted(w for w, _ in places))
            if family not in types:
                problems.append(f"{name} (used by {where}) is not exported")
            elif families[family] == 0:
                (problems if autoscaler else no_samples).append(f"{name} (used by {where}) has no samples")
        missing_known = sorted(KNOWN_METRICS - set(types))
        print(f"live server: probes {sorted(deploy['probes'].values())} answer 200; up to {queued} requests queued; "
              f"{len(types)} metric families exported")
        print("contract metrics not exported on this branch: " + (", ".join(missing_known) or "none"))
        print("contract metrics exported without samples after the load: " +
              (", ".join(sorted(n for n in KNOWN_METRICS & set(types) if families[n] == 0)) or "none"))
        for line in no_samples:
            print(f"note: {line} (a dashboard panel stays empty until it has)")
        check(not problems, "; ".join(problems))

        if os.access(PROMTOOL, os.X_OK):
            r = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True)
            check(r.returncode == 0, "promtool check metrics: " + (r.stdout + r.stderr).decode())
            rules = {"groups": [{"name": "clams-deploy-check", "rules": [
                {"record": f"clams_deploy_check:{i}", "expr": grafana_to_promql(e)}
                for i, (_, e, _) in enumerate(exprs)]}]}
            path = os.path.join(tmp, "rules.yaml")
            with open(path, "w") as f:
                yaml.safe_dump(rules, f)
            r = subprocess.run([PROMTOOL, "check", "rules", path], capture_output=True)
            check(r.returncode == 0, "promtool check rules (the PromQL of manifests and dashboard): " +
                  (r.stdout + r.stderr).decode())
            print(f"promtool: the exposition and {len(exprs)} PromQL expressions are valid")
        else:
            print("promtool not installed: exposition and PromQL syntax not checked by it")

        # SIGTERM: drain and exit 0 within the shutdown budget.
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=deploy["grace"] - deploy["pre_stop"])
        except subprocess.TimeoutExpired:
            raise Failure("the server did not stop within terminationGracePeriodSeconds after SIGTERM")
        check(code == 0, f"the server exited with {code} after SIGTERM")
        print(f"SIGTERM: drained and exited 0 in {time.monotonic() - started:.1f} s")
        proc = None
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        log = os.path.join(tmp, "server.log")
        if os.path.exists(log):
            print("--- server log (last 40 lines) ---\n" + "".join(open(log).readlines()[-40:]), file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
