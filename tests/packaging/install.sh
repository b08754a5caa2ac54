#!/usr/bin/env bash
# install.sh SOURCE_DIR WORK_DIR: cmake --install ferry into WORK_DIR/prefix from a plain Debug
# build (no sanitizers, no tests or examples), then build examples/echo out of the tree with
# `pkg-config --static` (libferry.a, and everything it needs from ferry.pc) and with CMake's
# find_package(ferry) (and a third time against libferry.so through plain pkg-config), run each
# and check that it answers an Engine.IO handshake, then stops on SIGTERM with status 0. The
# prefix is not the configured one (/usr/local), so ferry.pc and ferryConfig.cmake must find
# their files from where they lie.
set -euo pipefail
src=$(cd "$1" && pwd)
work=$2
rm -rf "$work"
mkdir -p "$work"
log="$work/log"
step() { echo "== $*"; }
fail() { echo "FAIL: $*"; echo "--- last lines of $log"; tail -30 "$log"; exit 1; }

step "build and install ferry into $work/prefix"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DFERRY_BUILD_TESTS=OFF \
  -DFERRY_BUILD_EXAMPLES=OFF >> "$log" 2>&1 || fail "configure"
cmake --build "$work/build" -j2 >> "$log" 2>&1 || fail "build"
cmake --install "$work/build" --prefix "$work/prefix" >> "$log" 2>&1 || fail "install"
pc=$(find "$work/prefix" -name ferry.pc | head -1)
[ -n "$pc" ] || fail "no ferry.pc installed"
[ -n "$(find "$work/prefix" -name ferryConfig.cmake)" ] || fail "no ferryConfig.cmake installed"

# Serve one handshake: start the binary on a free port, read the port from its first line,
# GET the Engine.IO handshake, then SIGTERM it and expect status 0.
serve_check() { # binary name
  local bin=$1 name=$2 out="$work/$2.out" port="" pid status body
  "$bin" --port 0 > "$out" 2>> "$log" &
  pid=$!
  for _ in $(seq 1 200); do # 20 s at most
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out" | head -1)
    [ -n "$port" ] && break
    kill -0 "$pid" 2> /dev/null || break
    sleep 0.1
  done
  [ -n "$port" ] || { kill "$pid" 2> /dev/null; fail "$name did not start"; }
  body=$(curl -s --max-time 10 "http://127.0.0.1:$port/engine.io/?EIO=4&transport=polling") || true
  kill -TERM "$pid"
  status=0
  wait "$pid" || status=$?
  case "$body" in
  '0{"sid":"'*) ;;
  *) fail "$name answered the handshake with: ${body:0:200}" ;;
  esac
  [ "$status" = 0 ] || fail "$name exited with $status after SIGTERM"
  echo "   $name: handshake answered (${body:0:40}...), exit 0"
}

step "examples/echo with pkg-config --static"
export PKG_CONFIG_PATH="$(dirname "$pc")"
cflags=$(pkg-config --cflags ferry) || fail "pkg-config --cflags ferry"
libs=$(pkg-config --static --libs ferry) || fail "pkg-config --static --libs ferry"
echo "   cflags: $cflags" && echo "   libs:   $libs"
case "$cflags" in *"$work/prefix/"*) ;; *) fail "ferry.pc does not point into the prefix" ;; esac
# libferry.a, not libferry.so: the static link is what needs every private library.
libs_static=${libs/-lferry/-l:libferry.a}
# shellcheck disable=SC2086
cc -o "$work/echo-pkgconfig" "$src/examples/echo/echo.c" $cflags $libs_static >> "$log" 2>&1 ||
  fail "linking examples/echo against libferry.a with pkg-config --static"
# ldd's output is read whole before grep looks at it: `ldd | grep -q` under pipefail fails
# whenever grep's early exit makes ldd die of SIGPIPE (seen under load).
deps=$(ldd "$work/echo-pkgconfig")
case "$deps" in *libferry*) fail "echo-pkgconfig links libferry.so" ;; esac
serve_check "$work/echo-pkgconfig" echo-pkgconfig

step "examples/echo with pkg-config, against libferry.so"
[ "$(pkg-config --modversion ferry)" = "$(sed -n 's/^project(ferry VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")" ] ||
  fail "pkg-config --modversion ferry is not the project's version"
# shellcheck disable=SC2086
cc -o "$work/echo-shared" "$src/examples/echo/echo.c" $cflags $(pkg-config --libs ferry) \
  >> "$log" 2>&1 || fail "linking examples/echo against libferry.so with pkg-config"
deps=$(LD_LIBRARY_PATH="$(pkg-config --variable=libdir ferry)" ldd "$work/echo-shared")
case "$deps" in *"libferry.so.0 => $work/prefix"*) ;; *) fail "echo-shared does not load the installed libferry.so.0: $deps" ;; esac
LD_LIBRARY_PATH="$(pkg-config --variable=libdir ferry)" serve_check "$work/echo-shared" echo-shared

step "examples/echo with CMake find_package(ferry)"
cmake -S "$src/examples/echo" -B "$work/echo-cmake" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Debug >> "$log" 2>&1 || fail "configure examples/echo with find_package(ferry)"
cmake --build "$work/echo-cmake" -j2 >> "$log" 2>&1 || fail "build examples/echo with find_package(ferry)"
serve_check "$work/echo-cmake/ferry-echo" echo-find_package

echo "packaging: ok"
