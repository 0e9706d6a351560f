#!/usr/bin/env bash
# Sets up everything batchflow needs on Debian 12, as root. Idempotent: a
# second run changes nothing and takes seconds.
#   - Debian packages: bcc (python3-bpfcc), libbpf-dev, strace, a compiler
#   - kernel headers for bcc: linux-headers-$(uname -r), or the nearest
#     Debian has, linked where bcc looks for them
#   - tracefs mounted
#   - .venv (sees Debian's bcc), with batchflow and its C extension built
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
say() { echo "setup: $*"; }

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: must run as root (it installs packages and loads BPF)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
PKGS=(python3-bpfcc libbpf-dev strace python3-venv python3-dev gcc make libc6-dev
      kmod valgrind)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
updated=0
apt_update() { [ $updated = 1 ] || { apt-get update -qq; updated=1; }; }
if [ ${#missing[@]} -gt 0 ]; then
	say "installing ${missing[*]}"
	apt_update
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Kernel headers: bcc compiles against /lib/modules/$(uname -r)/build.
KREL=$(uname -r)
BUILD=/lib/modules/$KREL/build
if [ ! -e "$BUILD/include" ]; then
	apt_update
	if apt-get install -y -qq "linux-headers-$KREL" >/dev/null 2>&1; then
		say "installed linux-headers-$KREL"
	else
		arch=$(dpkg --print-architecture)
		apt-get install -y -qq "linux-headers-$arch" >/dev/null
		hdr=$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -n 1)
		common=${hdr%-$arch}-common
		[ -d "$hdr" ] && [ -d "$common" ] || { echo "setup: no kernel headers found" >&2; exit 1; }
		mkdir -p "/lib/modules/$KREL"
		ln -sfn "$hdr" "$BUILD"
		ln -sfn "$common" "/lib/modules/$KREL/source"
		say "no headers packaged for kernel $KREL; using Debian's $(basename "$hdr") (tracepoint programs only need their layout-stable parts)"
	fi
fi

if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
	mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || mount -t debugfs debugfs /sys/kernel/debug
fi

# The venv must see Debian's bcc, which is built for Debian's python3.
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import bcc" 2>/dev/null; then
	rm -rf .venv
	/usr/bin/python3 -m venv --system-site-packages .venv
	say "created .venv"
fi
stamp=.venv/.batchflow-installed
# The extension includes bpf/batchflow.h: a change there rebuilds it too.
sum=$(cat setup.py requirements-test.txt ext/*.c ext/*.h ext/_build.py bpf/batchflow.h | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ] || ! .venv/bin/python -c "import agent._ext" 2>/dev/null; then
	.venv/bin/python -m pip install -q --upgrade pip setuptools wheel cffi 2>&1 | grep -v "^WARNING: Location" || true
	.venv/bin/python -m pip install -q -e . -r requirements-test.txt 2>&1 | grep -v "^WARNING: Location" || true
	.venv/bin/python -c "import agent._ext, rdflib, msgpack, psutil" 
	echo "$sum" > "$stamp"
	say "installed batchflow into .venv"
fi
say "ready: $TOP/.venv/bin/batchflow"
