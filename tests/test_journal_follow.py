"""Following a journal as the agent writes it (agent/capture/journal_format.py),
and the agent's side of it (agent/daemon/recordings.py): the client gets every
batch, in order, whether it reads it from the journal or, when the journal
could not take it, from the socket."""
import errno
import os
import socket

import pytest
from hypothesis import given, settings, strategies as st

from agent.capture import journal as journal_module
from agent.capture.journal import JournalWriter, read_journal
from agent.capture.journal_format import JournalFollower
from agent.daemon import protocol, recordings
from agent.daemon.recordings import Recording
from agent.events import decode_batch, encode_batch
from agent.graph.synthetic import make_run, stream_job

EVENTS = list(stream_job(600))


def batches_of(cuts):
    """The events cut into batches at the given (sorted, distinct) indices."""
    edges = [0, *cuts, len(EVENTS)]
    return [encode_batch(EVENTS[a:b]) for a, b in zip(edges, edges[1:]) if b > a]


@settings(max_examples=80, deadline=None)
@given(cuts=st.lists(st.integers(1, len(EVENTS) - 1), unique=True, max_size=25).map(sorted),
       updates=st.sets(st.integers(0, 25)), announce=st.sets(st.integers(0, 25)),
       chunk=st.sampled_from([16, 100, 1000, 5000, 1 << 22]))
def test_the_follower_reads_every_record_in_order(tmp_path_factory, cuts, updates, announce,
                                                  chunk):
    """Batches and run updates appended, offsets announced after some of them
    (each an object's end, as the agent announces), read in chunks of any
    size (objects larger than a chunk included): what the follower yields up
    to each offset is exactly the records appended before it, and each piece
    is whole records."""
    path = tmp_path_factory.mktemp("follow") / "j"
    run = make_run(root_pid=100, cwd=b"/w")
    writer = JournalWriter(path, run)
    fd = os.open(path, os.O_RDONLY)
    try:
        follower = JournalFollower(fd)
        batches = batches_of(cuts)
        pieces, written = [], []
        for i, batch in enumerate(batches):
            if i in updates:
                writer.update(run)
            assert writer.append(batch)
            written.append(batch)
            if i in announce:
                pieces.extend(follower.records_to(writer.bytes, chunk))
                assert b"".join(pieces) == b"".join(written)
        writer.close(run)
        pieces.extend(follower.records_to(writer.bytes, chunk))  # the trailer is skipped too
        assert b"".join(pieces) == b"".join(written) and follower.pos == writer.bytes
        assert [ev for piece in pieces for ev in decode_batch(piece)] == EVENTS
    finally:
        os.close(fd)


@pytest.mark.parametrize("announce_bytes", [1, 1 << 30])
def test_a_batch_the_journal_could_not_take_comes_through_the_socket(tmp_path, monkeypatch,
                                                                      announce_bytes):
    """The agent's journal on a full disk for some batches: those are sent
    whole in their place, the others as the journal's length (after each
    batch, or only before the next other message); a client reading both
    (as AgentRecording does) gets every batch in order, and the journal says
    which ones it lacks."""
    monkeypatch.setattr(recordings, "ANNOUNCE_BYTES", announce_bytes)
    batches = batches_of(list(range(50, len(EVENTS), 50)))
    refuse = {2, 3, 7}                         # the batches a full disk refuses
    real_writev, calls = os.writev, []

    def writev(fd, parts):
        calls.append(len(parts))
        if len(parts) == 2 and len(calls) - 1 in refuse:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_writev(fd, parts)

    path = str(tmp_path / "j")
    run = make_run(root_pid=100, cwd=b"/w")
    journal = JournalWriter(path, run)
    calls.clear()
    monkeypatch.setattr(journal_module.os, "writev", writev)
    agent_end, client_end = socket.socketpair()
    rec = Recording("r1", 1, 0, os.getpid(), run, journal, agent_end, 64 << 20)
    try:
        rec.start_following(protocol.message(protocol.STARTED, id="r1"),
                            os.open(path, os.O_RDONLY))
        for batch in batches:
            rec.deliver(batch)
        rec.queue(protocol.message(protocol.ENDED))
        rec.close_queue()

        started, fd = protocol.recv_with_fd(client_end)
        assert started["op"] == protocol.STARTED and fd is not None
        follower, got, through_socket, offsets = JournalFollower(fd), [], 0, 0
        while True:
            msg = protocol.recv(client_end)
            if type(msg) is int:
                offsets += 1
                got.extend(follower.records_to(msg))
            elif isinstance(msg, bytes):
                got.append(msg)
                through_socket += 1
            else:
                assert msg["op"] == protocol.ENDED
                break
        os.close(fd)
        rec.join_sender(5)
        assert b"".join(got) == b"".join(batches)
        assert through_socket == len(refuse)
        if announce_bytes > 1:
            # told only before a bin or the end, once per run of journaled batches
            runs = sum(1 for i in range(len(batches))
                       if i not in refuse and (i + 1 in refuse or i + 1 == len(batches)))
            assert offsets == runs == 3
        else:
            # told after each journaled batch (the sender may merge lengths
            # queued back to back, so at most that many)
            assert 1 <= offsets <= len(batches) - len(refuse)
        assert journal.lost_batches == len(refuse)
    finally:
        agent_end.close()
        client_end.close()
    monkeypatch.undo()
    journal.close(run)
    kept = read_journal(path)
    assert kept.batches == len(batches) - len(refuse)


def test_a_client_that_does_not_follow_gets_the_batches(tmp_path):
    """A client that did not ask to follow (an older one) is sent every batch."""
    run = make_run(root_pid=100, cwd=b"/w")
    journal = JournalWriter(str(tmp_path / "j"), run)
    agent_end, client_end = socket.socketpair()
    rec = Recording("r1", 1, 0, os.getpid(), run, journal, agent_end, 64 << 20)
    try:
        batches = batches_of([100, 200, 300])
        for batch in batches:
            rec.deliver(batch)
        rec.close_queue()
        rec.join_sender(5)
        agent_end.shutdown(socket.SHUT_WR)
        got = []
        while True:
            try:
                got.append(protocol.recv(client_end))
            except EOFError:
                break
        assert b"".join(got) == b"".join(batches)
    finally:
        agent_end.close()
        client_end.close()
        journal.close(run)
