"""Following a journal as the agent writes it (agent/capture/journal_format.py),
and the agent's side of it (agent/daemon/recordings.py): the client gets every
batch, in order, whether it reads it from the journal or, when the journal
could not take it, from the socket."""
import errno
import os
import socket

from hypothesis import given, settings, strategies as st

from agent.capture import journal as journal_module
from agent.capture.journal import JournalWriter, read_journal
from agent.capture.journal_format import JournalFollower
from agent.daemon import protocol
from agent.daemon.recordings import Recording
from agent.events import encode_batch
from agent.graph.synthetic import make_run, stream_job

EVENTS = list(stream_job(600))


def batches_of(cuts):
    """The events cut into batches at the given (sorted, distinct) indices."""
    edges = [0, *cuts, len(EVENTS)]
    return [encode_batch(EVENTS[a:b]) for a, b in zip(edges, edges[1:]) if b > a]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(1, len(EVENTS) - 1), unique=True, max_size=25).map(sorted),
       updates=st.sets(st.integers(0, 25)), announce=st.sets(st.integers(0, 25)))
def test_the_follower_reads_every_batch_in_order(tmp_path_factory, cuts, updates, announce):
    """Batches and run updates appended, offsets announced after some of them
    (each an object's end, as the agent announces): what the follower yields,
    up to each offset, is exactly the batches appended before it."""
    path = tmp_path_factory.mktemp("follow") / "j"
    run = make_run(root_pid=100, cwd=b"/w")
    writer = JournalWriter(path, run)
    fd = os.open(path, os.O_RDONLY)
    try:
        follower = JournalFollower(fd)
        batches = batches_of(cuts)
        seen, written = [], []
        for i, batch in enumerate(batches):
            if i in updates:
                writer.update(run)
            assert writer.append(batch)
            written.append(batch)
            if i in announce:
                seen.extend(follower.batches_to(writer.bytes))
                assert seen == written
        writer.close(run)
        seen.extend(follower.batches_to(writer.bytes))      # the trailer is skipped too
        assert seen == written and follower.pos == writer.bytes
    finally:
        os.close(fd)


def test_a_batch_the_journal_could_not_take_comes_through_the_socket(tmp_path, monkeypatch):
    """The agent's journal on a full disk for some batches: those are sent
    whole in their place, the others as the journal's length; a client reading
    both (as AgentRecording does) gets every batch in order, and the journal
    says which ones it lacks."""
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
        rec.follows_journal = True
        rec.queue_with_fd(protocol.message(protocol.STARTED, id="r1"),
                          os.open(path, os.O_RDONLY))
        for batch in batches:
            rec.deliver(batch)
        rec.queue(protocol.message(protocol.ENDED))
        rec.close_queue()

        started, fd = protocol.recv_with_fd(client_end)
        assert started["op"] == protocol.STARTED and fd is not None
        follower, got, through_socket = JournalFollower(fd), [], 0
        while True:
            msg = protocol.recv(client_end)
            if type(msg) is int:
                got.extend(follower.batches_to(msg))
            elif isinstance(msg, bytes):
                got.append(msg)
                through_socket += 1
            else:
                assert msg["op"] == protocol.ENDED
                break
        os.close(fd)
        rec.join_sender(5)
        assert got == batches
        assert through_socket == len(refuse)
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
        assert got == batches
    finally:
        agent_end.close()
        client_end.close()
        journal.close(run)
