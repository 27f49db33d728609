#!/usr/bin/env bash
# Installs everything a fresh machine with Node 20 needs, then runs every check: lint, types, all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
export TURBO_TELEMETRY_DISABLED=1
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version)" != "12.21.0" ]; then
  npm i -g pnpm@12.21.0
fi
bash scripts/ensure-system-deps.sh
pnpm install --frozen-lockfile
find . -name .vitest-results.json -not -path '*/node_modules/*' -delete
status=0
pnpm lint || status=1
pnpm turbo run typecheck --continue || status=1
# --continue: every package's tests run even when one fails; two at a time on the 2-core CI machine
pnpm turbo run test --continue --concurrency=2 -- --reporter=default --reporter=json --outputFile=.vitest-results.json || status=1
node scripts/test-summary.mjs || status=1
exit $status
