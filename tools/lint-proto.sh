#!/usr/bin/env bash
# The contract's checks (npm run lint:proto): buf's STANDARD lint rules with the reasoned
# exceptions in buf.yaml, then no breaking change against BUF_AGAINST (default: the main
# branch). On main itself that compares main with itself; on a branch it guards the contract.
set -euo pipefail
cd "$(dirname "$0")/.."
npx buf lint
against="${BUF_AGAINST:-.git#branch=main,subdir=proto}"
if [ -z "${BUF_AGAINST:-}" ] && ! git rev-parse -q --verify refs/heads/main >/dev/null; then
  echo "lint:proto: no main branch here to compare with; set BUF_AGAINST (e.g. .git#ref=HEAD~1,subdir=proto)" >&2
  exit 1
fi
npx buf breaking --against "$against"
