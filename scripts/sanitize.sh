#!/usr/bin/env bash
# Runs the extension's tests with the C extension built under AddressSanitizer
# and UBSan (ext/_build.py's BATCHFLOW_SANITIZE switch), in a scratch copy of
# the checkout so the normal build is left alone.  Python itself is not
# sanitized, so the runtime is preloaded; leak checking is left to valgrind
# (tests/test_filter_memory.py), since CPython keeps memory until exit.
#   scripts/sanitize.sh [PYTEST ARGS]   (default: the filter, control and capture tests)
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
[ -x .venv/bin/python ] || bash scripts/setup.sh
WORK=$(mktemp -d /tmp/batchflow-san.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
git ls-files -co --exclude-standard -z | grep -zv '^agent/_ext' | xargs -0 cp -P --parents -t "$WORK"
cd "$WORK"
BATCHFLOW_SANITIZE=1 "$TOP/.venv/bin/python" ext/_build.py >build.log 2>&1 || { cat build.log; exit 1; }
so=$(ls agent/_ext*.so)
nm -D "$so" | grep __asan_ >/dev/null || { echo "sanitize: $so is not instrumented" >&2; exit 1; }
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# pytest puts the checkout first on sys.path (pytest.ini): make sure that
# is the instrumented module, not the editable install's.
loaded=$("$TOP/.venv/bin/python" -c 'import sys; sys.path.insert(0, "."); import agent._ext as e; print(e.__file__)')
case "$loaded" in "$WORK"/*) ;; *) echo "sanitize: would load $loaded, not the sanitized build" >&2; exit 1;; esac
[ $# -gt 0 ] || set -- tests/test_filter_equivalence.py tests/test_control_server.py \
	tests/test_control_messages.py tests/test_capture.py tests/test_control_record.py
echo "sanitize: running under ASan+UBSan: $*"
"$TOP/.venv/bin/python" -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$WORK/pytest.log"
status=${PIPESTATUS[0]}
if grep -qE "runtime error|AddressSanitizer" "$WORK/pytest.log"; then
	echo "sanitize: the sanitizers reported errors" >&2
	exit 1
fi
exit "$status"
