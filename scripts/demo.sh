#!/usr/bin/env bash
# Sets everything up, then records the bundled demo build (make -j2 of a
# small C program) into demo.ttl and prints its summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
make -s -C demo clean
.venv/bin/batchflow record -o demo.ttl -- make -C demo -j2
echo "demo: wrote $PWD/demo.ttl"
