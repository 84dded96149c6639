# logaggregator: build, test, lint and run. `make help` lists the targets.
CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
BIN     := bin/logaggregator

.PHONY: help build test lint fmt run install-deps clean bench soak

help:
	@echo "make build         release binary at $(BIN)"
	@echo "make run           build and run on config.yaml.example (demo logs under ./demo/logs)"
	@echo "make test          unit and end-to-end tests"
	@echo "make lint          rustfmt --check and clippy -D warnings"
	@echo "make fmt           format the code"
	@echo "make bench         end-to-end benchmark against GNU tail (see README)"
	@echo "make soak          10-minute soak: rotation, restarts, kill -9 (SOAK_SECONDS=...)"
	@echo "make install       install binary, systemd unit and config (PREFIX, DESTDIR)"
	@echo "make verify-deploy check the systemd unit, manifests and shipped configs"
	@echo "make install-deps  rustfmt and clippy components"
	@echo "make clean         remove build output and demo state"

build:
	$(CARGO) build --release --locked
	@mkdir -p bin
	cp target/release/logaggregator $(BIN)

test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

install-deps:
	rustup component add rustfmt clippy

# The demo writes a few lines into ./demo/logs so that a fresh checkout has something to tail.
run: build
	@mkdir -p demo/logs
	@[ -s demo/logs/app.log ] || printf '%s\n' "demo: logaggregator started tailing" "demo: append lines to demo/logs/app.log and watch them appear" > demo/logs/app.log
	@echo "tailing demo/logs/*.log; append with: echo hello >> demo/logs/app.log   (Ctrl-C stops)" >&2
	$(BIN) --config config.yaml.example

bench: build
	python3 bench/bench.py --bin $(BIN)

# Rotation every second, graceful restarts and one kill -9 for SOAK_SECONDS (default 600).
SOAK_SECONDS ?= 600
soak: build
	python3 bench/soak.py --bin $(BIN) --duration $(SOAK_SECONDS)

clean:
	$(CARGO) clean
	rm -rf bin data demo

# --- deployment (deploy/, Dockerfile) ---------------------------------------------------
.PHONY: install verify-deploy
UNITDIR ?= /etc/systemd/system
CONFDIR ?= /etc/logaggregator

# make build && sudo make install [PREFIX=/usr/local] [DESTDIR=]
# Installs the binary to $(PREFIX)/bin, the systemd unit to $(UNITDIR) (ExecStart pointed at
# $(PREFIX)/bin) and deploy/systemd/config.yaml as $(CONFDIR)/config.yaml; an existing
# config.yaml is never overwritten (the new one goes beside it as config.yaml.example).
# Does not build (so that `sudo make install` runs no cargo as root) and runs no systemctl.
install:
	@test -x $(BIN) || { echo "$(BIN) is missing: run 'make build' first" >&2; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR)
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/logaggregator
	sed 's#^ExecStart=/usr/local/bin/logaggregator #ExecStart=$(PREFIX)/bin/logaggregator #' \
		deploy/systemd/logaggregator.service > $(DESTDIR)$(UNITDIR)/logaggregator.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/logaggregator.service.tmp
	mv $(DESTDIR)$(UNITDIR)/logaggregator.service.tmp $(DESTDIR)$(UNITDIR)/logaggregator.service
	@if [ -e $(DESTDIR)$(CONFDIR)/config.yaml ]; then \
		echo "install: keeping $(DESTDIR)$(CONFDIR)/config.yaml; new example at $(DESTDIR)$(CONFDIR)/config.yaml.example"; \
		install -m 0644 deploy/systemd/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml.example; \
	else \
		install -m 0644 deploy/systemd/config.yaml $(DESTDIR)$(CONFDIR)/config.yaml; \
	fi
	@[ -n "$(DESTDIR)" ] || echo "next: systemctl daemon-reload && systemctl enable --now logaggregator"

# Builds the release binary (honours CARGO_TARGET_DIR; bin/ is left alone) and checks
# deploy/ against it: systemd-analyze verify of the unit, --check of every shipped config
# (also the ConfigMap's), the Kubernetes manifests parsed and cross-checked, make install
# into a temporary DESTDIR. Needs systemd-analyze (Debian: systemd) and python3 with PyYAML.
VERIFY_BIN ?= $(or $(CARGO_TARGET_DIR),target)/release/logaggregator
verify-deploy:
	$(CARGO) build --release --locked
	MAKE="$(MAKE)" deploy/verify.sh $(VERIFY_BIN)
