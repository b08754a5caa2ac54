#!/usr/bin/env bash
# Runs every test suite of ferry against the sanitizer build in $FERRY_BUILD_DIR and ends with
# one summary line. A suite that fails does not stop the others; the exit status is 0 only when
# every test of every suite passed.
#   suites: unit (ctest), interop (node --test), python (official python-socketio client),
#           client (client-js unit tests: fake transports and timers, bundle size),
#           browser (headless Chromium), e2e (nginx, hostile proxy),
#           conformance (WebSocket conformance client against examples/ws-echo, trimmed sizes;
#           `make conformance` runs the sizes whole)
#   FERRY_SUITES="unit interop" runs only those.
set -uo pipefail
cd "$(dirname "$0")/.."
export FERRY_BUILD_DIR="${FERRY_BUILD_DIR:-build-test}"
export FERRY_ROOT="$PWD"
# Leaks fail the run: servers are stopped with SIGTERM and must exit 0 under LeakSanitizer.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
suites="${FERRY_SUITES:-unit client interop python browser e2e conformance}"
log_dir="$FERRY_BUILD_DIR/test-logs"
mkdir -p "$log_dir"

total_pass=0; total_fail=0; parts=()

record() { # name pass fail
  total_pass=$((total_pass + $2)); total_fail=$((total_fail + $3))
  parts+=("$1 $2/$(($2 + $3))")
}

# node --test prints "# pass N" and "# fail N" at the end.
node_counts() { # logfile
  local p f
  p=$(grep -E '^# pass [0-9]+' "$1" | tail -1 | awk '{print $3}')
  f=$(grep -E '^# fail [0-9]+' "$1" | tail -1 | awk '{print $3}')
  echo "${p:-0} ${f:-1}"
}

# What a failed (not todo) top-level test said: its error message, without the stack, at most
# 40 lines each, so that a CI run that keeps only this output still says what went wrong.
failure_details() { # logfile
  awk '
    /^not ok / && !/# TODO/ { on = 1; st = 0; n = 0; print "   -- " $0; next }
    on && /^  \.\.\.$/ { on = 0; next }
    on && /^  stack:/ { st = 1; next }
    on && st && /^  [a-z]/ { st = 0 }
    on && (st || /^    at /) { next }
    on && /^  (duration_ms|type|location|failureType|---)/ { next }
    on && n < 40 { print "   " $0; n++ }
  ' "$1"
}

# The reliability runs' counts (issue 14: the chaos tables of tests/e2e/chaos.test.mjs and
# tests/browser/chaos.test.mjs, the slow-consumer tables of tests/e2e/backpressure-chaos.test.mjs,
# the one-line counts of the backpressure, heartbeat and paced-producer tests), which their tests
# print with console.log (TAP "# " lines), shown in the output and not only in the log; at most 40
# lines per table.
count_tables() { # logfile
  awk '
    /^# (chaos|slow chaos)[ :(]/ { on = 1; n = 0 }
    on && (!/^# / || /^# Subtest/) { on = 0 }
    on && n < 40 { print "   " substr($0, 3); n++; next }
    /^# # ((websocket|polling|sse) )?(close|drop-volatile|latest|spill|paced-producer)[ :]/ { print "   " substr($0, 5) }
  ' "$1"
}

run_node_suite() { # name dir
  local files
  files=$(find "$2" -name '*.test.mjs' 2>/dev/null | sort)
  [ -n "$files" ] || return 0
  echo "== $1"
  # Bounded: a test file that hangs fails after 10 minutes (hostile-networks.test.mjs needs 6 on a
  # busy 2-core machine), and a suite that still does not end (a file whose servers keep it alive)
  # is stopped after FERRY_SUITE_TIMEOUT seconds, so that a hang is a failure with a log rather
  # than a run that never ends.
  timeout --kill-after=30 "${FERRY_SUITE_TIMEOUT:-900}" \
    node --test --test-concurrency=2 --test-timeout=600000 --test-reporter=tap $files > "$log_dir/$1.log" 2>&1
  local rc=$?
  [ $rc -eq 124 ] && echo "   $1: stopped after ${FERRY_SUITE_TIMEOUT:-900} s (a hang; see the log)"
  read -r p f < <(node_counts "$log_dir/$1.log")
  [ $rc -ne 0 ] && [ "$f" = 0 ] && f=1
  grep -E '^not ok|^# (pass|fail)' "$log_dir/$1.log" | sed 's/^/   /'
  count_tables "$log_dir/$1.log"
  [ "$f" != 0 ] && failure_details "$log_dir/$1.log"
  [ "$f" != 0 ] && echo "   (log: $log_dir/$1.log)"
  record "$1" "$p" "$f"
}

for s in $suites; do
  case $s in
  unit)
    echo "== unit (ctest)"
    (cd "$FERRY_BUILD_DIR" && ctest -j 2 --output-on-failure --timeout 60) > "$log_dir/unit.log" 2>&1
    line=$(grep -E 'tests passed, [0-9]+ tests failed out of [0-9]+' "$log_dir/unit.log" | tail -1)
    echo "   $line"
    fail=$(echo "$line" | sed -E 's/.* ([0-9]+) tests failed.*/\1/'); all=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
    [ -n "$line" ] || { fail=1; all=1; }
    grep -E '\*\*\*Failed|\(Failed\)|\(Timeout\)|Exception' "$log_dir/unit.log" | sed 's/^/   /' | head -20
    record unit $((all - fail)) "$fail"
    ;;
  interop) run_node_suite interop tests/interop ;;
  client) run_node_suite client tests/client ;;
  browser) run_node_suite browser tests/browser ;;
  e2e) run_node_suite e2e tests/e2e ;;
  conformance)
    bin="$FERRY_BUILD_DIR/examples/ws-echo/ferry-ws-echo"
    [ -x "$bin" ] || [ ! -x "$FERRY_BUILD_DIR/examples/ws-echo/ws-echo" ] || bin="$FERRY_BUILD_DIR/examples/ws-echo/ws-echo"
    if [ ! -x "$bin" ]; then echo "== conformance: skipped ($bin is not built)"; continue; fi
    echo "== conformance (WebSocket echo, deflate off and on)"
    node tests/conformance/run.mjs > "$log_dir/conformance.log" 2>&1
    rc=$?
    line=$(grep -E '^conformance: [0-9]+ passed, [0-9]+ failed' "$log_dir/conformance.log" | tail -1)
    p=$(echo "$line" | sed -E 's/^conformance: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed$/\1/')
    [ -n "$line" ] || { p=0; f=1; }
    [ $rc -ne 0 ] && [ "$f" = 0 ] && f=1
    grep -E '^(FAIL|XPASS) ' "$log_dir/conformance.log" | head -30 | cut -c1-200 | sed 's/^/   /'
    echo "   ${line:-no summary line}"
    [ "$f" != 0 ] && echo "   (log: $log_dir/conformance.log)"
    record conformance "$p" "$f"
    ;;
  python)
    files=$(find tests/interop/python -name 'test_*.py' 2>/dev/null | sort)
    [ -n "$files" ] || continue
    echo "== python (python3-socketio)"
    # Debian's interpreter: the packaged client lives there, not in a pyenv one.
    /usr/bin/python3 -m unittest -v $files > "$log_dir/python.log" 2>&1
    rc=$?
    ran=$(grep -E '^Ran [0-9]+ test' "$log_dir/python.log" | awk '{print $2}')
    bad=$(grep -E '^FAILED \(' "$log_dir/python.log" | grep -oE '(failures|errors)=[0-9]+' | awk -F= '{s+=$2} END {print s+0}')
    ran=${ran:-0}; bad=${bad:-0}; [ $rc -ne 0 ] && [ "$bad" = 0 ] && bad=1
    grep -E '(FAIL|ERROR):' "$log_dir/python.log" | sed 's/^/   /'
    echo "   ran $ran, failed $bad"
    record python $((ran - bad)) "$bad"
    ;;
  esac
done

echo
echo "ferry test summary: $total_pass passed, $total_fail failed ($(IFS=','; echo "${parts[*]}" | sed 's/,/, /g'))"
[ "$total_fail" = 0 ]
