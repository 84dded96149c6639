#!/usr/bin/env python3
"""Parses every deploy/kubernetes/*.yaml and checks that the pieces fit together.

Usage: check_manifests.py OUTDIR
Writes each ConfigMap's logaggregator config to OUTDIR/<configmap>.<key> (one path per
line on stdout) so that the caller can run `logaggregator --check` on it.
Exits 1 naming the problem otherwise.
"""
import glob
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def fail(msg):
    sys.exit(f"check_manifests: {msg}")


def main():
    out_dir = sys.argv[1]
    files = sorted(glob.glob(os.path.join(HERE, "kubernetes", "*.yaml")))
    if not files:
        fail("no deploy/kubernetes/*.yaml")
    docs = []
    for f in files:
        with open(f) as fh:
            try:
                loaded = [d for d in yaml.safe_load_all(fh) if d is not None]
            except yaml.YAMLError as e:
                fail(f"{f}: {e}")
        for d in loaded:
            for key in ("apiVersion", "kind", "metadata"):
                if key not in d:
                    fail(f"{f}: a document has no {key}")
            docs.append((f, d))

    configmaps = {d["metadata"]["name"]: d for _, d in docs if d["kind"] == "ConfigMap"}
    written = []
    pods = 0
    for f, d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet"):
            spec = d["spec"]["template"]["spec"]
            selector = d["spec"]["selector"]["matchLabels"]
            labels = d["spec"]["template"]["metadata"]["labels"]
            for k, v in selector.items():
                if labels.get(k) != v:
                    fail(f"{f}: selector {k}={v} does not match the template's labels")
        elif d["kind"] == "Pod":
            spec = d["spec"]
        else:
            continue
        pods += 1
        where = f"{f}: {d['kind']} {d['metadata']['name']}"
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        containers = spec.get("containers", []) + spec.get("initContainers", [])
        agents = [c for c in containers if c["name"] == "logaggregator"]
        if len(agents) != 1:
            fail(f"{where}: expected one container named logaggregator")
        for c in containers:
            for m in c.get("volumeMounts", []):
                if m["name"] not in volumes:
                    fail(f"{where}: container {c['name']} mounts unknown volume {m['name']}")
        agent = agents[0]
        env = {e["name"]: e for e in agent.get("env", [])}
        for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
            got = env.get(name, {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            if got != field:
                fail(f"{where}: env {name} must come from fieldRef {field}, got {got!r}")
        cfg_path = env.get("LOGAGGREGATOR_CONFIG", {}).get("value")
        if not cfg_path:
            fail(f"{where}: env LOGAGGREGATOR_CONFIG is not set")
        # Which mounted ConfigMap key is LOGAGGREGATOR_CONFIG?
        mount = next((m for m in agent.get("volumeMounts", [])
                      if cfg_path.startswith(m["mountPath"].rstrip("/") + "/")), None)
        if mount is None or "configMap" not in volumes[mount["name"]]:
            fail(f"{where}: LOGAGGREGATOR_CONFIG {cfg_path} is not in a mounted ConfigMap")
        cm_name = volumes[mount["name"]]["configMap"]["name"]
        key = cfg_path[len(mount["mountPath"].rstrip("/")) + 1:]
        if cm_name not in configmaps or key not in configmaps[cm_name].get("data", {}):
            fail(f"{where}: LOGAGGREGATOR_CONFIG {cfg_path}: ConfigMap {cm_name} has no key {key}")
        text = configmaps[cm_name]["data"][key]
        cfg = yaml.safe_load(text)
        # The logs must be mounted read-only in the agent and shared with another container.
        for m in agent["volumeMounts"]:
            if "emptyDir" in volumes[m["name"]] and any(
                    m["name"] in [x["name"] for x in c.get("volumeMounts", [])]
                    for c in containers if c is not agent) and not m.get("readOnly"):
                fail(f"{where}: the shared log volume {m['name']} must be readOnly in the agent")
        # Probes hit the API port the config listens on.
        listen = (cfg.get("api") or {}).get("listen", "")
        port = int(listen.rsplit(":", 1)[1]) if ":" in listen else None
        if not listen.startswith("0.0.0.0:"):
            fail(f"{where}: api.listen {listen!r} must be 0.0.0.0:PORT for the kubelet's probes")
        for probe in ("livenessProbe", "readinessProbe"):
            http = agent.get(probe, {}).get("httpGet", {})
            if http.get("path") != "/health" or http.get("port") != port:
                fail(f"{where}: {probe} must be httpGet /health on port {port}, got {http}")
        for kind in ("requests", "limits"):
            if not agent.get("resources", {}).get(kind):
                fail(f"{where}: logaggregator has no resources.{kind}")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            fail(f"{where}: pod securityContext.runAsNonRoot is not true")
        # Every checkpoint_path must be on a mounted volume that is not read-only.
        for i, inp in enumerate(cfg["inputs"]["files"]):
            cp = inp.get("checkpoint_path", "/var/lib/logaggregator/checkpoints")
            cp = re.sub(r"\$\{[A-Z_]+\}", "x", cp)
            if not any(cp.startswith(m["mountPath"].rstrip("/") + "/") and not m.get("readOnly")
                       for m in agent["volumeMounts"]):
                fail(f"{where}: inputs.files[{i}].checkpoint_path {cp} is not on a writable volume")
        out = os.path.join(out_dir, f"{cm_name}.{key}")
        if out not in written:
            with open(out, "w") as fh:
                fh.write(text)
            written.append(out)
    if pods == 0:
        fail("no Pod, Deployment, StatefulSet or DaemonSet found")
    print("\n".join(written))


if __name__ == "__main__":
    main()
