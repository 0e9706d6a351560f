#!/bin/sh
# A job `batchflow diff` compares with itself: every run makes a new temp
# directory, puts a date ($STAMP), an epoch ($EPOCH), its pid and an
# ephemeral port ($PORT) in names and argv.  Variables inject one change
# each: EXTRA_READ (reads /etc/hostname), MISSING (the file $1/input.txt is
# looked up but was removed by the test), WORD (echo's argument), CODE (a
# child's exit code), EXTRA_CHILD (one more child).  $1: a directory.
base=$1
d=$(mktemp -d -p "$base")
echo data > "$d/log-$STAMP.txt"
cat "$d/log-$STAMP.txt" > /dev/null
echo $$ > "$d/lock.$$"
echo "$EPOCH" > "$d/at.$EPOCH"
[ -e "$base/input.txt" ]
/bin/echo "${WORD:-hello}" "localhost:$PORT" > /dev/null
sh -c 'exit ${CODE:-0}'
if [ -n "$EXTRA_READ" ]; then read x < /etc/hostname; fi
if [ -n "$EXTRA_CHILD" ]; then /bin/true; fi
cat "$d/lock.$$" "$d/at.$EPOCH" > "$base/result.txt"
rm -r "$d"
exit 0
