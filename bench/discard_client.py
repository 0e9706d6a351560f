#!/usr/bin/env python3
"""A recording through the agent whose client drops every batch unread
(no Turtle, no sampling): bench_agent's --stages runs it to tell the agent's
and the kernel side's share of a job's slow-down from the record client's.

    python bench/discard_client.py SOCKET -- COMMAND [ARGS...]

Exits with the command's status; prints `journal J bytes sent B lost L` on
stderr (J: the journal's length the agent last announced; B: batches sent
whole, when the journal could not take them)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.capture.procfs import HeldChild, status_to_exit  # noqa: E402
from agent.daemon import protocol  # noqa: E402
from agent.daemon.client import AgentConnection  # noqa: E402


def main(argv):
    sock, sep, command = argv[0], argv[1], argv[2:]
    if sep != "--" or not command:
        sys.exit("usage: discard_client.py SOCKET -- COMMAND [ARGS...]")
    conn = AgentConnection(sock)
    held = HeldChild(command)
    # follow_journal, as `batchflow record` asks: the agent does what it does
    # for the real client (journal, then an offset now and then, no batch sent)
    reply, fd = conn.request(protocol.message(protocol.RECORD, scope="command", pid=held.pid,
                                              command=command, cwd=os.getcwdb(),
                                              start_ns=held.start_ns,
                                              start_pipe=list(held.pipe), follow_journal=True),
                             with_fd=True)
    if fd is not None:
        os.close(fd)           # nothing is read from it
    if reply.get("op") != protocol.STARTED:
        held.abandon()
        sys.exit(f"discard_client: the agent answered {reply.get('op')!r}")
    held.release()
    _, status = os.waitpid(held.pid, 0)
    conn.send(protocol.message(protocol.END, exit_status=status_to_exit(status)))
    received = journal = 0
    while True:
        msg = conn.recv()
        if isinstance(msg, bytes):
            received += len(msg)
        elif type(msg) is int:
            journal = msg      # how far the agent's journal holds the records
        elif isinstance(msg, dict) and msg.get("op") == protocol.ENDED:
            break
    conn.close()
    lost = sum((msg["run"].get("losses") or {}).values())
    print(f"journal {journal} bytes sent {received} lost {lost}", file=sys.stderr)
    return status_to_exit(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
