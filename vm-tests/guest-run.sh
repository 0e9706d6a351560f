#!/bin/sh
# Runs inside the VM that vm-tests/run boots (and natively for the host line):
#   guest-run.sh OUT PYTHON PYTEST_ARG...
# OUT is a directory shared read-write with the host. The guest's root is the
# host's, read-only, with the repository as a guest-only writable overlay, so
# nothing here changes the host. The host learns everything through OUT:
#   booted   uname -r and seconds since boot when this script started
#   log      everything this script and pytest print
#   junit.xml pytest's results
#   rc       pytest's exit status (absent: the guest died or timed out)
set -u
out=$1 python=$2
shift 2
exec >"$out/log" 2>&1
echo "$(uname -r) $(cut -d' ' -f1 /proc/uptime)" >"$out/booted"
echo "vm-tests: kernel $(uname -r), $(nproc) cpus, $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo)"

# virtme-ng mounts these itself; a bare init may not.
[ -e /sys/kernel/tracing/events ] || mount -t tracefs tracefs /sys/kernel/tracing
[ -e /sys/kernel/debug/tracing ] || mount -t debugfs debugfs /sys/kernel/debug

# /lib/modules/$(uname -r) is a link into the unpacked kernel packages, whose build/
# and source/ point at that kernel's own headers. Say so if they are unusable: bcc
# would otherwise fail in every test with a less obvious message.
build=/lib/modules/$(uname -r)/build
if [ ! -d "$build/include" ]; then
    echo "vm-tests: no kernel headers at $build"
fi
echo "vm-tests: headers $(readlink -f "$build")"

# virtme-ng's root is 9p without caching: every stat, open and page of a mapped
# library is a round trip to the host, and bcc's compile reads hundreds of headers.
# vm-tests/run exports the host's root a second time (tag batchflow_root); mounted
# with cache=loose it is served from the guest's page cache after the first read.
# The tests then run in a chroot of it that keeps the guest's writable places.
fast=/run/batchflow-root
fast_root() {
    grep -qx batchflow_root /sys/bus/virtio/drivers/9pnet_virtio/*/mount_tag 2>/dev/null || return 2
    repo=$PWD
    mods=$(readlink -f /lib/modules)
    mkdir -p "$fast" /run/batchflow-repo/upper /run/batchflow-repo/work || return 1
    mount -t 9p -o trans=virtio,version=9p2000.L,cache=loose,msize=512000,ro batchflow_root "$fast" \
        || return 1
    for d in /proc /sys /dev /tmp; do mount --rbind "$d" "$fast$d" || return 1; done
    mount -t tmpfs run "$fast/run" &&
    mount -t tmpfs vartmp "$fast/var/tmp" &&
    mount --bind "$mods" "$fast$mods" || return 1
    # The repository stays writable in the guest only, as on the plain root. Under a
    # directory bound above (a checkout in /tmp), virtme-ng's own overlay of it is
    # already there, and another overlay on top would exceed overlayfs' stacking depth.
    mountpoint -q "$fast$repo" && return 0
    mount -t overlay -o "lowerdir=$fast$repo,upperdir=/run/batchflow-repo/upper,workdir=/run/batchflow-repo/work" \
        batchflow-repo "$fast$repo" || return 1
}

# The repository is reached at the same path as on the host; the venv's python
# is the project's own (Debian's bcc importable through system site packages).
set -- "$python" -m pytest -p no:cacheprovider -o junit_family=xunit2 --junitxml="$out/junit.xml" -rs "$@"
if [ -n "${VM_TESTS_PLAIN_ROOT:-}" ]; then
    "$@"
elif fast_root; then
    echo "vm-tests: tests run in the cached (9p cache=loose) view of the host root"
    chroot "$fast" /bin/sh -c 'cd "$0" && exec "$@"' "$PWD" "$@"
elif [ $? = 1 ]; then
    echo "vm-tests: could not set up the cached root; tests run on the plain 9p root"
    "$@"
else
    "$@"   # natively, or no second export
fi
echo $? >"$out/rc"
