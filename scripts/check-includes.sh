#!/usr/bin/env bash
# The include graph between ferry's layers (docs/architecture.md), checked: every
# `#include "..."` line of lib/ and transports/ must follow an allowed edge, else this prints
# the file, the line and the edge, and fails. Registered with ctest (unit.include_graph), so
# `make test` keeps the graph true.
#
#   scripts/check-includes.sh [ROOT]    check the tree at ROOT (default: this repository)
#   scripts/check-includes.sh --self-test
#                                       check that wrong graphs fail (temporary trees)
#
# The rules, by folder of the including file (a folder may always include its own headers,
# and anything may include the public header "ferry.h"):
#   lib/common     -> nothing else
#   lib/http       -> common
#   lib/ws         -> http, common
#   lib/engine     -> http, common
#   transports     -> engine/transport.h only, ws, http, common
#   lib/adapter    -> common
#   lib/socket     -> engine/engine.h only, adapter, common
#   lib/server     -> engine/engine.h only, socket/sio.h only, adapter, ws, http, common
#                     (the composition root: it wires every layer, nothing includes it)
# Private headers: engine/internal.h only from lib/engine; socket/socket.h and
# socket/internal.h only from lib/socket (plus the exception below).
set -u

# Temporary exceptions, one "including-file -> included-header" a line. Each must name the
# issue that removes it; once its include is gone the check fails until the line is deleted.
EXCEPTIONS=(
)

# allowed <layer> <target-folder> <target-header>: 0 when the edge is allowed
allowed() {
    local from=$1 dir=$2 hdr=$3
    [ "$dir" = "$from" ] && return 0
    case "$from" in
    common) return 1 ;;
    http) [ "$dir" = common ] ;;
    ws) [ "$dir" = http ] || [ "$dir" = common ] ;;
    engine) [ "$dir" = http ] || [ "$dir" = common ] ;;
    transports)
        [ "$hdr" = engine/transport.h ] || [ "$dir" = ws ] || [ "$dir" = http ] ||
            [ "$dir" = common ] ;;
    adapter) [ "$dir" = common ] ;;
    socket) [ "$hdr" = engine/engine.h ] || [ "$dir" = adapter ] || [ "$dir" = common ] ;;
    server)
        [ "$hdr" = engine/engine.h ] || [ "$hdr" = socket/sio.h ] || [ "$dir" = adapter ] ||
            [ "$dir" = ws ] || [ "$dir" = http ] || [ "$dir" = common ] ;;
    *) return 1 ;;
    esac
}

check_tree() {
    local root=$1 bad=0 n=0 f rel from line lineno hdr dir k
    local -a used=()
    if [ ! -d "$root/lib" ] || [ ! -d "$root/transports" ]; then
        echo "check-includes: $root has no lib/ and transports/" >&2
        return 2
    fi
    # One line per include: "path:lineno:text" (grep reads the files, the loop only the hits).
    while IFS= read -r line; do
        f=${line%%:*}
        line=${line#*:}
        lineno=${line%%:*}
        line=${line#*:}
        rel=${f#"$root"/}
        case "$rel" in
        lib/*/*) from=${rel#lib/}; from=${from%%/*} ;;
        transports/*) from=transports ;;
        *) continue ;;
        esac
        [[ $line =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]] || continue
        hdr=${BASH_REMATCH[1]}
        n=$((n + 1))
        [ "$hdr" = ferry.h ] && continue
        if [[ $hdr != */* ]]; then
            echo "$rel:$lineno: includes \"$hdr\": name headers by their folder (\"layer/file.h\")"
            bad=1
            continue
        fi
        dir=${hdr%%/*}
        local known=0 x
        for x in common http ws engine transports adapter socket server; do
            [ "$dir" = "$x" ] && known=1
        done
        if [ $known = 0 ]; then
            echo "$rel:$lineno: includes \"$hdr\": no such layer ($dir)"
            bad=1
            continue
        fi
        local exc=0 k
        for k in "${!EXCEPTIONS[@]}"; do
            if [ "${EXCEPTIONS[$k]}" = "$rel -> $hdr" ]; then
                exc=1
                used[$k]=1
            fi
        done
        [ $exc = 1 ] && continue
        if [ "$hdr" = engine/internal.h ] && [ "$from" != engine ]; then
            echo "$rel:$lineno: edge $from -> $hdr: engine/internal.h is private to lib/engine" \
                "(use engine/engine.h or engine/transport.h)"
            bad=1
            continue
        fi
        if { [ "$hdr" = socket/socket.h ] || [ "$hdr" = socket/internal.h ]; } &&
            [ "$from" != socket ]; then
            echo "$rel:$lineno: edge $from -> $hdr: private to lib/socket (the root uses socket/sio.h)"
            bad=1
            continue
        fi
        if ! allowed "$from" "$dir" "$hdr"; then
            echo "$rel:$lineno: edge $from -> $hdr is not allowed (docs/architecture.md," \
                "the include graph)"
            bad=1
        fi
    done < <(find "$root/lib" "$root/transports" -type f \( -name '*.c' -o -name '*.h' \) -print0 |
        sort -z | xargs -0 grep -Hn -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' /dev/null)
    # An exception that no include needs any more is deleted, so that the graph cannot drift
    # back through it.
    for k in "${!EXCEPTIONS[@]}"; do
        if [ -z "${used[$k]:-}" ]; then
            echo "exception \"${EXCEPTIONS[$k]}\" matches no include any more: delete it from" \
                "EXCEPTIONS in scripts/check-includes.sh"
            bad=1
        fi
    done
    if [ $n = 0 ]; then
        echo "check-includes: no #include line found under $root: wrong root?" >&2
        return 2
    fi
    if [ $bad != 0 ]; then
        echo "check-includes: FAILED: the include graph of $root is broken (see above)" >&2
        return 1
    fi
    echo "check-includes: $n include lines follow the layer graph"
    return 0
}

self_test() {
    local here tmp rc fails=0
    here=$(cd "$(dirname "$0")/.." && pwd)
    tmp=$(mktemp -d) || return 2
    trap 'rm -rf "$tmp"' RETURN
    # expect_fail <name> <file> <include> <what the message must name>
    expect_fail() {
        local name=$1 file=$2 inc=$3 want=$4 out
        rm -rf "$tmp/t"
        mkdir -p "$tmp/t"
        cp -r "$here/lib" "$here/transports" "$tmp/t/"
        mkdir -p "$(dirname "$tmp/t/$file")"
        printf '#include "%s"\n' "$inc" >> "$tmp/t/$file"
        out=$(check_tree "$tmp/t" 2>&1)
        rc=$?
        if [ $rc != 1 ] || ! grep -qF -- "$want" <<<"$out"; then
            echo "self-test $name: expected a failure naming '$want', got rc=$rc:"
            echo "$out" | tail -5
            fails=1
        else
            echo "self-test $name: fails as it should ($(grep -F -- "$want" <<<"$out" | head -1))"
        fi
    }
    # The tree as it is passes (else every case below would pass for the wrong reason).
    mkdir -p "$tmp/ok"
    cp -r "$here/lib" "$here/transports" "$tmp/ok/"
    if ! check_tree "$tmp/ok" > /dev/null; then
        echo "self-test: the unmodified tree fails"
        fails=1
    fi
    expect_fail http-up lib/http/conn.c engine/engine.h "lib/http/conn.c:"
    expect_fail ws-engine lib/ws/frame.c engine/engine.h "edge ws -> engine/engine.h"
    expect_fail ws-server lib/ws/socket.h server/server.h "edge ws -> server/server.h"
    expect_fail transport-internal transports/sse.c engine/internal.h "edge transports -> engine/internal.h"
    expect_fail transport-engine-h transports/polling.c engine/engine.h "edge transports -> engine/engine.h"
    expect_fail socket-internal lib/socket/client.c engine/internal.h "edge socket -> engine/internal.h"
    expect_fail socket-server lib/socket/socket.c server/server.h "edge socket -> server/server.h"
    expect_fail engine-up lib/engine/engine.c socket/sio.h "edge engine -> socket/sio.h"
    expect_fail adapter-socket lib/adapter/local.c socket/internal.h "edge adapter -> socket/internal.h"
    expect_fail adapter-socket-h lib/adapter/adapter.h socket/socket.h "edge adapter -> socket/socket.h"
    expect_fail adapter-sio lib/adapter/local.c socket/sio.h "edge adapter -> socket/sio.h"
    expect_fail adapter-server lib/adapter/local.c server/server.h "edge adapter -> server/server.h"
    expect_fail common-up lib/common/buf.c http/http.h "edge common -> http/http.h"
    expect_fail root-engine-internal lib/server/server.c engine/internal.h "edge server -> engine/internal.h"
    expect_fail root-socket-private lib/server/ws_api.c socket/socket.h "edge server -> socket/socket.h"
    expect_fail root-transport lib/server/server.c engine/transport.h "edge server -> engine/transport.h"
    expect_fail unknown lib/engine/packet.c nowhere/x.h "no such layer"
    expect_fail unqualified lib/http/http.c conn.h "name headers by their folder"
    # A new file in a new layer folder is checked too: its layer has no rules yet.
    expect_fail new-layer lib/metrics/metrics.c common/buf.h "edge metrics -> common/buf.h"
    # A temporary exception whose include is gone must be deleted: drop the include from a copy.
    if [ ${#EXCEPTIONS[@]} -gt 0 ]; then
        local file=${EXCEPTIONS[0]%% -> *} inc=${EXCEPTIONS[0]#* -> } out
        rm -rf "$tmp/t"
        mkdir -p "$tmp/t"
        cp -r "$here/lib" "$here/transports" "$tmp/t/"
        grep -vF "#include \"$inc\"" "$here/$file" > "$tmp/t/$file"
        out=$(check_tree "$tmp/t" 2>&1)
        rc=$?
        if [ $rc != 1 ] || ! grep -qF "matches no include any more" <<<"$out"; then
            echo "self-test stale-exception: expected a failure, got rc=$rc:"
            echo "$out" | tail -5
            fails=1
        else
            echo "self-test stale-exception: fails as it should ($(grep -F "matches no" <<<"$out"))"
        fi
    fi
    if [ $fails != 0 ]; then
        echo "check-includes: self-test FAILED" >&2
        return 1
    fi
    echo "check-includes: self-test passed"
    return 0
}

if [ "${1:-}" = --self-test ]; then
    self_test
    exit $?
fi
check_tree "${1:-$(cd "$(dirname "$0")/.." && pwd)}"
exit $?
