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

# The repository is reached at the same path as on the host; the venv's python
# is the project's own (Debian's bcc importable through system site packages).
"$python" -m pytest -p no:cacheprovider -o junit_family=xunit2 --junitxml="$out/junit.xml" -rs "$@"
echo $? >"$out/rc"
