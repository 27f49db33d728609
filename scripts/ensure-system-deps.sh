#!/usr/bin/env bash
# System packages the test suites need (none yet beyond Node 20 and pnpm). Browser tests add Chromium here.
set -euo pipefail
exit 0
