#!/usr/bin/env python3
"""Benchmark of the logaggregator agent against GNU `tail -F` (Python 3.11, stdlib only).

Usage:
    python3 bench/bench.py [--bin PATH] [--runs N] [--only single,many100,many1000,latency,idle]
                           [--quick] [--tail-only] [--json PATH]

Throughput workloads (data generated once with a fixed seed, cached in target/bench-data/):
    single    1 file     x 2,000,000 lines (text output, and once more with json output)
    many100   100 files  x    20,000 lines
    many1000  1000 files x     2,000 lines
Each run starts the agent with a fresh checkpoint directory, start_at: beginning, and times
process start -> output holds every line. The same data is fed to `tail -q -n +1 -F`.
Every run's output is verified (each input line exactly once, per-file order); a run that
loses or duplicates lines is a FAILURE and makes the script exit 1.

Latency: lines appended at a fixed rate over 4 files, each carrying time.time_ns() of its write;
the output (text) is tailed and the appearance time recorded -> p50/p99/max.
Idle: 1,000 small quiet files, read fully, then 10 s of quiet: CPU %, VmRSS, threads.
"""

import argparse
import array
import ctypes
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA_ROOT = REPO / "target" / "bench-data"
TMP_ROOT = REPO / "target" / "bench-tmp"
GEN_VERSION = 1
SEED = 20261122
CLK_TCK = os.sysconf("SC_CLK_TCK")
POLL = 0.005  # output size poll period (s)

WORKLOADS = {  # name: (files, lines per file)
    "single": (1, 2_000_000),
    "many100": (100, 20_000),
    "many1000": (1_000, 2_000),
}
IDLE_FILES, IDLE_LINES = 1_000, 3
LAT_FILES = 4

LOG_LEVEL = "warn"  # --agent-log-level
CHILDREN = []  # every Popen we start; killed in finally


# --------------------------------------------------------------------------- processes

_libc = None


def _preexec():
    # Die with the bench (PR_SET_PDEATHSIG = 1) even if the bench is SIGKILLed.
    try:
        _libc.prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


def spawn(cmd, **kw):
    global _libc
    if _libc is None:
        try:
            _libc = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _libc = False
    p = subprocess.Popen(cmd, preexec_fn=_preexec if _libc else None, **kw)
    CHILDREN.append(p)
    return p


def kill_all():
    for p in CHILDREN:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(3)
            except Exception:
                try:
                    p.kill()
                    p.wait(3)
                except Exception:
                    pass


def stop(p, timeout=15.0):
    """SIGTERM, wait; returns (exit code, clean) where clean=False if we had to SIGKILL."""
    if p.poll() is not None:
        return p.returncode, True
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(timeout), True
    except subprocess.TimeoutExpired:
        p.kill()
        return p.wait(), False


def proc_cpu(pid):
    """utime+stime of the whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    rest = data[data.rindex(b")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                out[k] = int(v.split()[0]) / 1024.0  # MiB
            elif k == "Threads":
                out[k] = int(v)
    return out


def tail_text(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        return "\n".join(lines[-n:]) if lines else "(stderr empty)"
    except OSError:
        return "(no stderr file)"


# --------------------------------------------------------------------------- data generation

METHODS = ["GET"] * 10 + ["POST"] * 3 + ["PUT", "DELETE", "HEAD", "PATCH"]
PATHS = [
    "/", "/index.html", "/api/v1/users/{n}", "/api/v1/orders/{n}/items", "/static/js/app.{h}.js",
    "/static/css/main.{h}.css", "/images/products/{n}.jpg", "/search?q={w}&page={p}", "/login",
    "/logout", "/api/v2/products/{n}?fields=name,price,stock", "/healthz", "/metrics",
    "/api/v1/carts/{n}/checkout", "/blog/{w}-{w2}-{n}", "/favicon.ico",
]
WORDS = ["shoes", "laptop", "coffee", "garden", "kafka", "rust", "linux", "camera", "chair", "lamp",
         "wine", "tent", "bike", "phone", "desk", "paint"]
STATUS = [200] * 24 + [201, 204, 301, 302, 304, 304, 304, 400, 401, 403, 404, 404, 404, 499, 500, 502, 503]
USERS = ["-"] * 8 + ["alice", "bob", "carol", "svc-batch"]
REFS = ["-", "-", "-", "https://www.example.com/", "https://www.google.com/search?q=example",
        "https://shop.example.com/cart", "https://news.ycombinator.com/"]
UAS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.0 Safari/605.1.15",
    "curl/8.5.0", "Go-http-client/1.1", "python-requests/2.32.3", "kube-probe/1.31",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Prometheus/2.55.0",
]


def gen_file(path, fidx, nlines, rng):
    """Write one access-log-like file; each line 100..200 bytes (without \\n), ending in a unique id."""
    base = 1795000000 + fidx * 37
    ts_cache_sec, ts_str = -1, ""
    chunk = []
    size = 0
    ri, rnd, ch = rng.randint, rng.random, rng.choice
    with open(path, "wb") as f:
        for l in range(nlines):
            sec = base + l // 250
            if sec != ts_cache_sec:
                ts_cache_sec = sec
                ts_str = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(sec))
            p = ch(PATHS)
            if "{" in p:
                p = p.format(n=ri(1, 999999), h="%08x" % ri(0, 0xFFFFFFFF), w=ch(WORDS), w2=ch(WORDS), p=ri(1, 40))
            core = '%d.%d.%d.%d - %s [%s] "%s %s HTTP/1.1" %d %d rt=%.3f' % (
                ri(1, 223), ri(0, 255), ri(0, 255), ri(1, 254), ch(USERS), ts_str, ch(METHODS), p,
                ch(STATUS), ri(0, 250000), rnd() * 2)
            idpart = " id=w%06d-%08d" % (fidx, l)
            target = max(ri(100, 200), len(core) + len(idpart) + 10)
            room = target - len(core) - len(idpart)  # >= 10
            mid = ' "%s" "%s' % (ch(REFS), ch(UAS))
            if len(mid) + 1 > room:
                mid = mid[:room - 1] + '"'
            else:
                mid = mid + '"' + " req=" + "%032x" % rng.getrandbits(128)
                mid = mid[:room]
            line = core + mid + idpart + "\n"
            chunk.append(line)
            if len(chunk) >= 20000:
                b = "".join(chunk).encode()
                f.write(b)
                size += len(b)
                chunk = []
        b = "".join(chunk).encode()
        f.write(b)
        size += len(b)
    return size


def ensure_data(name, nfiles, nlines):
    """Generate (or reuse) the data set; returns dict(dir, files, sizes, lines, bytes)."""
    d = DATA_ROOT / name
    marker = d / ".complete.json"
    want = {"version": GEN_VERSION, "seed": SEED, "files": nfiles, "lines_per_file": nlines}
    if marker.exists():
        try:
            meta = json.loads(marker.read_text())
            if all(meta.get(k) == v for k, v in want.items()):
                files = [d / fn for fn in meta["names"]]
                if all(p.exists() and p.stat().st_size == s for p, s in zip(files, meta["sizes"])):
                    return dict(dir=d, files=files, sizes=meta["sizes"], lines=nfiles * nlines,
                                lines_per_file=nlines, bytes=sum(meta["sizes"]))
        except (OSError, ValueError, KeyError):
            pass
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    t = time.time()
    print(f"  generating {name}: {nfiles} files x {nlines} lines ...", end="", flush=True)
    names, sizes = [], []
    for i in range(nfiles):
        fn = "app-%04d.log" % i
        rng = random.Random(f"{SEED}:{name}:{i}")
        sizes.append(gen_file(d / fn, i, nlines, rng))
        names.append(fn)
    meta = dict(want, names=names, sizes=sizes, generated=datetime.datetime.now().isoformat())
    tmp = d / ".complete.json.tmp"
    tmp.write_text(json.dumps(meta))
    os.rename(tmp, marker)
    print(f" {sum(sizes) / 2**20:.1f} MiB in {time.time() - t:.1f}s", flush=True)
    return dict(dir=d, files=[d / n for n in names], sizes=sizes, lines=nfiles * nlines,
                lines_per_file=nlines, bytes=sum(sizes))


# --------------------------------------------------------------------------- verification

ID_RE = re.compile(rb"id=w(\d{6})-(\d{8})$")


def load_inputs(ds):
    return [p.read_bytes() for p in ds["files"]]


def verify(out_path, ds, inputs, fmt):
    """Every input line exactly once, per-file order kept. Returns (ok, message, extra)."""
    nf = len(inputs)
    pos = [0] * nf
    names = [p.name for p in ds["files"]]
    bad = 0
    out_lines = 0
    offset_mismatch = 0
    path_mismatch = 0
    json_errors = 0
    try:
        f = open(out_path, "rb")
    except FileNotFoundError:
        return False, "output file missing", {}
    with f:
        for raw in f:
            out_lines += 1
            if fmt == "json":
                try:
                    ev = json.loads(raw)
                    line = ev["message"].encode() + b"\n"
                except (ValueError, KeyError, TypeError, AttributeError):
                    json_errors += 1
                    bad += 1
                    continue
            else:
                line = raw
            try:
                fi = int(line[-16:-10])
            except ValueError:
                bad += 1
                continue
            if fi >= nf or not inputs[fi].startswith(line, pos[fi]):
                bad += 1
                continue
            if fmt == "json":
                if ev.get("offset") != pos[fi]:
                    offset_mismatch += 1
                if not str(ev.get("path", "")).endswith("/" + names[fi]):
                    path_mismatch += 1
            pos[fi] += len(line)
    extra = {"output_lines": out_lines}
    notes = []
    if offset_mismatch:
        notes.append(f"{offset_mismatch} json events with wrong 'offset'")
    if path_mismatch:
        notes.append(f"{path_mismatch} json events with unexpected 'path'")
    extra["notes"] = notes
    if bad == 0 and all(p == len(b) for p, b in zip(pos, inputs)):
        return True, "ok", extra
    # Slow path: say what is wrong.
    return False, diagnose(out_path, ds, fmt, json_errors), extra


def diagnose(out_path, ds, fmt, json_errors):
    nf, lpf = len(ds["files"]), ds["lines_per_file"]
    counts = bytearray(nf * lpf)
    last = [-1] * nf
    unknown = order = 0
    examples = []
    with open(out_path, "rb") as f:
        for raw in f:
            if fmt == "json":
                try:
                    line = json.loads(raw)["message"].encode()
                except Exception:
                    continue
            else:
                line = raw.rstrip(b"\n")
            m = ID_RE.search(line)
            if not m:
                unknown += 1
                if len(examples) < 3:
                    examples.append(line[:120])
                continue
            fi, li = int(m.group(1)), int(m.group(2))
            if fi >= nf or li >= lpf:
                unknown += 1
                continue
            if li < last[fi]:
                order += 1
            last[fi] = li
            c = counts[fi * lpf + li]
            counts[fi * lpf + li] = min(c + 1, 255)
    missing = counts.count(0)
    dups = sum(c - 1 for c in counts if c > 1)
    parts = [f"missing={missing}", f"duplicated={dups}"]
    if order:
        parts.append(f"out_of_order={order}")
    if unknown:
        parts.append(f"unrecognized/corrupt lines={unknown} e.g. {examples!r}")
    if json_errors:
        parts.append(f"json parse errors={json_errors}")
    if not (missing or dups or order or unknown or json_errors):
        parts.append("ids all present once but line content differs from input")
    return "FAILURE: " + ", ".join(parts)


def check_checkpoints(ckpt_dir, ds):
    """After a clean shutdown every file's checkpoint offset should equal its size."""
    p = Path(ckpt_dir) / "checkpoints.json"
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        return f"checkpoints.json unreadable after shutdown: {e}"
    by_ino = {}
    for e in data.get("files", []):
        by_ino[e.get("ino")] = e.get("offset")
    short = [fp.name for fp, size in zip(ds["files"], ds["sizes"]) if by_ino.get(fp.stat().st_ino) != size]
    if short:
        return f"checkpoint offset != file size for {len(short)}/{len(ds['files'])} files (e.g. {short[:3]})"
    return None


# --------------------------------------------------------------------------- running

def write_config(tmp, globs, out_path, fmt):
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "inputs:\n"
        "  files:\n"
        f"    - paths: {json.dumps([str(g) for g in globs])}\n"
        f"      checkpoint_path: {json.dumps(str(tmp / 'ckpt'))}\n"
        "      start_at: beginning\n"
        "      scan_interval: 1s\n"
        "      poll_interval: 250ms\n"
        "      checkpoint_interval: 5s\n"
        "logging:\n"
        f"  level: {LOG_LEVEL}\n"
        "  format: json\n"
        "output:\n"
        "  type: file\n"
        f"  path: {json.dumps(str(out_path))}\n"
        f"  format: {fmt}\n")
    return cfg


def child_env():
    env = dict(os.environ)
    for k in ("LOGAGGREGATOR_LOG_LEVEL", "LOGAGGREGATOR_LOG_FORMAT", "LOGAGGREGATOR_CONFIG"):
        env.pop(k, None)
    return env


def start_tool(tool, args, tmp, files, glob, fmt):
    """Start agent or tail; returns (Popen, out_path, stderr_path)."""
    out = tmp / "out.log"
    errp = tmp / "stderr.log"
    err = open(errp, "wb")
    if tool == "agent":
        cfg = write_config(tmp, [glob], out, fmt)
        p = spawn([args.bin, "--config", str(cfg)], cwd=tmp, stdin=subprocess.DEVNULL,
                  stdout=subprocess.DEVNULL, stderr=err, env=child_env())
    else:
        outf = open(out, "wb")
        p = spawn(["tail", "-q", "-n", "+1", "-F", *[str(f) for f in files]], cwd=tmp,
                  stdin=subprocess.DEVNULL, stdout=outf, stderr=err)
        outf.close()
    err.close()
    return p, out, errp


class RunFailed(Exception):
    pass


def wait_complete(p, out, fmt, exp_lines, exp_bytes, errp, timeout, stall):
    """Poll until the output holds everything. Returns (elapsed from t0 unknown -> caller), first_byte."""
    t_first = None
    last_size, last_change = -1, time.perf_counter()
    nl = 0
    fd = None
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        try:
            size = os.stat(out).st_size
        except FileNotFoundError:
            size = -1
        if size > 0 and t_first is None:
            t_first = now
        if fmt == "json" and size > 0:
            if fd is None:
                fd = os.open(out, os.O_RDONLY)
            while True:
                b = os.read(fd, 8 << 20)
                if not b:
                    break
                nl += b.count(b"\n")
            done = nl >= exp_lines
        else:
            done = size >= exp_bytes
        if done:
            if fd is not None:
                os.close(fd)
            return now, t_first
        if size != last_size:
            last_size, last_change = size, now
        if p.poll() is not None:
            why = (" without being asked (it exits 0 only on SIGTERM/SIGINT or a dead output: "
                   "did something else signal it, e.g. a pkill?)") if p.returncode == 0 else ""
            raise RunFailed(f"exited early with code {p.returncode}{why} (output {max(size, 0)} of "
                            f"{exp_bytes} bytes); stderr tail:\n{tail_text(errp)}")
        if now - last_change > stall:
            raise RunFailed(f"output stalled at {max(size, 0)} of {exp_bytes} bytes"
                            f"{f' ({nl}/{exp_lines} lines)' if fmt == 'json' else ''} for {stall:.0f}s; "
                            f"stderr tail:\n{tail_text(errp)}")
        if now - start > timeout:
            raise RunFailed(f"timeout after {timeout:.0f}s at {max(size, 0)} of {exp_bytes} bytes")
        time.sleep(POLL)


def throughput_run(tool, args, ds, inputs, fmt):
    tmp = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=TMP_ROOT))
    rec = {"tool": tool, "format": fmt}
    try:
        glob = ds["dir"] / "*.log"
        t0 = time.perf_counter()
        p, out, errp = start_tool(tool, args, tmp, ds["files"], glob, fmt)
        rec["pid"] = p.pid
        try:
            t_done, t_first = wait_complete(p, out, fmt, ds["lines"], ds["bytes"], errp,
                                            args.timeout, args.stall_timeout)
            cpu = proc_cpu(p.pid)
            st = proc_status(p.pid)
        except RunFailed as e:
            stop(p)
            rec.update(ok=False, error=str(e))
            return rec
        code, clean = stop(p)
        el = t_done - t0
        rec.update(seconds=el, first_output_s=(t_first - t0) if t_first else None,
                   lines_per_s=ds["lines"] / el, mib_per_s=ds["bytes"] / 2**20 / el,
                   cpu_s=cpu, cpu_s_per_mline=cpu / ds["lines"] * 1e6,
                   peak_rss_mib=st.get("VmHWM"), threads=st.get("Threads"), exit_code=code)
        ok, msg, extra = verify(out, ds, inputs, fmt)
        rec.update(ok=ok, verify=msg, **extra)
        notes = rec["notes"]
        if tool == "agent":
            if not clean:
                notes.append("did not exit within 15s of SIGTERM (killed)")
            elif code != 0:
                notes.append(f"exit code {code} after SIGTERM (expected 0)")
            if clean:
                c = check_checkpoints(tmp / "ckpt", ds)
                if c:
                    notes.append(c)
            w = warn_lines(errp)
            if w:
                notes.append(f"agent logged {len(w)} warning/error line(s), e.g.: " + " | ".join(w[:2])[:400])
        if not ok:
            rec["error"] = msg
        return rec
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def failure_text(r):
    e = str(r.get("error"))
    return e if e.startswith("FAILURE") else "FAILURE: " + e


def warn_lines(errp):
    try:
        lines = errp.read_bytes().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [l for l in lines if re.search(r'"level":"(WARN|ERROR)"|\b(WARN|ERROR)\b', l)]


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


METRICS = ["lines_per_s", "mib_per_s", "cpu_s_per_mline", "peak_rss_mib", "seconds", "first_output_s"]


def summarize(runs):
    ok = [r for r in runs if r.get("ok")]
    s = {"runs": len(runs), "ok_runs": len(ok), "status": "ok" if len(ok) == len(runs) else "FAILURE"}
    if ok:
        for m in METRICS:
            s[m] = median([r.get(m) for r in ok])
    return s


def bench_throughput(name, args, results, failures):
    nfiles, nlines = WORKLOADS[name]
    if args.quick:
        nlines //= 10
    dsname = name + ("-quick" if args.quick else "")
    ds = ensure_data(dsname, nfiles, nlines)
    inputs = load_inputs(ds)  # also warms the page cache
    cases = []
    if not args.tail_only:
        cases.append(("agent", "text"))
        if name == "single":
            cases.append(("agent", "json"))
    if not args.no_tail:
        cases.append(("tail", "text"))
    runs = {c: [] for c in cases}
    print(f"\n== {name}: {nfiles} file(s) x {nlines} lines = {ds['lines']} lines, "
          f"{ds['bytes'] / 2**20:.1f} MiB; {args.runs} run(s)", flush=True)
    for i in range(args.runs):
        for tool, fmt in cases:
            r = throughput_run(tool, args, ds, inputs, fmt)
            runs[(tool, fmt)].append(r)
            if r.get("ok"):
                print(f"  run {i + 1} {tool:5} {fmt:4}: {r['seconds']:7.3f}s {r['lines_per_s']:12,.0f} lines/s "
                      f"cpu {r['cpu_s']:.2f}s rss {r['peak_rss_mib']:.1f} MiB", flush=True)
                for n in r.get("notes", []):
                    print(f"      note: {n}", flush=True)
            else:
                print(f"  run {i + 1} {tool:5} {fmt:4}: {failure_text(r)}", flush=True)
                failures.append(f"{name}/{tool}/{fmt} run {i + 1}: {r.get('error')}")
    tail_sum = summarize(runs[("tail", "text")]) if ("tail", "text") in runs else None
    for (tool, fmt), rs in runs.items():
        s = summarize(rs)
        if tool == "agent" and tail_sum and s.get("lines_per_s") and tail_sum.get("lines_per_s"):
            s["vs_tail"] = s["lines_per_s"] / tail_sum["lines_per_s"]
        notes = sorted({n for r in rs for n in r.get("notes", [])})
        results.append({"workload": name, "files": nfiles, "lines": ds["lines"], "bytes": ds["bytes"],
                        "tool": tool, "format": fmt, "median": s, "notes": notes, "runs": rs})


# --------------------------------------------------------------------------- latency

LAT_RE = re.compile(rb" ts=(\d+) id=([LW][\d-]+)\n")


def writer_main(argv):
    """Child process: append lines at a fixed rate. argv: rate seconds file..."""
    rate, seconds, paths = float(argv[0]), float(argv[1]), argv[2:]
    fds = [os.open(p, os.O_WRONLY | os.O_APPEND) for p in paths]
    nf = len(fds)
    rng = random.Random(SEED)
    prefixes = []
    for i in range(512):
        pre = '10.%d.%d.%d - - [%s] "GET /api/v1/items/%d HTTP/1.1" 200 %d "-" "%s"' % (
            rng.randint(0, 255), rng.randint(0, 255), rng.randint(1, 254),
            time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(1795000000 + i)),
            rng.randint(1, 99999), rng.randint(100, 90000), rng.choice(UAS))
        tgt = rng.randint(100, 200) - 40  # ts (23) + id (~17)
        prefixes.append(pre[:max(tgt, 60)].encode())
    total = int(rate * seconds)
    written = 0
    bursts = 0
    max_behind = 0.0
    tick = 0.001
    mono = time.monotonic
    t0 = mono()
    next_t = t0
    while written < total:
        now = mono()
        due = min(total, int((now - t0) * rate) + 1)
        if due > written:
            behind = (now - t0) - written / rate
            if behind > max_behind:
                max_behind = behind
            ts = time.time_ns()
            bufs = [[] for _ in range(nf)]
            for k in range(written, due):
                bufs[k % nf].append(b"%s ts=%d id=L%d-%08d\n" % (prefixes[k & 511], ts, k % nf, k))
            for fd, b in zip(fds, bufs):
                if b:
                    os.write(fd, b"".join(b))
            written = due
            bursts += 1
        next_t += tick
        d = next_t - mono()
        if d > 0:
            time.sleep(d)
        elif d < -0.05:
            next_t = mono()
    el = mono() - t0
    sys.stdout.write(json.dumps({"written": written, "bursts": bursts, "seconds": el,
                                 "max_behind_ms": max_behind * 1000}) + "\n")
    sys.stdout.flush()


def pct(sorted_xs, q):
    if not sorted_xs:
        return None
    i = max(0, min(len(sorted_xs) - 1, math.ceil(q * len(sorted_xs)) - 1))  # nearest rank
    return sorted_xs[i]


def latency_run(tool, args):
    tmp = Path(tempfile.mkdtemp(prefix=f"lat-{tool}-", dir=TMP_ROOT))
    rec = {"tool": tool, "rate": args.latency_rate, "seconds": args.latency_seconds, "files": LAT_FILES}
    p = None
    try:
        logs = tmp / "logs"
        logs.mkdir()
        files = [logs / f"lat-{i}.log" for i in range(LAT_FILES)]
        for f in files:
            f.touch()
        p, out, errp = start_tool(tool, args, tmp, files, logs / "*.log", "text")
        rec["pid"] = p.pid
        # Reader state
        fd = None
        buf = b""
        lats = array.array("q")
        seen = set()
        dup = 0
        warm_seen = set()
        writer = None
        wstats = None
        t_start = time.monotonic()
        cpu0 = None
        # Warm-up: one line per file; the timed phase starts once all four came through.
        time.sleep(0.3)
        for i, f in enumerate(files):
            with open(f, "ab", buffering=0) as fh:
                fh.write(b"warmup ts=%d id=W%d\n" % (time.time_ns(), i))
        deadline_after_writer = None
        it = 0
        while True:
            it += 1
            if fd is None:
                try:
                    fd = os.open(out, os.O_RDONLY)
                except FileNotFoundError:
                    pass
            data = os.read(fd, 4 << 20) if fd is not None else b""
            if data:
                now = time.time_ns()
                buf += data
                cut = buf.rfind(b"\n") + 1
                if cut:
                    chunk, buf = buf[:cut], buf[cut:]
                    for ts, ident in LAT_RE.findall(chunk):
                        if ident[0] == 0x57:  # 'W'
                            warm_seen.add(ident)
                            continue
                        if ident in seen:
                            dup += 1
                        else:
                            seen.add(ident)
                        lats.append(now - int(ts))
            else:
                if writer is None and len(warm_seen) == LAT_FILES:
                    cpu0 = proc_cpu(p.pid)
                    writer = spawn([sys.executable, __file__, "--_writer", str(args.latency_rate),
                                    str(args.latency_seconds), *[str(f) for f in files]],
                                   stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
                    t_writer = time.monotonic()
                elif writer is None and time.monotonic() - t_start > 30:
                    raise RunFailed(f"warm-up lines not delivered within 30s ({len(warm_seen)}/{LAT_FILES}); "
                                    f"stderr tail:\n{tail_text(errp)}")
                if writer is not None and wstats is None and writer.poll() is not None:
                    wstats = json.loads(writer.stdout.read() or b"{}")
                    deadline_after_writer = time.monotonic() + 15
                if wstats is not None:
                    if len(seen) >= wstats.get("written", 0) or time.monotonic() > deadline_after_writer:
                        break
                if writer is not None and time.monotonic() - t_writer > args.latency_seconds + 60:
                    raise RunFailed("latency writer did not finish")
                time.sleep(0.001)
            if it % 64 == 0 and p.poll() is not None:
                raise RunFailed(f"exited early with code {p.returncode}; stderr tail:\n{tail_text(errp)}")
        cpu = proc_cpu(p.pid) - cpu0
        wall = time.monotonic() - t_writer
        st = proc_status(p.pid)
        code, clean = stop(p)
        s = sorted(lats)
        written = wstats.get("written", 0)
        missing = written - len(seen)
        rec.update(writer=wstats, delivered=len(seen), missing=missing, duplicated=dup,
                   p50_ms=pct(s, 0.50) / 1e6 if s else None, p99_ms=pct(s, 0.99) / 1e6 if s else None,
                   max_ms=s[-1] / 1e6 if s else None, mean_ms=(sum(s) / len(s) / 1e6) if s else None,
                   cpu_pct=cpu / wall * 100, peak_rss_mib=st.get("VmHWM"), exit_code=code)
        ok = missing == 0 and dup == 0
        rec["ok"] = ok
        rec["notes"] = []
        if not ok and tool == "tail":
            # GNU tail copies whatever read() returns, so a line caught half-written in one file can be
            # split by lines of another file in its output. That is tail's nature, not a harness error.
            rec["ok"] = True
            rec["notes"].append(f"tail split {missing} line(s) across files (partial reads); "
                                "not counted as a failure for the baseline")
        elif not ok:
            rec["error"] = f"FAILURE: missing={missing} duplicated={dup} of {written}"
        return rec
    except RunFailed as e:
        rec.update(ok=False, error=str(e))
        return rec
    finally:
        for c in CHILDREN:
            if c.poll() is None and c.args and "--_writer" in c.args:
                c.kill()
        if p is not None and p.poll() is None:
            stop(p)
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_latency(args, results, failures):
    print(f"\n== latency: {args.latency_rate:,} lines/s over {LAT_FILES} files for {args.latency_seconds}s",
          flush=True)
    tools = ([] if args.tail_only else ["agent"]) + ([] if args.no_tail else ["tail"])
    for tool in tools:
        r = latency_run(tool, args)
        results.append(r)
        if r.get("ok"):
            w = r["writer"]
            print(f"  {tool:5}: p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms  "
                  f"({r['delivered']} lines, cpu {r['cpu_pct']:.1f}% of a core, writer max behind "
                  f"{w['max_behind_ms']:.1f} ms)", flush=True)
            for n in r.get("notes", []):
                print(f"      note: {n}", flush=True)
        else:
            print(f"  {tool:5}: {failure_text(r)}", flush=True)
            failures.append(f"latency/{tool}: {r.get('error')}")


# --------------------------------------------------------------------------- idle

def idle_run(tool, args, ds, inputs):
    tmp = Path(tempfile.mkdtemp(prefix=f"idle-{tool}-", dir=TMP_ROOT))
    rec = {"tool": tool, "files": len(ds["files"]), "watch_s": args.idle_seconds}
    try:
        t0 = time.perf_counter()
        p, out, errp = start_tool(tool, args, tmp, ds["files"], ds["dir"] / "*.log", "text")
        rec["pid"] = p.pid
        try:
            t_done, _ = wait_complete(p, out, "text", ds["lines"], ds["bytes"], errp, args.timeout,
                                      args.stall_timeout)
            rec["read_all_s"] = t_done - t0
            c0, w0 = proc_cpu(p.pid), time.monotonic()
            end = w0 + args.idle_seconds
            while time.monotonic() < end:
                if p.poll() is not None:
                    why = (" without being asked (it exits 0 only on SIGTERM/SIGINT or a dead output: "
                           "did something else signal it, e.g. a pkill?)") if p.returncode == 0 else ""
                    raise RunFailed(f"exited during idle with code {p.returncode}{why}; stderr tail:\n"
                                    f"{tail_text(errp)}")
                time.sleep(0.1)
            c1, w1 = proc_cpu(p.pid), time.monotonic()
            st = proc_status(p.pid)
        except RunFailed as e:
            stop(p)
            rec.update(ok=False, error=str(e))
            return rec
        stop(p)
        rec.update(cpu_pct=(c1 - c0) / (w1 - w0) * 100, rss_mib=st.get("VmRSS"), peak_rss_mib=st.get("VmHWM"),
                   threads=st.get("Threads"))
        ok, msg, extra = verify(out, ds, inputs, "text")
        rec.update(ok=ok, verify=msg)
        if not ok:
            rec["error"] = msg
        return rec
    finally:
        if not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def bench_idle(args, results, failures):
    nfiles = IDLE_FILES // 10 if args.quick else IDLE_FILES
    ds = ensure_data(f"idle-{nfiles}", nfiles, IDLE_LINES)
    inputs = load_inputs(ds)
    print(f"\n== idle: {nfiles} quiet files x {IDLE_LINES} lines, watch {args.idle_seconds}s", flush=True)
    tools = ([] if args.tail_only else ["agent"]) + ([] if args.no_tail else ["tail"])
    for tool in tools:
        r = idle_run(tool, args, ds, inputs)
        results.append(r)
        if r.get("ok"):
            print(f"  {tool:5}: cpu {r['cpu_pct']:.2f}% of a core, RSS {r['rss_mib']:.1f} MiB, "
                  f"threads {r['threads']} (read all in {r['read_all_s']:.2f}s)", flush=True)
        else:
            print(f"  {tool:5}: {failure_text(r)}", flush=True)
            failures.append(f"idle/{tool}: {r.get('error')}")


# --------------------------------------------------------------------------- report

def machine_info(args):
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = line.split(":", 1)[1].strip()
    except OSError:
        pass

    def cmd(c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except Exception:
            return None

    import resource
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "model_name": model,
        "kernel": platform.release(),
        "mem_total": mem,
        "python": platform.python_version(),
        "tail_version": cmd(["tail", "--version"]),
        "agent_bin": None if args.tail_only else str(args.bin),
        "agent_version": None if args.tail_only else cmd([str(args.bin), "--version"]),
        "git_commit": cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]),
        "rlimit_nofile": resource.getrlimit(resource.RLIMIT_NOFILE),
        "data_dir": str(DATA_ROOT),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "cpu_busy_at_start": cpu_busy(),
        "notes": "data and output on the same filesystem, page cache warm; output polled every 5 ms; "
                 "latency reader polls every 1 ms",
    }


def cpu_busy(interval=0.5):
    """Fraction of all CPUs busy over `interval` (others' load makes the numbers noisy)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]  # total, idle+iowait
    t0, i0 = snap()
    time.sleep(interval)
    t1, i1 = snap()
    return round(1 - (i1 - i0) / max(1, t1 - t0), 3)


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(thr, lat, idle, machine):
    print(f"\nlogaggregator bench  {machine['date']}  {machine['model_name']} x{machine['nproc']}  "
          f"kernel {machine['kernel']}  agent {machine.get('agent_version')}")
    if thr:
        hdr = (f"{'workload':9} {'tool':5} {'fmt':4} {'lines/s':>12} {'MiB/s':>8} {'cpu s/Mline':>11} "
               f"{'peak RSS MiB':>12} {'time s':>7} {'vs tail':>7}  status")
        print("\nThroughput (median of runs)\n" + hdr + "\n" + "-" * len(hdr))
        for r in thr:
            m = r["median"]
            print(f"{r['workload']:9} {r['tool']:5} {r['format']:4} {fmt_num(m.get('lines_per_s'), '12,.0f')} "
                  f"{fmt_num(m.get('mib_per_s'), '8.1f')} {fmt_num(m.get('cpu_s_per_mline'), '11.3f')} "
                  f"{fmt_num(m.get('peak_rss_mib'), '12.1f')} {fmt_num(m.get('seconds'), '7.3f')} "
                  f"{fmt_num(m.get('vs_tail'), '7.2f')}  {m['status']} ({m['ok_runs']}/{m['runs']})")
    if lat:
        print(f"\nLatency ({lat[0]['rate']:,} lines/s over {lat[0]['files']} files, {lat[0]['seconds']}s)")
        hdr = f"{'tool':5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lines':>9} {'cpu %':>6}  status"
        print(hdr + "\n" + "-" * len(hdr))
        for r in lat:
            print(f"{r['tool']:5} {fmt_num(r.get('p50_ms'), '8.2f')} {fmt_num(r.get('p99_ms'), '8.2f')} "
                  f"{fmt_num(r.get('max_ms'), '8.2f')} {fmt_num(r.get('delivered'), '9d')} "
                  f"{fmt_num(r.get('cpu_pct'), '6.1f')}  {'ok' if r.get('ok') else 'FAILURE'}")
    if idle:
        print(f"\nIdle ({idle[0]['files']} quiet files, {idle[0]['watch_s']}s)")
        hdr = f"{'tool':5} {'cpu %':>7} {'RSS MiB':>8} {'threads':>7}  status"
        print(hdr + "\n" + "-" * len(hdr))
        for r in idle:
            print(f"{r['tool']:5} {fmt_num(r.get('cpu_pct'), '7.2f')} {fmt_num(r.get('rss_mib'), '8.1f')} "
                  f"{fmt_num(r.get('threads'), '7d')}  {'ok' if r.get('ok') else 'FAILURE'}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--_writer":
        writer_main(sys.argv[2:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", help="agent binary (default: bin/logaggregator, else target/release/logaggregator)")
    ap.add_argument("--runs", type=int, help="runs per throughput case (default 3; 1 with --quick)")
    ap.add_argument("--only", default="single,many100,many1000,latency,idle",
                    help="comma list of: single,many100,many1000,latency,idle")
    ap.add_argument("--quick", action="store_true", help="1/10 data sizes, 1 run, short latency/idle")
    ap.add_argument("--json", default=str(REPO / "bench" / "results.json"), help="results file")
    ap.add_argument("--tail-only", action="store_true", help="only run GNU tail (harness test)")
    ap.add_argument("--no-tail", action="store_true", help="skip the GNU tail baseline")
    ap.add_argument("--latency-rate", type=int, default=20_000, help="lines/s (default 20000)")
    ap.add_argument("--latency-seconds", type=float, help="default 10 (3 with --quick)")
    ap.add_argument("--idle-seconds", type=float, help="default 10 (3 with --quick)")
    ap.add_argument("--timeout", type=float, default=600, help="per-run timeout, s")
    ap.add_argument("--stall-timeout", type=float, default=30, help="fail if output stops growing this long, s")
    ap.add_argument("--agent-log-level", default="warn", help="agent logging.level (default warn)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep per-run temp dirs under target/bench-tmp")
    args = ap.parse_args()
    global LOG_LEVEL
    LOG_LEVEL = args.agent_log_level
    if args.runs is None:
        args.runs = 1 if args.quick else 3
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if args.latency_seconds is None:
        args.latency_seconds = 3.0 if args.quick else 10.0
    if args.idle_seconds is None:
        args.idle_seconds = 3.0 if args.quick else 10.0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(WORKLOADS) - {"latency", "idle"}
    if unknown:
        ap.error(f"--only: unknown {sorted(unknown)}")
    if args.tail_only and args.no_tail:
        ap.error("--tail-only and --no-tail exclude each other")
    if not args.tail_only:
        if args.bin is None:
            cands = [REPO / "bin" / "logaggregator", REPO / "target" / "release" / "logaggregator"]
            args.bin = next((c for c in cands if c.exists()), None)
            if args.bin is None:
                print(f"error: no agent binary ({', '.join(map(str, cands))}); run `make build` or pass --bin",
                      file=sys.stderr)
                return 2
        args.bin = Path(args.bin).resolve()
        if not os.access(args.bin, os.X_OK):
            print(f"error: {args.bin} is not executable", file=sys.stderr)
            return 2
    if shutil.which("tail") is None and not args.no_tail:
        print("error: GNU tail not found (use --no-tail)", file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    TMP_ROOT.mkdir(parents=True, exist_ok=True)
    DATA_ROOT.mkdir(parents=True, exist_ok=True)
    machine = machine_info(args)
    if machine["cpu_busy_at_start"] > 0.1:
        print(f"warning: CPUs {machine['cpu_busy_at_start']:.0%} busy before starting - something else is "
              "running; numbers will be noisy", file=sys.stderr)
    thr, lat, idle, failures = [], [], [], []
    try:
        for name in WORKLOADS:
            if name in only:
                bench_throughput(name, args, thr, failures)
        if "latency" in only:
            bench_latency(args, lat, failures)
        if "idle" in only:
            bench_idle(args, idle, failures)
    finally:
        kill_all()
    print_table(thr, lat, idle, machine)
    res = {"machine": machine,
           "params": {"runs": args.runs, "quick": args.quick, "only": only, "latency_rate": args.latency_rate,
                      "latency_seconds": args.latency_seconds, "idle_seconds": args.idle_seconds},
           "throughput": thr, "latency": lat, "idle": idle, "failures": failures,
           "status": "FAILURE" if failures else "ok"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=2, default=str) + "\n")
    print(f"\nresults: {args.json}")
    if failures:
        print("\nFAILURES:", file=sys.stderr)
        for f in failures:
            print("  " + f.split("\n")[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        kill_all()
        sys.exit(130)
