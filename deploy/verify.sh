#!/usr/bin/env bash
# Checks what deploy/ ships, against a built binary:
#   1. the systemd unit passes `systemd-analyze verify` with no message at all,
#   2. deploy/systemd/config.yaml and deploy/container/config.yaml pass `--check`,
#   3. deploy/kubernetes/*.yaml parse, fit together (check_manifests.py), and the
#      ConfigMap's config passes `--check` with POD_NAME/POD_NAMESPACE set,
#   4. `make install DESTDIR=<temp>` installs everything and keeps an existing config.
# Usage: deploy/verify.sh BINARY   (run from the repository root; `make verify-deploy`)
set -euo pipefail
bin=$(realpath "${1:?usage: deploy/verify.sh BINARY}")
[ -x "$bin" ] || { echo "verify-deploy: $bin is not an executable" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
step() { echo "verify-deploy: $*"; }

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
for f in usr/local/bin/logaggregator etc/systemd/system/logaggregator.service etc/logaggregator/config.yaml; do
  [ -e "$dest/$f" ] || { echo "verify-deploy: FAIL: make install did not create /$f" >&2; exit 1; }
done
[ -x "$dest/usr/local/bin/logaggregator" ] || { echo "verify-deploy: FAIL: installed binary not executable" >&2; exit 1; }
echo "# edited" >> "$dest/etc/logaggregator/config.yaml"
"${MAKE:-make}" --no-print-directory -s install PREFIX=/usr/local DESTDIR="$dest" BIN="$bin" > /dev/null
tail -n1 "$dest/etc/logaggregator/config.yaml" | grep -q '^# edited$' ||
  { echo "verify-deploy: FAIL: a second make install overwrote the existing config" >&2; exit 1; }
cmp -s deploy/systemd/config.yaml "$dest/etc/logaggregator/config.yaml.example" ||
  { echo "verify-deploy: FAIL: make install did not leave config.yaml.example beside the existing config" >&2; exit 1; }
step "ok: make install DESTDIR=<temp> (twice; existing config kept)"
echo "verify-deploy: all checks passed"
