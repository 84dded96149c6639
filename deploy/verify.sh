#!/usr/bin/env bash
# Checks what deploy/ ships, against a built binary:
#   1. the systemd unit passes `systemd-analyze verify` with no message at all,
#   2. deploy/systemd/config.yaml and deploy/container/config.yaml pass `--check`,
#   3. deploy/kubernetes/*.yaml parse, fit together (check_manifests.py), and the
#      ConfigMap's config passes `--check` with POD_NAME/POD_NAMESPACE set,
#   4. `make install DESTDIR=<temp>` installs everything and keeps an existing config,
#   5. deploy/logrotate/logaggregator names the systemd config's output.path and passes
#      `logrotate -d` with no error (skipped, saying so, when logrotate is not installed),
#   6. `make run` writes the agent's events to stdout and nothing else.
# Usage: deploy/verify.sh BINARY   (run from the repository root; `make verify-deploy`)
set -euo pipefail
bin=$(realpath "${1:?usage: deploy/verify.sh BINARY}")
[ -x "$bin" ] || { echo "verify-deploy: $bin is not an executable" >&2; exit 1; }
tmp=$(mktemp -d)
runpid=
# A `make run` still going (step 6 failed) is stopped with its process group.
trap '[ -z "$runpid" ] || kill -KILL -- "-$runpid" 2>/dev/null; rm -rf "$tmp"' EXIT
step() { echo "verify-deploy: $*"; }
fail() { echo "verify-deploy: FAIL: $*" >&2; exit 1; }

# 1. systemd unit. systemd-analyze verify wants ExecStart's binary to exist, so point it at
# the built one. It exits 0 on unknown keys or bad values (it only warns, "ignoring"), so
# any output at all counts as a failure.
unit=deploy/systemd/logaggregator.service
mkdir "$tmp/unit"
sed "s#^ExecStart=/usr/local/bin/logaggregator #ExecStart=$bin #" "$unit" > "$tmp/unit/logaggregator.service"
grep -q "^ExecStart=$bin " "$tmp/unit/logaggregator.service" ||
  { echo "verify-deploy: $unit: no 'ExecStart=/usr/local/bin/logaggregator ...' line" >&2; exit 1; }
rc=0
out=$(systemd-analyze verify --man=no "$tmp/unit/logaggregator.service" 2>&1) || rc=$?
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
  echo "$out" >&2
  echo "verify-deploy: FAIL: systemd-analyze verify $unit (exit $rc, messages above)" >&2
  exit 1
fi
step "ok: systemd-analyze verify $unit"

# 2. The configs shipped for hosts and for the image.
for cfg in deploy/systemd/config.yaml deploy/container/config.yaml; do
  "$bin" --check --config "$cfg" > "$tmp/check.out" 2>&1 ||
    { cat "$tmp/check.out" >&2; echo "verify-deploy: FAIL: $bin --check --config $cfg" >&2; exit 1; }
  step "ok: --check $cfg"
done

# 3. Kubernetes manifests, and the config inside their ConfigMap.
mkdir "$tmp/k8s"
cms=$(python3 deploy/check_manifests.py "$tmp/k8s")
step "ok: deploy/kubernetes/*.yaml parsed and cross-checked"
for cfg in $cms; do
  POD_NAME=demo-app-5d8f7c-abcde POD_NAMESPACE=default "$bin" --check --config "$cfg" > "$tmp/check.out" 2>&1 ||
    { cat "$tmp/check.out" >&2; echo "verify-deploy: FAIL: --check of ConfigMap config $(basename "$cfg")" >&2; exit 1; }
  step "ok: --check ConfigMap $(basename "$cfg") (POD_NAME, POD_NAMESPACE set)"
done

# 4. make install into a temporary DESTDIR, twice: the second must keep the edited config.
dest="$tmp/dest"
"${MAKE:-make}" --no-print-directory -s install PREFIX=/usr/local DESTDIR="$dest" BIN="$bin" > /dev/null
for f in usr/local/bin/logaggregator etc/systemd/system/logaggregator.service etc/logaggregator/config.yaml \
  etc/logrotate.d/logaggregator; do
  [ -e "$dest/$f" ] || { echo "verify-deploy: FAIL: make install did not create /$f" >&2; exit 1; }
done
[ -x "$dest/usr/local/bin/logaggregator" ] || { echo "verify-deploy: FAIL: installed binary not executable" >&2; exit 1; }
echo "# edited" >> "$dest/etc/logaggregator/config.yaml"
"${MAKE:-make}" --no-print-directory -s install PREFIX=/usr/local DESTDIR="$dest" BIN="$bin" > /dev/null
tail -n1 "$dest/etc/logaggregator/config.yaml" | grep -q '^# edited$' ||
  { echo "verify-deploy: FAIL: a second make install overwrote the existing config" >&2; exit 1; }
cmp -s deploy/systemd/config.yaml "$dest/etc/logaggregator/config.yaml.example" ||
  { echo "verify-deploy: FAIL: make install did not leave config.yaml.example beside the existing config" >&2; exit 1; }
cmp -s deploy/logrotate/logaggregator "$dest/etc/logrotate.d/logaggregator" ||
  fail "make install did not install deploy/logrotate/logaggregator as /etc/logrotate.d/logaggregator"
step "ok: make install DESTDIR=<temp> (twice; existing config kept)"

# 5. The logrotate stanza rotates the file the systemd config writes. logrotate -d exits 0 on
# unknown directives (it only prints "error: ... ignoring line"), so any error line fails.
lr=deploy/logrotate/logaggregator
out_path=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["output"]["path"])' \
  deploy/systemd/config.yaml)
grep -qxF "$out_path {" "$lr" || fail "$lr has no stanza for output.path $out_path of deploy/systemd/config.yaml"
for directive in nocreate delaycompress; do
  grep -qE "^[[:space:]]*$directive\$" "$lr" || fail "$lr: $directive is missing (see the comment in it)"
done
if command -v logrotate >/dev/null 2>&1; then
  rc=0
  out=$(logrotate -d -s "$tmp/logrotate.state" "$lr" 2>&1) || rc=$?
  if [ "$rc" -ne 0 ] || grep -qi 'error' <<<"$out"; then
    echo "$out" >&2
    fail "logrotate -d $lr (exit $rc, messages above)"
  fi
  step "ok: logrotate -d $lr ($out_path)"
else
  step "skipped: logrotate -d $lr (logrotate is not installed; .ci/run installs it)"
fi

# 6. `make run | jq` works: stdout carries the events and nothing else; make's command lines
# and cargo's output go to stderr. Run as a person types it (not as a sub-make of
# verify-deploy, which would add "Entering directory" lines), in a temporary RUN_DIR with its
# own bin/, demo/ and data/, under its own process group so that ^C can be sent to all of it.
run="$tmp/run"
mkdir -p "$run"
: > "$run/stdout"
set -m
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u LOGAGGREGATOR_DEMO_DIR "${MAKE:-make}" run RUN_DIR="$run" BIN="$run/bin/logaggregator" \
  > "$run/stdout" 2> "$run/stderr" < /dev/null &
runpid=$!
set +m
# Waits (polling, up to $2 seconds) until command $1 succeeds; fails with $3 otherwise.
wait_for() {
  local deadline=$((SECONDS + $2))
  until eval "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || { cat "$run/stderr" >&2; fail "$3"; }
    sleep 0.1
  done
}
wait_for '[ "$(wc -l < "$run/stdout")" -ge 2 ] || ! kill -0 "$runpid" 2>/dev/null' 600 \
  "make run printed no 2 events within 600 s"
kill -INT -- "-$runpid" 2>/dev/null || true
wait_for '! kill -0 "$runpid" 2>/dev/null' 30 "make run did not stop within 30 s of ^C"
wait "$runpid" 2>/dev/null || true
runpid=
python3 - "$run/stdout" "$(realpath "$run")/demo/logs/app.log" <<'PY' ||
import json, sys
out, path = sys.argv[1], sys.argv[2]
lines = open(out, encoding="utf-8").read().splitlines()
want = ["demo: logaggregator started tailing",
        "demo: append lines to demo/logs/app.log and watch them appear"]
for l in lines:
    try:
        e = json.loads(l)
    except ValueError:
        sys.exit(f"not an event on make run's stdout: {l!r}")
    if not isinstance(e, dict) or sorted(e) != ["host", "message", "offset", "path", "source", "timestamp"]:
        sys.exit(f"not an event on make run's stdout: {l!r}")
    if e["path"] != path:
        sys.exit(f"event path {e['path']!r}, expected the absolute {path!r}")
if [json.loads(l)["message"] for l in lines] != want:
    sys.exit(f"make run's stdout: {lines!r}, expected the two demo events {want!r}")
PY
  { echo "--- stdout ---" >&2; cat "$run/stdout" >&2; echo "--- stderr ---" >&2; cat "$run/stderr" >&2
    fail "make run: stdout must carry only the agent's events"; }
grep -q "build --release --locked" "$run/stderr" && grep -q "Finished" "$run/stderr" ||
  { cat "$run/stderr" >&2; fail "make run: cargo's command line and output should be on stderr"; }
step "ok: make run: only events on stdout (cargo and make on stderr)"
echo "verify-deploy: all checks passed"
