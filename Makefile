# logaggregator: build, test, lint and run. `make help` lists the targets.
CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
BIN     := bin/logaggregator

.PHONY: help build test lint fmt run install-deps clean bench soak

help:
	@echo "make build         release binary at $(BIN)"
	@echo "make run           build and run on config.yaml.example (demo logs under ./demo/logs);"
	@echo "                   stdout carries only events (make run | jq), the rest goes to stderr"
	@echo "make test          unit and end-to-end tests"
	@echo "make lint          rustfmt --check and clippy -D warnings"
	@echo "make fmt           format the code"
	@echo "make bench         end-to-end benchmark against GNU tail (see README)"
	@echo "make soak          10-minute soak: rotation, restarts, kill -9 (SOAK_SECONDS=...)"
	@echo "make install       install binary, systemd unit, config, logrotate stanza (PREFIX, DESTDIR)"
	@echo "make verify-deploy check the systemd unit, manifests and shipped configs"
	@echo "make install-deps  rustfmt and clippy components"
	@echo "make clean         remove build output and demo state"

# Where cargo puts the release binary (honours CARGO_TARGET_DIR).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)

# build and run print their command lines, and cargo its progress, on stderr: stdout is left
# to the agent's events, so that `make run | jq` works.
build:
	@echo '$(CARGO) build --release --locked' >&2
	@$(CARGO) build --release --locked >&2
	@mkdir -p $(dir $(BIN))
	@echo 'cp $(TARGET_DIR)/release/logaggregator $(BIN)' >&2
	@cp $(TARGET_DIR)/release/logaggregator $(BIN)

test:
	$(CARGO) test --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

install-deps:
	rustup component add rustfmt clippy

# The demo runs in RUN_DIR (default: here): it writes a few lines into RUN_DIR/demo/logs (or
# $LOGAGGREGATOR_DEMO_DIR) so that a fresh checkout has something to tail, and keeps its
# checkpoints in RUN_DIR/data. Only the agent's events go to stdout (see build).
RUN_DIR ?= .
run: build
	@cd '$(RUN_DIR)' && demo="$${LOGAGGREGATOR_DEMO_DIR:-demo/logs}" && mkdir -p "$$demo" && \
	{ [ -s "$$demo/app.log" ] || printf '%s\n' "demo: logaggregator started tailing" "demo: append lines to $$demo/app.log and watch them appear" > "$$demo/app.log"; } && \
	echo "tailing $$demo/*.log; append with: echo hello >> $$demo/app.log   (Ctrl-C stops)" >&2
	@echo '$(BIN) --config config.yaml.example' >&2
	@cd '$(RUN_DIR)' && exec '$(abspath $(BIN))' --config '$(abspath config.yaml.example)'

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
LOGROTATEDIR ?= /etc/logrotate.d

# make build && sudo make install [PREFIX=/usr/local] [DESTDIR=]
# Installs the binary to $(PREFIX)/bin, the systemd unit to $(UNITDIR) (ExecStart pointed at
# $(PREFIX)/bin), deploy/systemd/config.yaml as $(CONFDIR)/config.yaml and the logrotate
# stanza for the file output, deploy/logrotate/logaggregator, into $(LOGROTATEDIR). An
# existing config.yaml is never overwritten (the new one goes beside it as
# config.yaml.example); neither is an existing logrotate stanza (logrotate would read a copy
# beside it too).
# Does not build (so that `sudo make install` runs no cargo as root) and runs no systemctl.
install:
	@test -x $(BIN) || { echo "$(BIN) is missing: run 'make build' first" >&2; exit 1; }
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(CONFDIR) $(DESTDIR)$(LOGROTATEDIR)
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
	@if [ -e $(DESTDIR)$(LOGROTATEDIR)/logaggregator ]; then \
		cmp -s deploy/logrotate/logaggregator $(DESTDIR)$(LOGROTATEDIR)/logaggregator || \
		echo "install: keeping $(DESTDIR)$(LOGROTATEDIR)/logaggregator; the shipped one is deploy/logrotate/logaggregator"; \
	else \
		install -m 0644 deploy/logrotate/logaggregator $(DESTDIR)$(LOGROTATEDIR)/logaggregator; \
	fi
	@[ -n "$(DESTDIR)" ] || echo "next: systemctl daemon-reload && systemctl enable --now logaggregator"

# Builds the release binary (honours CARGO_TARGET_DIR; bin/ is left alone) and checks
# deploy/ against it: systemd-analyze verify of the unit, --check of every shipped config
# (also the ConfigMap's), the Kubernetes manifests parsed and cross-checked, make install
# into a temporary DESTDIR, `logrotate -d` of the logrotate stanza (when logrotate is
# installed), and `make run` (in a temporary RUN_DIR) printing nothing but events on stdout.
# Needs systemd-analyze (Debian: systemd) and python3 with PyYAML.
VERIFY_BIN ?= $(TARGET_DIR)/release/logaggregator
verify-deploy:
	$(CARGO) build --release --locked
	MAKE="$(MAKE)" deploy/verify.sh $(VERIFY_BIN)
