#!/bin/sh
# find | xargs over a fixed tree ($1), several xargs batches.
find "$1" -name '*.txt' -print0 | sort -z | xargs -0 -n 2 wc -c > /dev/null
