#!/bin/sh
# A shell pipeline with subshells and command substitution.  $1: a work
# directory, created and removed, so two runs do the same work.
out=$1
mkdir "$out" || exit 1
(cd "$out" && printf 'b\na\nc\na\n' > in.txt)
sort "$out/in.txt" | uniq -c | (read n w; echo "$w" > "$out/first.txt")
(ls "$out" | wc -l) > "$out/count.txt"
x=$(cat "$out/first.txt")
[ -s "$out/count.txt" ] && echo "$x" | tr a-z A-Z > "$out/upper.txt"
grep -q A "$out/upper.txt"
status=$?
rm -r "$out"
exit $((status + 4))
