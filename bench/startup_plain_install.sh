#!/bin/bash
# Start-up added by `batchflow record -- true` through a resident agent, for a
# plain (non-editable) wheel install in a fresh venv against this checkout's
# editable .venv, in one run; medians of 15, milliseconds, wall clock.
#
#     sudo bash bench/startup_plain_install.sh        # about two minutes
#
# The editable venv's interpreter runs site-packages' .pth hooks at every
# start; a plain install is what a user of the wheel gets.
set -euo pipefail
cd "$(dirname "$0")/.."
D=$(mktemp -d /tmp/bf-startup-XXXX)
trap 'kill $AP 2>/dev/null || true; rm -rf "$D"' EXIT
.venv/bin/pip wheel -q --no-deps --no-build-isolation -w "$D/wheel" . >/dev/null
python3 -m venv "$D/plain"
"$D/plain/bin/pip" install -q "$D"/wheel/batchflow*.whl >/dev/null
printf '[agent]\nstate_dir = "%s/state"\nallowed_group = ""\n' "$D" > "$D/agent.toml"
BATCHFLOW_AGENT= .venv/bin/python -m agent agent --config "$D/agent.toml" --socket "$D/a.sock" \
    > "$D/agent.log" 2>&1 &
AP=$!
for _ in $(seq 600); do grep -q serving "$D/agent.log" && break; sleep 0.1; done
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N); echo $(( (e - s) / 1000000 )); }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
for mode in untraced plain editable "python -c pass (plain)" "python -c pass (editable)"; do
    for _ in $(seq 15); do
        case $mode in
            untraced) ms /usr/bin/true ;;
            plain) ms "$D/plain/bin/batchflow" record --agent "$D/a.sock" -q -o "$D/p.ttl" -- true ;;
            editable) ms .venv/bin/batchflow record --agent "$D/a.sock" -q -o "$D/e.ttl" -- true ;;
            "python -c pass (plain)") ms "$D/plain/bin/python" -c pass ;;
            "python -c pass (editable)") ms .venv/bin/python -c pass ;;
        esac
    done | median | sed "s/^/$mode: /; s/$/ ms/"
done
