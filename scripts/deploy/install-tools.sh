#!/usr/bin/env bash
# Installs the OS tools the deploy suite needs (buildah, debootstrap, iproute2) and extracts helm
# into the shared cache. Idempotent: a second run does nothing but check. Called by .ci/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ip >/dev/null || need+=(iproute2)
# buildah needs newuidmap only when rootless; we run as root, but containers-common pulls sane defaults.
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-tools: need root to apt-get install ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # A stale list makes install fail with 404s; refresh it once per run that installs anything.
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

node "$here/helm.mjs" --print-path >/dev/null
echo "install-tools: buildah $(buildah --version | awk '{print $3}'), debootstrap $(dpkg-query -W -f='${Version}' debootstrap), helm $(node "$here/helm.mjs" version --short)"
