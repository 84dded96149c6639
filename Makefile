# logaggregator: build, test, lint and run. `make help` lists the targets.
CARGO   ?= cargo
PREFIX  ?= /usr/local
DESTDIR ?=
BIN     := bin/logaggregator

.PHONY: help build test lint fmt run install-deps clean bench

help:
	@echo "make build         release binary at $(BIN)"
	@echo "make run           build and run on config.yaml.example (demo logs under ./demo/logs)"
	@echo "make test          unit and end-to-end tests"
	@echo "make lint          rustfmt --check and clippy -D warnings"
	@echo "make fmt           format the code"
	@echo "make bench         end-to-end benchmark against GNU tail (see README)"
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

clean:
	$(CARGO) clean
	rm -rf bin data demo
