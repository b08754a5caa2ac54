# The two commands of the README. Both install what is missing first (scripts/deps.sh).
#   make run    build and start the standalone server with the chat demo on 127.0.0.1:8080
#               (Prometheus metrics on http://127.0.0.1:9464/metrics)
#   make test   build with sanitizers and run every test; ends with the runner's summary line
# Also: make build, make conformance (the whole WebSocket conformance run), make bench,
#       make scale (100,000 idle WebSocket sessions over ferry --workers, docs/scaling.md),
#       make bench-tls, make lab (every hostile-network scenario at full length ->
#       docs/hostile-networks.md), make transport-lab (examples/transport-lab on
#       127.0.0.1:8090), make chat-server (the chat served by the C examples/chat-server),
#       make screenshots (the examples' README screenshots and docs/img/admin.png), make fuzz, make clean.

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PORT ?= 8080
RUN_DIR := build
TEST_DIR := build-test

.PHONY: all build run test chaos deps-build deps-run deps-test test-build conformance fuzz clean bench \
	bench-tls lab transport-lab chat-server screenshots scale

all: build

# The build needs node_modules too: CMake bundles client-js with esbuild (FERRY_WITH_CLIENT_JS).
deps-build:
	@FERRY_NPM=1 scripts/deps.sh build

# make run: the chat also loads socket.io-client's browser bundle from node_modules.
deps-run:
	@FERRY_NPM=1 scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

$(RUN_DIR)/CMakeCache.txt:
	cmake -S . -B $(RUN_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFERRY_BUILD_TESTS=OFF

build: deps-build $(RUN_DIR)/CMakeCache.txt
	cmake -S . -B $(RUN_DIR) > /dev/null
	cmake --build $(RUN_DIR) -j $(JOBS)

# The standalone server with the chat demo; it prints where to open it.
run: deps-run build
	@exec $(RUN_DIR)/tools/ferry/ferry --host 127.0.0.1 --port $(PORT) --static examples/chat \
	  --allow-publish message,typing --metrics-listen 127.0.0.1:9464

# The chat of examples/chat served by the C program examples/chat-server (the relay's protocol
# written on ferry's Socket.IO API) instead of tools/ferry.
chat-server: deps-run build
	@exec $(RUN_DIR)/examples/chat-server/ferry-chat-server --port $(PORT) --static examples/chat

$(TEST_DIR)/CMakeCache.txt:
	cmake -S . -B $(TEST_DIR) -DCMAKE_BUILD_TYPE=Debug -DFERRY_ASAN=ON -DFERRY_UBSAN=ON \
	  -DFERRY_BUILD_TESTS=ON -DFERRY_WERROR=ON

# Configure again every time (cheap): new examples/*, tools/* and tests/* folders are found
# by globs that only run at configure time.
test-build: deps-test $(TEST_DIR)/CMakeCache.txt
	cmake -S . -B $(TEST_DIR) > /dev/null
	cmake --build $(TEST_DIR) -j $(JOBS)

test: test-build
	@FERRY_BUILD_DIR=$(TEST_DIR) tests/run.sh

conformance: test-build
	@FERRY_BUILD_DIR=$(TEST_DIR) FERRY_CONFORMANCE_FULL=1 node tests/conformance/run.mjs

# ferry's client through every hostile network of tests/lab/harness.mjs (ferry-proxy faults,
# nginx setups, combinations), in Chromium and Node, LAB_SECONDS each; writes the generated
# table to docs/hostile-networks.md (with socket.io-client through the same networks, for
# comparison) and fails if ferry's client lost, duplicated or reordered any message.
LAB_SECONDS ?= 16.5
lab: test-build
	@FERRY_BUILD_DIR=$(TEST_DIR) node tests/lab/lab.mjs --seconds $(LAB_SECONDS) --compare

# The transport lab (examples/transport-lab): the same stream over each transport side by side,
# with the server's byte counts; prints the address to open. LAB_PORT=0 picks a free port.
LAB_PORT ?= 8090
transport-lab: deps-run build
	@exec node examples/transport-lab/lab.mjs --build $(RUN_DIR) --port $(LAB_PORT)

# The long chaos run (issue 14; make test runs short ones): ferry-proxy cuts at random (seeded)
# while CHAOS_COUNT numbered messages go each way per client: ferry's client in Node on each
# transport and switching, socket.io-client on polling and WebSocket (until the server took
# CHAOS_COUNT of its messages; its echoes come back through recovery) (tests/e2e/chaos.mjs), and
# at the same time ferry's browser client in headless Chromium on each transport and switching
# (tests/browser/chaos-browser.mjs). Both runs are bounded by CHAOS_SECONDS of sending (plus
# 30 s for stragglers) and fail if a client did not get its count through. The Node run's lines
# go to $(TEST_DIR)/chaos-node.log and are printed after the browser run's. CHAOS_SEED=N
# replays a seed (default: random, printed).
CHAOS_COUNT ?= 10000
CHAOS_SECONDS ?= 960
CHAOS_SEED ?=
chaos: test-build
	@seed=$(CHAOS_SEED); seed=$${seed:-$$(od -An -N3 -tu4 /dev/urandom | tr -d ' ')}; log=$(TEST_DIR)/chaos-node.log; \
	  echo "make chaos: seed $$seed, $(CHAOS_COUNT) each way per client, Node and Chromium runs at once (at most $(CHAOS_SECONDS) s of sending each)"; \
	  FERRY_BUILD_DIR=$(TEST_DIR) node tests/e2e/chaos.mjs --count $(CHAOS_COUNT) --seconds $(CHAOS_SECONDS) --seed $$seed > $$log 2>&1 & pid=$$!; \
	  FERRY_BUILD_DIR=$(TEST_DIR) node tests/browser/chaos-browser.mjs --count $(CHAOS_COUNT) --seconds $(CHAOS_SECONDS) --seed $$seed; b=$$?; \
	  wait $$pid; n=$$?; cat $$log; \
	  echo "make chaos: Node run $$([ $$n = 0 ] && echo passed || echo FAILED), browser run $$([ $$b = 0 ] && echo passed || echo FAILED) (seed $$seed)"; \
	  [ $$n = 0 ] && [ $$b = 0 ]

# The examples' README screenshots (examples/*/screenshot.png), taken by their browser tests in
# headless Chromium once each test has checked what the page shows.
SCREENSHOT_TESTS := tests/browser/transport-lab.test.mjs tests/browser/chat.test.mjs \
  tests/browser/chat-server.test.mjs tests/browser/admin.test.mjs
screenshots: test-build
	@FERRY_BUILD_DIR=$(TEST_DIR) FERRY_SCREENSHOTS=1 node --test --test-concurrency=1 \
	  $(SCREENSHOT_TESTS)

# libFuzzer targets (clang, ASan/UBSan) over a copy of each committed seed corpus, FUZZ_SECONDS
# each (with tests/fuzz/<target>.dict when there is one); new inputs stay in build-fuzz/corpus/,
# crashes are written to build-fuzz/.
FUZZ_SECONDS ?= 60
fuzz: deps-test
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DFERRY_FUZZ=ON \
	  -DFERRY_ASAN=ON -DFERRY_UBSAN=ON -DFERRY_BUILD_TESTS=OFF -DFERRY_BUILD_EXAMPLES=OFF
	cmake --build build-fuzz -j $(JOBS)
	@for t in build-fuzz/tests/fuzz/fuzz_*; do n=$${t##*/fuzz_}; mkdir -p build-fuzz/corpus/$$n; \
	  cp -n tests/fuzz/corpus/$$n/* build-fuzz/corpus/$$n/; \
	  d=; [ -f tests/fuzz/$$n.dict ] && d=-dict=../tests/fuzz/$$n.dict; \
	  (cd build-fuzz && ../$$t corpus/$$n $$d -max_total_time=$(FUZZ_SECONDS) -max_len=8192) || exit 1; done

# ferry against Node's socket.io, alternating, on every transport both offer (tools/ferry-bench):
# writes docs/performance.md and docs/performance.svg; BENCH_FLAGS=--quick for a quick check.
bench: deps-run build
	@node tools/ferry-bench/make-bench.mjs --build $(RUN_DIR) $(BENCH_FLAGS)

# The scale run of docs/scaling.md (issue 18): SCALE_SESSIONS idle WebSocket sessions over
# `ferry --workers` through a private redis-server, heartbeats, then broadcasts to all of them;
# niced and bounded, a few minutes. Not part of make test. SCALE_FLAGS: see tools/scale/scale.mjs.
SCALE_SESSIONS ?= 100000
scale: deps-run build
	@command -v redis-server >/dev/null || { echo "make scale needs redis-server (scripts/deps.sh test)"; exit 1; }
	@node tools/scale/scale.mjs --build $(RUN_DIR) --sessions $(SCALE_SESSIONS) $(SCALE_FLAGS)

# What TLS costs (wss against ws, examples/ws-echo): the TLS section of docs/performance.md.
bench-tls: deps-run build
	@node tools/tls-cost/tls-cost.mjs --build $(RUN_DIR) --write docs/performance.md

clean:
	rm -rf $(RUN_DIR) $(TEST_DIR)
