# arrival: `make demo` to see it, `make test` to check it.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:

CARGO ?= cargo
ADDR  ?= 127.0.0.1:12000
NAMES ?= Alice Bob
# Where cargo puts what it builds, asked of cargo itself, so CARGO_TARGET_DIR and
# build.target-dir (in any cargo config) are honoured.
TARGET_DIR := $(or $(shell $(CARGO) metadata --format-version 1 --no-deps 2>/dev/null | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p'),target)
BIN   := $(TARGET_DIR)/release

.PHONY: build run-server run-clients demo quiz test bench bench-echo compare attack cluster-test dist dist-check

## Cargo shows its progress: the first build takes about a minute.
build:
	@echo "building arrival (release)..." >&2
	$(CARGO) build --release

## Run the assignment's server on $(ADDR) (one round, then exit).
run-server: build
	$(BIN)/arrival-server --addr $(ADDR)

## Start clients X and Y against a running server, names from $(NAMES); each output line is
## prefixed with the client's name. The first name connects first and so becomes X.
run-clients: build
	@set -- $(NAMES)
	$(BIN)/arrival-client --addr $(ADDR) --name "$$1" 2>&1 | sed -u "s/^/[$$1] /" &
	# Give the first client a head start so it is labelled X; the labels are the server's to
	# choose, and the prefixes stay right whichever way it goes.
	sleep 0.3
	$(BIN)/arrival-client --addr $(ADDR) --name "$$2" 2>&1 | sed -u "s/^/[$$2] /" &
	wait

## One command: build, start a server on a free port and two clients, show every line, stop.
## The labels are fixed (the second client starts only once the server has labelled the first);
## the order of the messages is not: both clients send at once, so either may arrive first.
demo: build
	@dir=$$(mktemp -d)
	trap 'kill $$(jobs -p) 2>/dev/null || true; rm -rf "$$dir"' EXIT
	set -- $(NAMES)
	mkfifo "$$dir/server"
	timeout 60 $(BIN)/arrival-server --addr 127.0.0.1:0 > "$$dir/server" &
	server=$$!
	exec 3< "$$dir/server"
	read -r line <&3; echo "[server] $$line"
	addr=$${line##* }
	# Process substitution keeps $$! the client's own pid, so `wait` sees its exit status.
	timeout 60 $(BIN)/arrival-client --addr "$$addr" --name "$$1" > >(sed -u "s/^/[$$1] /") 2>&1 &
	first=$$!
	read -r line <&3; echo "[server] $$line"
	timeout 60 $(BIN)/arrival-client --addr "$$addr" --name "$$2" > >(sed -u "s/^/[$$2] /") 2>&1 &
	second=$$!
	while read -r line <&3; do echo "[server] $$line"; done
	wait $$server; wait $$first; wait $$second
	echo "demo: server and both clients exited 0"

## A quiz night: a server on every interface of this machine, kept running, ranking by
## reaction time. It prints the link (and, at a terminal, a QR code) for the players' phones and
## the host's link; Ctrl-C ends it.
QUIZ_ADDR ?= 0.0.0.0:12000
quiz: build
	$(BIN)/arrival-server --addr $(QUIZ_ADDR) --rounds 0 --order reaction

## Benchmarks (not tests): the figures in docs/performance.md. Each mode starts its own server on a free port.
## About three minutes with the default BENCH_SECS.
BENCH_SECS ?= 30s
bench: build
	$(BIN)/arrival-bench --spawn-server rounds -c 1 -d $(BENCH_SECS)
	$(BIN)/arrival-bench --spawn-server rounds -c 64 -d $(BENCH_SECS)
	$(BIN)/arrival-bench --spawn-server rounds -c 1024 -d $(BENCH_SECS)
	$(BIN)/arrival-bench --spawn-server idle -c 19900
	$(BIN)/arrival-bench --spawn-server fairness -t 1000 --gaps 1000,100,50,20,10,5,2,1
	$(MAKE) --no-print-directory bench-echo

## Echo: arrival-server --mode echo against a Python uvloop echo server, same client, same run.
## Installs uvloop (from PyPI) into the target directory's bench-venv the first time.
ECHO_ARGS ?= -c 10 -s 32 -d 10s
bench-echo: build
	@venv=$(TARGET_DIR)/bench-venv
	test -x $$venv/bin/python || python3 -m venv $$venv
	$$venv/bin/python -c 'import uvloop' 2>/dev/null || $$venv/bin/pip install -q uvloop
	# No indented lines: make strips leading white space from recipe lines.
	cat > $(TARGET_DIR)/uvloop_echo.py <<'PY'
	import asyncio, uvloop
	class Echo(asyncio.Protocol): pass
	Echo.connection_made = lambda self, transport: setattr(self, "transport", transport)
	Echo.data_received = lambda self, data: self.transport.write(data)
	async def serve(): server = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0); print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True); await server.serve_forever()
	uvloop.run(serve())
	PY
	dir=$$(mktemp -d); mkfifo "$$dir/uv"
	$$venv/bin/python $(TARGET_DIR)/uvloop_echo.py > "$$dir/uv" & uv=$$!
	trap 'kill $$uv 2>/dev/null || true; rm -rf "$$dir"' EXIT
	read -r line < "$$dir/uv"
	echo "== Python uvloop echo server"
	$(BIN)/arrival-bench --addr $${line##* } --server-pid $$uv echo $(ECHO_ARGS)
	echo "== arrival-server --mode echo"
	$(BIN)/arrival-bench --spawn-server echo $(ECHO_ARGS)

## arrival-server against the floor (examples/floor_rounds.rs, examples/floor_echo.rs: one
## thread, level-triggered epoll, no runtime), alternated three times with the same client
## (arrival-bench): server CPU per round, rounds/s and echo msgs/s, and the ratios. About a minute.
COMPARE_SECS ?= 4s
compare: build
	@$(CARGO) build --release --examples --quiet
	ex=$(TARGET_DIR)/release/examples
	dir=$$(mktemp -d); trap 'kill $$(jobs -p) 2>/dev/null || true; rm -rf "$$dir"' EXIT
	# Starts a server; sets pid and addr from its "listening on" line.
	start() { "$$@" > "$$dir/out" 2>/dev/null & pid=$$!; for _ in $$(seq 100); do grep -q 'listening on' "$$dir/out" && break; sleep 0.05; done; addr=$$(grep -o 'listening on [^ ]*' "$$dir/out" | head -1 | sed 's/listening on //'); }
	# One measurement against a server: bench mode and its options, then the server's command.
	measure() { local mode=$$1 opts=$$2; shift 2; start "$$@"; $(BIN)/arrival-bench $$mode --addr "$$addr" --server-pid "$$pid" $$opts -d $(COMPARE_SECS) --json 2>/dev/null; kill "$$pid"; wait "$$pid" 2>/dev/null || true; }
	field() { python3 -c "import json,sys; print(json.load(sys.stdin).get('$$1') or 0)"; }
	# Server CPU per echoed message, microseconds.
	per_msg() { python3 -c "import json,sys; r=json.load(sys.stdin); print(1e6*r['server']['cpu_seconds']/max(r['messages'],1))"; }
	for i in 1 2 3; do
	fr=$$(measure rounds "-c 64" $$ex/floor_rounds); ar=$$(measure rounds "-c 64" $(BIN)/arrival-server --addr 127.0.0.1:0 --rounds 0 --quiet)
	fe=$$(measure echo "-c 10 -s 32" $$ex/floor_echo); ae=$$(measure echo "-c 10 -s 32" $(BIN)/arrival-server --addr 127.0.0.1:0 --mode echo)
	fc=$$(field server_cpu_us_per_round <<<"$$fr"); ac=$$(field server_cpu_us_per_round <<<"$$ar")
	frs=$$(field rounds_per_s <<<"$$fr"); ars=$$(field rounds_per_s <<<"$$ar")
	fes=$$(field messages_per_s <<<"$$fe"); aes=$$(field messages_per_s <<<"$$ae")
	fem=$$(per_msg <<<"$$fe"); aem=$$(per_msg <<<"$$ae")
	awk -v i=$$i -v fc=$$fc -v ac=$$ac -v fr=$$frs -v ar=$$ars -v fe=$$fes -v ae=$$aes -v fm=$$fem -v am=$$aem 'BEGIN { printf "run %d: rounds c=64: server CPU per round floor %.1f us, arrival %.1f us (%.2fx); rounds/s floor %.0f, arrival %.0f (%.2fx) | echo 10x32B: server CPU per message floor %.2f us, arrival %.2f us (%.2fx); msgs/s floor %.0f, arrival %.0f\n", i, fc, ac, ac/fc, fr, ar, ar/fr, fm, am, am/fm, fe, ae }'
	done

## The attack tests with their long variants, in release mode, with their figures: 2,000
## Hello-then-close clients, 100,000 abandoned rooms (RSS before and after), a 900-player
## session, the four griefers. About two minutes.
attack:
	$(CARGO) test --release --test attacks -- --include-ignored --nocapture --test-threads 1 2>&1 | grep -E '^(test |[0-9].*:|server exited|test result)'
	$(CARGO) test --release --test quiz room_of -- --include-ignored --nocapture 2>&1 | grep -E '^(test |[0-9].*:|test result)'

## arrival behind HAProxy (deploy/haproxy.cfg): installs HAProxy if it is missing (as root,
## from Debian), starts instances and the balancer on loopback ports, runs the checks and prints
## their figures, stops everything. A few minutes.
cluster-test:
	@command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy; } >&2
	$(CARGO) test --release --test cluster -- --include-ignored --nocapture --test-threads 1 2>&1 | grep -vE '^(running|$$)'

## What CI runs: formatting, lints as errors, every test.
test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --quiet -- -D warnings
	$(CARGO) test

## arrival as one file each for a machine without Rust: dist/arrival-server and
## dist/arrival-client, statically linked (glibc's static library, from Debian's libc6-dev).
## Addresses given as IP addresses need nothing at run time but /dev/urandom; host names need
## the machine's own glibc name-service libraries. About two minutes.
HOST_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
dist:
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release --bins --target $(HOST_TRIPLE)
	mkdir -p dist
	cp $(TARGET_DIR)/$(HOST_TRIPLE)/release/arrival-server $(TARGET_DIR)/$(HOST_TRIPLE)/release/arrival-client dist/
	@echo "dist/arrival-server and dist/arrival-client: $$(file -b dist/arrival-server | cut -d, -f1-4)" >&2

## The dist binaries on a bare system: a chroot holding nothing but them and /dev's random
## and null devices plays the assignment's round and a quiz, and serves the player page. As root.
dist-check: dist
	@root=$$(mktemp -d); trap 'kill $$(jobs -p) 2>/dev/null || true; rm -rf "$$root"' EXIT
	cp dist/arrival-server dist/arrival-client "$$root/"
	mkdir "$$root/dev"; mknod -m 444 "$$root/dev/random" c 1 8; mknod -m 444 "$$root/dev/urandom" c 1 9; mknod -m 666 "$$root/dev/null" c 1 3
	echo "dist-check: in a chroot with $$(ls "$$root" | tr '\n' ' ')"
	mkfifo "$$root/out"
	timeout 30 chroot "$$root" /arrival-server --addr 127.0.0.1:0 > "$$root/out" &
	exec 3< "$$root/out"; read -r line <&3; addr=$${line##* }
	timeout 10 chroot "$$root" /arrival-client --addr "$$addr" --name Alice > /dev/null &
	sleep 0.3; timeout 10 chroot "$$root" /arrival-client --addr "$$addr" --name Bob > /dev/null
	while read -r line <&3; do echo "dist-check: $$line"; done
	rm "$$root/out"; mkfifo "$$root/out"
	timeout 30 chroot "$$root" /arrival-server --addr 127.0.0.1:0 --rounds 0 --session-rounds 1 --order reaction --session-pause 0.2 --go-jitter 0.1s..0.2s --web on --host-key dist-check-host-key-0 > "$$root/out" & server=$$!
	exec 3< "$$root/out"; read -r line <&3; addr=$${line##* }
	python3 -c "import urllib.request,sys; r=urllib.request.urlopen('http://$$addr/?room=quiz'); sys.exit(0 if r.status == 200 and b'arrival' in r.read() else 1)"
	echo "dist-check: the player page is served"
	for name in Ann Ben; do (sleep 2; echo) | timeout 20 chroot "$$root" /arrival-client --addr "$$addr" --stay --room quiz --name $$name > /dev/null & done
	while read -r line <&3; do case "$$line" in *over\ after*) echo "dist-check: $$line"; break;; esac; done
	kill $$server; wait $$server 2>/dev/null || true
