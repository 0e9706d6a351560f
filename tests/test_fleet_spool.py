"""The push queue against a real Oxigraph: the store killed mid-push, more recordings
queued while it is down, restarted: every graph arrives exactly once."""
import json
import os
import stat

import pytest
import requests

from agent import fleet
from agent.errors import ConfigError
from agent.fleet.config import StoreConfig
from fleet_support import Oxigraph, StoreProxy, make_big_recording, make_recording


@pytest.fixture
def oxigraph(tmp_path):
    server = Oxigraph(tmp_path / "db").start()
    yield server
    server.stop()


def recordings(directory, n, first=0):
    return [make_recording(directory, f"host{i % 3}", i, failed=i % 4 == 3, reads_shared=i % 2 == 0)
            for i in range(first, first + n)]


def pusher(spool, url, timeout=20, **kw):
    cfg = StoreConfig(url=url, backoff_initial=0.05, backoff_max=0.2, timeout=timeout)
    return fleet.Pusher(spool, fleet.Store(cfg), backoff_initial=cfg.backoff_initial,
                        backoff_max=cfg.backoff_max, **kw)


def test_store_killed_mid_push_then_more_recorded_then_restarted(tmp_path, oxigraph):
    recs = recordings(tmp_path, 10)
    spool = fleet.Spool(tmp_path / "spool")
    for r in recs:
        spool.enqueue(r.path)
    assert spool.status()["waiting"] == 10

    acked = []

    def kill_after_four(meta):
        acked.append(meta["graph"])
        if len(acked) == 4:
            oxigraph.stop()

    p = pusher(spool, oxigraph.gsp, on_pushed=kill_after_four)
    result = p.push_due(force=True)
    assert result.pushed == [r.run_iri for r in recs[:4]]
    assert "no answer from" in result.error and "connection refused" in result.error
    # recorded while the store is down
    more = recordings(tmp_path, 5, first=10)
    for r in more:
        spool.enqueue(r.path)
    again = p.push_due(force=True)
    assert again.pushed == [] and again.error
    status = spool.status()
    assert status["waiting"] == 11
    assert status["waiting_triples"] >= sum(r.triples for r in recs[4:] + more)
    assert status["failures"] == 2 and "connection refused" in status["last_error"]
    assert status["pushed"] == 4
    assert status["rejected"] == []
    # a second process reads the same status from the spool's files
    assert fleet.Spool(tmp_path / "spool").status()["failures"] == 2

    oxigraph.start()
    done = p.drain(deadline=__import__("time").time() + 60)
    assert done.error is None
    assert sorted(done.pushed) == sorted(r.run_iri for r in recs[4:] + more)
    sizes = oxigraph.graph_sizes()
    assert sizes == {r.run_iri: r.triples for r in recs + more}
    assert spool.status()["waiting"] == 0 and spool.names() == []
    assert spool.status()["pushed"] == 15
    assert os.listdir(spool.tmp_dir) == []


def test_lost_acknowledgement_is_pushed_again_and_stored_once(tmp_path, oxigraph):
    recs = recordings(tmp_path, 3)
    proxy = StoreProxy(oxigraph.base)
    try:
        proxy.lose_answers = 2           # the first two PUTs reach the store, unacknowledged
        spool = fleet.Spool(tmp_path / "spool")
        for r in recs:
            spool.enqueue(r.path)
        p = pusher(spool, proxy.gsp)
        first = p.push_due(force=True)
        assert first.pushed == [] and first.error
        # the store holds the first graph already, the pusher does not know it
        assert oxigraph.graph_sizes() == {recs[0].run_iri: recs[0].triples}
        second = p.push_due(force=True)
        assert second.pushed == [] and second.error
        rest = p.drain(deadline=__import__("time").time() + 60)
        assert sorted(rest.pushed) == sorted(r.run_iri for r in recs)
        puts = [g for m, _, g in proxy.seen if m == "PUT"]
        assert len(puts) == 5
        assert len(proxy.lost) == 2
    finally:
        proxy.close()
    # sent twice, stored once: PUT replaced it (argv lists are blank nodes: POST would double them)
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in recs}


def test_post_would_have_duplicated(tmp_path, oxigraph):
    """Why PUT: the same file POSTed twice leaves more triples than it holds."""
    rec = recordings(tmp_path, 1)[0]
    for _ in range(2):
        with open(rec.path, "rb") as body:
            requests.post(oxigraph.gsp, params={"graph": "urn:test:posted"}, data=body,
                          headers={"Content-Type": "text/turtle"}, timeout=20).raise_for_status()
    assert oxigraph.graph_sizes()["urn:test:posted"] > rec.triples


def test_refused_graph_is_kept_aside_and_can_be_queued_again(tmp_path, oxigraph):
    recs = recordings(tmp_path, 3)
    proxy = StoreProxy(oxigraph.base)
    try:
        proxy.refuse = recs[1].run_iri
        spool = fleet.Spool(tmp_path / "spool")
        for r in recs:
            spool.enqueue(r.path)
        result = pusher(spool, proxy.gsp).push_due(force=True)
        assert result.pushed == [recs[0].run_iri, recs[2].run_iri]
        assert result.rejected == [recs[1].run_iri]
        status = spool.status()
        assert status["waiting"] == 0
        assert [r["graph"] for r in status["rejected"]] == [recs[1].run_iri]
        assert "HTTP 400" in status["rejected"][0]["error"]
        assert "rejected by the store" in fleet.format_status(status)
        proxy.refuse = None
        assert spool.requeue_rejected() == 1
        again = pusher(spool, proxy.gsp).push_due(force=True)
        assert again.pushed == [recs[1].run_iri]
    finally:
        proxy.close()
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in recs}


def test_spool_files_are_private_and_a_planted_spool_is_refused(tmp_path):
    rec = recordings(tmp_path, 1)[0]
    spool = fleet.Spool(tmp_path / "spool")
    meta = spool.enqueue(rec.path)
    entry = os.path.join(spool.queue_dir, meta["name"])
    for path in (spool.root, spool.queue_dir, entry):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    for name in os.listdir(entry):
        assert stat.S_IMODE(os.stat(os.path.join(entry, name)).st_mode) & 0o077 == 0
    assert json.load(open(os.path.join(entry, "meta.json")))["graph"] == rec.run_iri
    os.mkdir(tmp_path / "open", 0o755)
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(ConfigError, match="mode 0777"):
        fleet.Spool(tmp_path / "open")
    os.symlink(tmp_path / "spool", tmp_path / "link")
    with pytest.raises(ConfigError, match="not a directory"):
        fleet.Spool(tmp_path / "link")


def test_entries_left_half_built_by_a_dead_process_are_removed(tmp_path):
    spool = fleet.Spool(tmp_path / "spool")
    os.mkdir(os.path.join(spool.tmp_dir, "dead-entry"), 0o700)
    open(os.path.join(spool.tmp_dir, "dead-entry", "data.ttl"), "w").write("half")
    fleet.Spool(tmp_path / "spool")
    assert os.listdir(spool.tmp_dir) == []
    assert spool.names() == []


def test_backoff_doubles_is_half_random_capped_and_honours_retry_after(tmp_path):
    spool = fleet.Spool(tmp_path / "spool")
    p = fleet.Pusher(spool, fleet.Store(StoreConfig(url="http://127.0.0.1:9/store")),
                     backoff_initial=1.0, backoff_max=60.0, rng=lambda: 1.0)
    waits = []
    for failures in range(1, 9):
        p.failures = failures
        waits.append(p.delay())
    assert waits == [1, 2, 4, 8, 16, 32, 60, 60]
    p.rng = lambda: 0.0
    p.failures = 3
    assert p.delay() == 2.0                  # half of 4: never less
    assert p.delay(retry_after=30) == 30
    assert p.delay(retry_after=1000) == 60   # capped


def test_a_recording_is_named_by_its_run(tmp_path):
    from agent.errors import InputFormatError
    from agent.fleet.recording import inspect_turtle
    rec = recordings(tmp_path, 1)[0]
    assert inspect_turtle(rec.path).graph == rec.run_iri
    assert inspect_turtle(rec.path, graph="urn:x").graph == "urn:x"
    two = tmp_path / "two.ttl"
    two.write_bytes(rec.path.read_bytes() + recordings(tmp_path, 1, first=1)[0].path.read_bytes()
                    .replace(b"@prefix", b"@prefix", 1))
    with pytest.raises(InputFormatError, match="2 batchflow runs"):
        inspect_turtle(two)
    bad = tmp_path / "bad.ttl"
    bad.write_text("<a> <b> .\n")
    with pytest.raises(InputFormatError, match="not valid Turtle"):
        inspect_turtle(bad)


def test_two_pushers_share_a_spool_and_send_each_recording_once(tmp_path, oxigraph):
    import threading
    import time
    recs = recordings(tmp_path, 12)
    spool = fleet.Spool(tmp_path / "spool")
    for r in recs:
        spool.enqueue(r.path)
    proxy = StoreProxy(oxigraph.base)
    try:
        pushers = [pusher(fleet.Spool(tmp_path / "spool"), proxy.gsp) for _ in range(2)]
        results = [None, None]

        def run(i):
            results[i] = pushers[i].drain(deadline=time.time() + 120)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        puts = [g for m, _, g in proxy.seen if m == "PUT"]
    finally:
        proxy.close()
    assert sorted(results[0].pushed + results[1].pushed) == sorted(r.run_iri for r in recs)
    assert len(puts) == 12                      # the entry locks: nothing sent twice
    assert spool.status()["pushed"] == 12
    from agent.fleet.recording import inspect_turtle
    assert spool.status()["pushed_triples"] == sum(inspect_turtle(r.path).triples for r in recs)
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in recs}


def test_a_journal_is_queued_with_the_turtle_built_from_it(tmp_path, oxigraph):
    from agent.capture.journal import JournalWriter
    from agent.events import encode_batch
    from agent.graph import synthetic
    from agent.graph.names import run_iri
    from fleet_support import distinct_triples
    events, run = synthetic.docs_example()
    jpath = tmp_path / "job.journal"
    w = JournalWriter(str(jpath), run)
    half = len(events) // 2
    w.append(encode_batch(events[:half]))
    w.append(encode_batch(events[half:]))
    w.close(run)
    spool = fleet.Spool(tmp_path / "spool")
    meta = spool.enqueue(jpath, move=True)
    assert not jpath.exists()
    entry = os.path.join(spool.queue_dir, meta["name"])
    assert sorted(os.listdir(entry)) == ["data.ttl", "journal.bin", "meta.json"]
    assert meta["graph"] == run_iri(run)
    expected = distinct_triples(os.path.join(entry, "data.ttl"))
    assert pusher(spool, oxigraph.gsp).push_due(force=True).pushed == [meta["graph"]]
    assert oxigraph.graph_sizes() == {meta["graph"]: expected}
    # a journal that is not one: refused, nothing left behind
    bad = tmp_path / "bad.journal"
    bad.write_bytes(b"\x81\xa9batchflow\xa7journal")      # the header map, cut short of its run
    from agent.errors import InputFormatError
    with pytest.raises(InputFormatError, match=f"^{bad}: journal version None is not supported"):
        spool.enqueue(bad)
    assert spool.names() == [] and os.listdir(spool.tmp_dir) == []


def test_serve_pushes_what_is_enqueued_until_stopped(tmp_path, oxigraph):
    """What the agent runs in a thread: enqueue + wake, and the graph arrives."""
    import threading
    import time
    recs = recordings(tmp_path, 3)
    spool = fleet.Spool(tmp_path / "spool")
    p = pusher(spool, oxigraph.gsp)
    thread = threading.Thread(target=p.serve)
    thread.start()
    try:
        for r in recs:
            spool.enqueue(r.path)
            p.wake()
        give_up = time.monotonic() + 120
        while spool.names() and time.monotonic() < give_up:
            time.sleep(0.05)
    finally:
        p.stop()
        thread.join(30)
    assert not thread.is_alive()
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in recs}
    assert spool.status()["pushed"] == 3


def test_store_killed_while_it_stores_a_graph(tmp_path, oxigraph):
    """SIGKILL of the store while it is taking a large PUT: whatever it kept of it,
    the retry's PUT replaces, and the graph ends up whole, once."""
    import threading
    import time
    big = make_big_recording(tmp_path, "big", 5000)
    small = recordings(tmp_path, 2)
    proxy = StoreProxy(oxigraph.base)
    try:
        spool = fleet.Spool(tmp_path / "spool")
        spool.enqueue(big.path)
        for r in small:
            spool.enqueue(r.path)
        p = pusher(spool, proxy.gsp, timeout=600)
        first = []
        thread = threading.Thread(target=lambda: first.append(p.push_due(force=True)))
        thread.start()
        assert proxy.forwarding.wait(120)
        time.sleep(0.2)                 # into the store's work on the graph
        oxigraph.stop()
        thread.join(300)
        assert first[0].pushed == [] and "HTTP 502" in first[0].error
        assert spool.status()["waiting"] == 3
        oxigraph.start()
        done = p.drain(deadline=time.time() + 300)
        assert done.error is None
    finally:
        proxy.close()
    assert oxigraph.graph_sizes() == {r.run_iri: r.triples for r in [big] + small}
