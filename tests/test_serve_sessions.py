"""Per-client sessions: bounded queues, resync for the slow, nothing shared grows."""
import asyncio
import copy

from agent.graph.jsondelta import LiveInterpreter
from agent.graph.synthetic import make_run, stream_job
from agent.serve import hub as H
from agent.serve.sources import Source


class FakeLive(Source):
    """A source whose graph grows by one batch of events per step."""
    kind = "journal"

    def __init__(self, events, per_step):
        super().__init__("fake")
        self.run = make_run(root_pid=100)
        self.interp = LiveInterpreter(self.run, self.graph)
        self.events, self.per_step, self.pos = events, per_step, 0

    @property
    def live(self):
        return self.pos < len(self.events)

    def step(self):
        chunk = self.events[self.pos:self.pos + self.per_step]
        self.pos += len(chunk)
        if chunk:
            self.interp.feed(chunk)
        if not self.live:
            self.interp.finish()
        self.graph.commit()
        return False


def test_a_slow_client_gets_one_resync_then_catches_up_by_since():
    async def main():
        src = FakeLive(list(stream_job(40_000)), 200)
        hub = H.Hub([src])
        fast = hub.session("fast", "1")
        slow = hub.session("slow", "1")
        got_fast = {}
        rounds = 0
        while src.live:
            hub.pump_once()
            rounds += 1
            while (item := fast.take()) is not None:     # the fast client reads everything
                assert item[0] == "delta"
            if rounds == 10:
                # the slow one has read ten revisions' worth, then stops reading
                for _ in range(10):
                    assert slow.take()[0] == "delta"
        assert rounds > H.QUEUE_MAX + 20
        # its queue never held more than the bound, and ends with one resync
        assert len(slow.queue) == 1 and slow.resyncs == 1
        name, since, data = slow.take()
        assert name == "resync" and since == slow.delivered == 10
        assert '"since":10' in data
        # what it asks for then is exactly what it missed: the final graph
        missed = src.graph.since(since)
        ids = {o["id"] for o in missed["nodes"] + missed["links"]}
        changed_after = {oid for oid, o in src.graph.objects.items() if o["rev"] > 10}
        assert ids == changed_after
        assert fast.resyncs == 0 and fast.delivered == src.graph.rev
        # after the resync it gets deltas again
        src.events += list(stream_job(1000))
        hub.pump_once()
        assert slow.take()[0] == "delta"
    asyncio.run(main())


def test_sessions_are_bounded_and_forgotten_when_idle(monkeypatch):
    async def main():
        src = FakeLive(list(stream_job(100)), 100)
        hub = H.Hub([src])
        monkeypatch.setattr(H, "SESSIONS_MAX", 5)
        sessions = [hub.session(f"c{i}", "1") for i in range(5)]
        assert all(sessions)
        assert hub.session("c6", "1") is None            # full, none idle long enough
        assert hub.session("c0", "1") is sessions[0]    # a known client gets its own back
        monkeypatch.setattr(H, "SESSION_IDLE_S", 0)
        assert hub.session("c6", "1") is not None        # idle ones were forgotten
        assert len(hub.sessions) == 1
    asyncio.run(main())


def test_one_serialisation_per_revision_whatever_the_number_of_clients():
    async def main():
        src = FakeLive(list(stream_job(5000)), 500)
        hub = H.Hub([src])
        clients = [hub.session(f"c{i}", "1") for i in range(50)]
        hub.pump_once()
        payloads = {id(c.queue[0][2]) for c in clients}
        assert len(payloads) == 1                        # the same string object for all
        assert hub.deltas_sent == 50
    asyncio.run(main())
