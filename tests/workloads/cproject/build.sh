#!/bin/sh
# Builds from scratch every time, so two runs do the same work.
cd "$(dirname "$0")" || exit 1
make -s clean
make -s -j2
./counter "a 1 b 22" >/dev/null
make -s clean
