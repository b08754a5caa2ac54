#!/usr/bin/env bash
# Install what ferry needs and is missing: Debian packages through apt (when root, or through
# sudo without a password), npm packages from the committed package-lock.json.
#   scripts/deps.sh build   what `make run` needs
#   scripts/deps.sh test    what `make test` needs as well
set -euo pipefail
cd "$(dirname "$0")/.."

build_pkgs=(cmake make gcc pkg-config libuv1-dev libssl-dev libcjson-dev node-llhttp zlib1g-dev
            libhiredis-dev)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev curl python3 python3-socketio python3-engineio
           python3-websockets python3-requests python3-websocket python3-aiohttp chromium
           nginx-light redis-server openssl libnss3-tools
           python3-prometheus-client)

want=("${build_pkgs[@]}")
[ "${1:-build}" = test ] && want+=("${test_pkgs[@]}")
command -v node >/dev/null && command -v npm >/dev/null || want+=(nodejs npm)

missing=()
for p in "${want[@]}"; do
  # nginx-light and nginx both give /usr/sbin/nginx: either one will do.
  if [ "$p" = nginx-light ] && command -v nginx >/dev/null; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO=sudo; else
    echo "deps: not root: run  sudo apt-get install ${missing[*]}" >&2; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages: only from the lock file; reinstalled when the lock changed.
# The installed lock is recognised by its checksum, not by file times: a fresh checkout (or a
# git worktree) has a newer package-lock.json with the same content. A node_modules that is a
# link into another checkout is never reinstalled through the link (npm ci would empty it).
if [ "${1:-build}" = test ] || [ -n "${FERRY_NPM:-}" ]; then
  lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -f node_modules/.package-lock.json ] || [ "$(cat node_modules/.ferry-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
    if [ -L node_modules ]; then
      echo "deps: node_modules links elsewhere and is not from this package-lock.json: run npm ci where it points" >&2
    else
      echo "deps: npm ci"
      npm ci --no-audit --no-fund --loglevel=error
      echo "$lock_sum" > node_modules/.ferry-lock-sum
    fi
  fi
fi
