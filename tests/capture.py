"""Records a command into a list of Events, without journal or graph: what
the kernel side and the extension deliver, seen directly."""
from agent.events import decode_batch
from agent.recorder import Recorder
from agent.run import Run


def capture(argv, **kwargs):
    """Returns (run, events) for one recorded command."""
    batches = []
    run = Run(source="record", command=list(argv), scope="command")
    rec = Recorder(run, batches.append, **kwargs)
    try:
        run.mark_start()
        rec.start_command(argv)
        rec.loop()
        run.mark_end()
    finally:
        rec.close()
    events = [ev for b in batches for ev in decode_batch(b)]
    return run, events
