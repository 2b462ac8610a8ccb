#!/usr/bin/env bash
# Builds the agent image from container/Dockerfile.
#
#   container/build.sh [--runtime docker|podman]
#
# Env: CONTAINER_IMAGE (default nanoclaw-agent:latest); BASE_IMAGE (default node:24-trixie-slim
# when it is present locally, else the offline base nanoclaw-base:trixie — or :bookworm where the
# mirror has no trixie — built by build-base.sh if missing); NANOCLAW_EXTRA_CA: a CA bundle the
# build must trust (default: $NODE_EXTRA_CA_CERTS).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runtime="${CONTAINER_RUNTIME:-docker}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runtime) runtime="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$runtime" in docker|podman) ;; *) echo "--runtime must be docker or podman" >&2; exit 2 ;; esac
command -v "$runtime" >/dev/null || { echo "build: '$runtime' is not installed" >&2; exit 1; }

image="${CONTAINER_IMAGE:-nanoclaw-agent:latest}"
started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started ))s] $*"; }

has_image() { "$runtime" image inspect "$1" >/dev/null 2>&1; }

local_base() { for tag in node:24-trixie-slim nanoclaw-base:trixie nanoclaw-base:bookworm; do has_image "$tag" && { echo "$tag"; return; }; done; }
base="${BASE_IMAGE:-$(local_base)}"
if [[ -z "$base" ]]; then
  # No registry needed: a Debian rootfs from apt plus Node from npm.
  step "node:24-trixie-slim is not available locally; building an offline base"
  "$here/build-base.sh" --runtime "$runtime"
  base="$(local_base)"
fi
step "base image: $base"

# The build fetches from apt and npm; behind a TLS-intercepting proxy it must trust the same CA
# as this machine. An empty file means "nothing extra".
mkdir -p "$here/.build"
extra_ca="${NANOCLAW_EXTRA_CA:-${NODE_EXTRA_CA_CERTS:-}}"
if [[ -n "$extra_ca" && -s "$extra_ca" ]]; then
  cp "$extra_ca" "$here/.build/extra-ca.crt"
  step "trusting extra CA bundle $extra_ca during the build"
else
  : >"$here/.build/extra-ca.crt"
fi

# The runner (with the host's IPC contract, src/contract) is compiled here and copied in.
"$here/build-runner.sh"
step "building $image"
if [[ "$runtime" == docker ]] && ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}" # the classic builder, without the buildx plugin
fi
"$runtime" build --network host --build-arg "BASE_IMAGE=$base" -t "$image" "$here"
size="$("$runtime" image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
step "built $image ($size)"
