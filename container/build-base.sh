#!/usr/bin/env bash
# Builds the agent image's base without any container registry: a Debian rootfs from Debian's own
# packages (mmdebstrap, using this machine's apt mirror) plus Node and npm from the npm registry,
# imported as a local image.
#
#   container/build-base.sh [--runtime docker|podman] [--suite trixie|bookworm] [--tag nanoclaw-base:<suite>]
#
# Env: DEBIAN_SUITE (default trixie, the current stable; bookworm when the mirror has no trixie);
# DEBIAN_MIRROR (e.g. http://deb.debian.org/debian) and DEBIAN_SECURITY_MIRROR override the
# mirrors found in /etc/apt/sources.list*; NODE_VERSION (default 24) and NPM_VERSION (default 11)
# pick the npm packages node-linux-<arch> and npm. Needs root (or mmdebstrap's unshare mode).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runtime="${CONTAINER_RUNTIME:-docker}"
suite="${DEBIAN_SUITE:-}"
tag="${BASE_TAG:-}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runtime) runtime="$2"; shift 2 ;;
    --suite) suite="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$runtime" in docker|podman) ;; *) echo "--runtime must be docker or podman" >&2; exit 2 ;; esac

for tool in mmdebstrap npm tar "$runtime"; do
  command -v "$tool" >/dev/null || { echo "build-base: '$tool' is missing (apt-get install mmdebstrap / $runtime, and Node with npm)" >&2; exit 1; }
done

started=$(date +%s)
step() { echo "==> [$(( $(date +%s) - started ))s] $*"; }

# The first apt source of this machine whose suites include the wanted one, in either the
# one-line (.list) or the deb822 (.sources) format.
find_mirror() {
  local wanted="$1" file
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "$file" ]] || continue
    awk -v s="$wanted" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == s) { print $i; exit } }' "$file"
  done
  for file in /etc/apt/sources.list.d/*.sources; do
    [[ -f "$file" ]] || continue
    awk -v s="$wanted" '
      /^[[:space:]]*$/ { if (uris != "" && found) { print uris; exit } uris = ""; found = 0; next }
      /^URIs:/ { uris = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) found = 1 }
      END { if (uris != "" && found) print uris }' "$file"
  done
}

arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
case "$arch" in amd64) node_arch=x64 ;; arm64) node_arch=arm64 ;; *) echo "unsupported architecture $arch" >&2; exit 1 ;; esac

# This machine's mirror lists its own suite only; the same archive serves the others.
mirror="${DEBIAN_MIRROR:-$( (find_mirror trixie; find_mirror bookworm) | head -n1)}"
security="${DEBIAN_SECURITY_MIRROR:-$( (find_mirror trixie-security; find_mirror bookworm-security) | head -n1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
has_suite() { curl -fsI --max-time 20 "$mirror/dists/$1/Release" >/dev/null 2>&1; }
if [[ -z "$suite" ]]; then
  suite=trixie
  has_suite trixie || { suite=bookworm; step "the mirror has no trixie; falling back to bookworm"; }
fi
tag="${tag:-nanoclaw-base:$suite}"
step "Debian $suite from $mirror${security:+, security: $security}"

cache="$here/.build/cache"
stage="$here/.build/base-stage"
mkdir -p "$cache"
rm -rf "$stage" && mkdir -p "$stage/usr/local/bin" "$stage/usr/local/lib/node_modules"

# Node and npm come as npm packages; the tarballs are cached between builds.
node_pkg="node-linux-${node_arch}@${NODE_VERSION:-24}"
npm_pkg="npm@${NPM_VERSION:-11}"
step "fetching $node_pkg and $npm_pkg from the npm registry"
node_tgz="$(cd "$cache" && npm pack --silent "$node_pkg" 2>/dev/null | tail -n1)"
npm_tgz="$(cd "$cache" && npm pack --silent "$npm_pkg" 2>/dev/null | tail -n1)"
tar -xzf "$cache/$node_tgz" -C "$stage" package/bin/node
mv "$stage/package/bin/node" "$stage/usr/local/bin/node" && rm -rf "$stage/package"
# Debug symbols are about 18 MB of the binary; a sandbox never needs them.
if command -v strip >/dev/null; then strip "$stage/usr/local/bin/node"; fi
mkdir -p "$stage/usr/local/lib/node_modules/npm"
tar -xzf "$cache/$npm_tgz" -C "$stage/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/usr/local/bin/npx"
step "node $("$stage/usr/local/bin/node" --version 2>/dev/null || echo "(not runnable here)"), npm $(tar -xzOf "$cache/$npm_tgz" package/package.json | sed -n 's/^ *"version": "\(.*\)",/\1/p' | head -n1)"

sources=("deb $mirror $suite main" "deb $mirror $suite-updates main")
[[ -n "$security" ]] && sources+=("deb $security $suite-security main")

# Documentation and translations are dropped here and, through the dpkg config written into the
# image, from every package installed later too.
# Progress goes to the terminal (stderr); the rootfs tarball streams into the image import.
step "mmdebstrap $suite (minbase) | $runtime import $tag — a few minutes"
mmdebstrap --variant=minbase --mode=auto \
  --include=ca-certificates \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --aptopt='Acquire::Languages "none"' \
  --customize-hook="cp -a '$stage'/. \"\$1\"/" \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  "$suite" - "${sources[@]}" \
  | "$runtime" import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'ENV LANG=C.UTF-8' \
      --change 'CMD ["bash"]' \
      - "$tag" >/dev/null

rm -rf "$stage"
step "built $tag ($("$runtime" image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
