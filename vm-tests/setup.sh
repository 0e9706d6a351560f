#!/bin/sh
# Installs what vm-tests/run needs on the host, idempotently:
#   Debian: qemu-system-x86 (the VM), busybox-static (virtme-ng's initramfs, which loads
#           the virtio and 9p modules of a distribution kernel), kmod (depmod for unpacked kernels' modules),
#           dpkg (dpkg-deb), apt (downloads kernel packages)
#   PyPI:   virtme-ng, in its own venv under vm-tests/cache/ (pinned in requirements.txt)
# It does not touch the project's .venv: scripts/setup.sh owns that.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv="${VM_TESTS_CACHE:-$here/cache}/venv"

need_apt=
for pair in qemu-system-x86_64:qemu-system-x86 busybox:busybox-static depmod:kmod dpkg-deb:dpkg apt-get:apt; do
    cmd=${pair%%:*} pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 \
        || need_apt="$need_apt $pkg"
done
if [ -n "$need_apt" ]; then
    echo "vm-tests: installing$need_apt" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $need_apt >/dev/null
fi

stamp="$venv/.requirements"
if [ ! -x "$venv/bin/vng" ] || ! cmp -s "$here/requirements.txt" "$stamp"; then
    echo "vm-tests: installing virtme-ng into $venv" >&2
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    cp "$here/requirements.txt" "$stamp"
fi
