"""Every record the kernel side could not deliver is counted: with a ring
buffer too small for the load, captured + counted as lost == produced."""
import time

import pytest

from agent.events import Kind, decode_batch
from agent.capture.session import Session
from agent.run import Run

pytestmark = pytest.mark.bpf


def record(argv, sink_delay, ringbuf_pages):
    batches = []

    def slow_sink(batch):
        batches.append(batch)
        time.sleep(sink_delay)   # a consumer that cannot keep up

    run = Run(source="record", command=argv, scope="command")
    with Session(run, slow_sink, ringbuf_pages=ringbuf_pages, batch_bytes=64 << 10) as session:
        session.run_to_end("command", argv)
    return run, [e for b in batches for e in decode_batch(b)]


def test_overflow_is_counted_exactly(build_helper, tmp_path):
    exe = build_helper("known")
    (tmp_path / "exists").write_text("")
    argv = [str(exe), str(tmp_path), "20000", "0", "20000", "0", "0", "0"]
    run, events = record(argv, sink_delay=0, ringbuf_pages=4096)
    assert run.total_lost == 0
    produced = len(events)
    assert sum(e.kind == Kind.OPEN for e in events) >= 20000

    run, events = record(argv, sink_delay=0.2, ringbuf_pages=1)
    assert run.losses["ringbuf"] > 0
    assert len(events) + run.losses["ringbuf"] == produced
    # the windows add up to the same count, and lie within the run
    assert sum(n for _a, _b, name, n in run.loss_windows if name == "ringbuf") == \
        run.losses["ringbuf"]
    assert all(run.start_mono_ns <= a <= b <= run.end_mono_ns for a, b, *_ in run.loss_windows)
