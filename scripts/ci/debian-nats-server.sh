#!/usr/bin/env bash
# Fetches the nats-server binary of a Debian suite (trixie: 2.10.x, sid: the newest packaged) and
# prints its path, without installing it: the machine's own nats-server (bookworm's 2.9.10) stays
# the one the shared broker runs. Used by .ci/run to run the NATS-facing suites on 2.10+ too.
#
# Every download is checked the way apt checks it: the suite's InRelease against Debian's archive
# keyring (gpgv), the package index against InRelease's SHA256, the .deb against the index's.
# Cached by version under $ORDERFLOW_CACHE (or /var/cache/orderflow as root, ~/.cache/orderflow).
#
# Exit codes: 0 with the path printed; 75 when the archive cannot be reached (a network matter or
# a server error, which CI reports and skips); 1 for anything else (a bad signature or checksum,
# no such suite or package (404), a binary that does not run), which CI treats as a failure.
set -euo pipefail

suite="${1:?usage: debian-nats-server.sh <debian suite, e.g. trixie or sid>}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
arch="$(dpkg --print-architecture)"
if [[ -n "${ORDERFLOW_CACHE:-}" ]]; then cache="$ORDERFLOW_CACHE"
elif [[ $(id -u) -eq 0 ]]; then cache=/var/cache/orderflow
else cache="$HOME/.cache/orderflow"; fi

fail() { echo "debian-nats-server: $*" >&2; exit 1; }
unreachable() { echo "debian-nats-server: $*" >&2; exit 75; }
for tool in curl gpgv xz dpkg-deb sha256sum; do command -v "$tool" >/dev/null || fail "needs $tool"; done
[[ -r $keyring ]] || fail "needs Debian's archive keyring ($keyring, package debian-archive-keyring)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch <url> <file> <what>: a network failure or a server error is "unreachable" (75, skipped);
# a 404 is a wrong suite name or mirror path, which must fail rather than skip the suites.
fetch() {
  local code
  code="$(curl -sS --retry 3 -o "$2" -w '%{http_code}' "$1")" || unreachable "cannot fetch $3 from $mirror"
  case "$code" in
    2??) ;;
    404 | 410) fail "$3 is not at $1 (HTTP $code): is the suite name or DEBIAN_MIRROR right?" ;;
    *) unreachable "cannot fetch $3 from $mirror (HTTP $code)" ;;
  esac
}

fetch "$mirror/dists/$suite/InRelease" "$work/InRelease" "$suite's InRelease"
gpgv --quiet --keyring "$keyring" --output "$work/Release" "$work/InRelease" 2>/dev/null ||
  fail "$suite's InRelease does not carry a valid Debian archive signature"

index="main/binary-$arch/Packages.xz"
index_sha="$(awk -v f="$index" '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == f { print $1 }' "$work/Release")"
[[ -n $index_sha ]] || fail "$suite's Release lists no $index"
fetch "$mirror/dists/$suite/$index" "$work/Packages.xz" "$index"
echo "$index_sha  $work/Packages.xz" | sha256sum --check --quiet - || fail "$index does not match $suite's Release"

# The nats-server stanza: its version, file and checksum.
read -r version filename deb_sha < <(xz -dc "$work/Packages.xz" | awk '
  /^Package: / { p = ($2 == "nats-server") }
  p && /^Version: / { v = $2 } p && /^Filename: / { f = $2 } p && /^SHA256: / { s = $2 }
  p && /^$/ { print v, f, s; exit }
  END { if (p && v) print v, f, s }') || true
[[ -n ${filename:-} && -n ${deb_sha:-} ]] || fail "$suite has no nats-server package for $arch"

dest="$cache/nats-server/$suite-$version"
if [[ ! -x $dest/nats-server ]]; then
  fetch "$mirror/$filename" "$work/nats-server.deb" "$filename"
  echo "$deb_sha  $work/nats-server.deb" | sha256sum --check --quiet - || fail "$filename does not match $suite's index"
  dpkg-deb -x "$work/nats-server.deb" "$work/x"
  mkdir -p "$dest"
  # Into place with a rename: a run killed part way leaves no half-written binary in the cache.
  install -m 0755 "$work/x/usr/sbin/nats-server" "$dest/.nats-server.$$"
  mv -f "$dest/.nats-server.$$" "$dest/nats-server"
fi
if ! "$dest/nats-server" --version >/dev/null; then
  rm -rf "$dest" # fetched again next time
  fail "$dest/nats-server does not run here"
fi
echo "$dest/nats-server"
