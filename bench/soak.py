#!/usr/bin/env python3
"""make soak: live files rotated every second (keep 3), graceful restarts and one kill -9.

Prints lines written, lost and duplicated, and the agent's RSS over time. Passes when nothing
is lost, duplicates come only from the kill (at most one checkpoint interval of lines), and
RSS stays flat. Standard library only.
"""
import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_bin():
    for p in ("bin/logaggregator", "target/release/logaggregator"):
        p = os.path.join(ROOT, p)
        if os.path.exists(p):
            return p
    return os.path.join(ROOT, "bin/logaggregator")


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Writer(threading.Thread):
    """Appends unique lines to one file at a fixed rate and rotates it every second."""

    def __init__(self, d, name, rate, stop):
        super().__init__(daemon=True)
        self.path = os.path.join(d, name)
        self.name_ = name
        self.rate = rate
        self.stop = stop
        self.written = 0

    def rotate(self):
        # logrotate `create` with rotate 3: .2 -> .3 (the old .3 is deleted), .1 -> .2, log -> .1
        for i in (3, 2, 1):
            src = self.path + (f".{i - 1}" if i > 1 else "")
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i}")

    def run(self):
        f = open(self.path, "a")
        start = time.monotonic()
        last_rotate = start
        while not self.stop.is_set():
            due = int((time.monotonic() - start) * self.rate)
            while self.written < due:
                f.write(f"{self.name_} {self.written:09d} soak payload abcdefghijklmnopqrstuvwxyz\n")
                self.written += 1
            f.flush()
            if time.monotonic() - last_rotate >= 1.0:
                f.close()
                self.rotate()
                f = open(self.path, "a")
                last_rotate = time.monotonic()
            time.sleep(0.005)
        f.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", default=default_bin())
    ap.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--rate", type=int, default=2000, help="lines/s per file")
    ap.add_argument("--restart-every", type=float, default=60, help="graceful restart period")
    ap.add_argument("--checkpoint-interval", default="1s")
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--format", default="text", choices=["text", "json"])
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="logaggregator-soak-")
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    out = os.path.join(tmp, "out.log")
    cfg = os.path.join(tmp, "config.yaml")
    with open(cfg, "w") as f:
        f.write(f"""inputs:
  files:
    - paths: ["{logs}/*.log*"]
      checkpoint_path: {tmp}/checkpoints
      checkpoint_interval: {args.checkpoint_interval}
      rotate_wait: 2s
logging:
  level: {args.log_level}
  stats_interval: 0
output:
  type: file
  path: {out}
  format: {args.format}
""")
    err = open(os.path.join(tmp, "agent.stderr"), "a")

    def start():
        return subprocess.Popen([args.bin, "--config", cfg], stderr=err, stdout=subprocess.DEVNULL)

    stop = threading.Event()
    writers = [Writer(logs, f"app{i}.log", args.rate, stop) for i in range(args.files)]
    agent = start()
    for w in writers:
        w.start()
    t0 = time.monotonic()
    kill_at = args.duration / 2
    killed = False
    restarts = 0
    next_restart = args.restart_every
    rss = []
    next_rss = 0.0
    print(f"soak: {args.files} files x {args.rate} lines/s, rotation every 1s (keep 3), "
          f"{args.duration:.0f}s, graceful restart every {args.restart_every:.0f}s, one kill -9; dir {tmp}")
    try:
        while True:
            el = time.monotonic() - t0
            if el >= args.duration:
                break
            if agent.poll() is not None:
                print(f"FAILURE: agent exited on its own with {agent.returncode}; see {tmp}/agent.stderr")
                return 1
            if el >= next_rss:
                r = rss_kib(agent.pid)
                if r:
                    rss.append((el, r))
                    print(f"  t={el:6.0f}s  rss={r / 1024:6.1f} MiB  written={sum(w.written for w in writers)}", flush=True)
                next_rss += max(10.0, args.duration / 30)
            if not killed and el >= kill_at:
                agent.kill()
                agent.wait()
                killed = True
                agent = start()
            elif el >= next_restart:
                agent.send_signal(signal.SIGTERM)
                rc = agent.wait(timeout=30)
                if rc != 0:
                    print(f"FAILURE: graceful stop exited {rc}")
                    return 1
                restarts += 1
                agent = start()
                next_restart += args.restart_every
            time.sleep(0.05)
        stop.set()
        for w in writers:
            w.join()
        written = {w.name_: w.written for w in writers}
        total = sum(written.values())
        # Wait (bounded) until every line is out.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open(out, "rb") as f:
                n = sum(1 for _ in f)
            if n >= total:
                break
            time.sleep(0.5)
        time.sleep(1)
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
    finally:
        stop.set()
        if agent.poll() is None:
            agent.kill()

    seen = collections.Counter()
    with open(out) as f:
        for line in f:
            if args.format == "json":
                try:
                    line = json.loads(line)["message"]
                except ValueError:
                    continue
            parts = line.split()
            if len(parts) >= 2:
                seen[(parts[0], parts[1])] += 1
    lost = 0
    for name, n in written.items():
        for i in range(n):
            if seen.get((name, f"{i:09d}"), 0) == 0:
                lost += 1
    dup = sum(c - 1 for c in seen.values() if c > 1)
    interval = float(args.checkpoint_interval.rstrip("s"))
    dup_budget = int(args.files * args.rate * (interval + 1))
    first = rss[min(len(rss) - 1, max(1, len(rss) // 4))][1] if rss else 0
    last_rss = rss[-1][1] if rss else 0
    flat = not rss or last_rss <= first * 1.5 + 2048
    print(f"written={total} lost={lost} duplicated={dup} (budget from the one kill -9: {dup_budget}) "
          f"graceful_restarts={restarts} kills={int(killed)} rss_first={first / 1024:.1f}MiB rss_last={last_rss / 1024:.1f}MiB")
    ok = lost == 0 and dup <= dup_budget and flat
    print("PASS" if ok else "FAILURE", f"(dir {tmp})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
