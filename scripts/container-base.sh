#!/usr/bin/env bash
# Makes the Dockerfile's base image from the Debian archive alone, for machines that reach no
# image registry: a minbase Debian root filesystem by debootstrap, imported as an image.
#
#   sudo bash scripts/container-base.sh              # → mtrobust-base:trixie in podman
#   MIRROR=http://mirror.internal/debian SECURITY=http://mirror.internal/debian-security \
#     ENGINE=docker sudo -E bash scripts/container-base.sh    # an air-gapped cluster's own mirror
#
# Needs root, debootstrap and podman (or docker: ENGINE=docker). About 200 MB, a minute.
set -euo pipefail

SUITE=${SUITE:-trixie}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${SECURITY:-http://deb.debian.org/debian-security}
TAG=${TAG:-mtrobust-base:$SUITE}
ENGINE=${ENGINE:-podman}

[ "$(id -u)" = 0 ] || { echo "container-base: debootstrap needs root" >&2; exit 2; }
for tool in debootstrap "$ENGINE"; do
  command -v "$tool" >/dev/null || { echo "container-base: $tool is not installed (apt-get install $tool)" >&2; exit 2; }
done
root=$(mktemp -d /var/tmp/mtrobust-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT

debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR"
# The image's apt sees the same mirror, with the suite's updates and security fixes.
cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
# Nothing of the bootstrap's downloads belongs in the image.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
tar -C "$root" --numeric-owner -c . | "$ENGINE" import --change 'CMD ["/bin/bash"]' - "$TAG"
echo "container-base: $TAG ($SUITE from $MIRROR)" >&2
