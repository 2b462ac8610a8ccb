#!/usr/bin/env bash
# Builds the agent-runner on this machine (npm ci, then the contract copied from src/contract and
# tsc in container/agent-runner). The bwrap runtime binds that directory read-only at /app and uses
# the host's /usr, so it runs the host build rather than the image's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/agent-runner"
started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started ))s] $*"; }

# Optional dependencies carry the SDK's native claude binary: never omit them.
if [[ ! -d node_modules/@anthropic-ai/claude-agent-sdk ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  step "npm ci (container/agent-runner)"
  npm ci --include=optional --no-audit --no-fund
fi
step "tsc"
rm -rf dist
npm run -s build
step "agent-runner built in $(pwd)/dist"
