"""Records a command into a list of Events, without journal or graph: what
the kernel side and the extension deliver, seen directly."""
from agent.events import Call, Kind, decode_batch
from agent.capture.session import Session
from agent.run import Run


def capture(argv, **kwargs):
    """Returns (run, events) for one recorded command."""
    batches = []
    run = Run(source="record", command=list(argv), scope="command")
    with Session(run, batches.append, **kwargs) as session:
        session.run_to_end("command", argv)
    events = [ev for b in batches for ev in decode_batch(b)]
    return run, events


PATH_KINDS = (Kind.OPEN, Kind.STAT, Kind.EXEC, Kind.CHDIR)


def assert_nothing_lost(run, events):
    """No record was dropped, and every string the kernel side could not read
    shows as an event without its path (some kernels cannot read the empty
    path of an AT_EMPTY_PATH fstatat at syscall exit: we count, not guess)."""
    dropped = {k: v for k, v in run.losses.items() if k != "read" and v}
    assert not dropped, run.losses
    pathless = [e for e in events
                if e.kind in PATH_KINDS and e.path is None and e.call != Call.FCHDIR]
    assert run.losses.get("read", 0) == len(pathless), (run.losses, pathless[:5])
