"""possible_collisions (a sweep over lifetimes) against the plain definition:
every pair of writers of a path, checked one by one."""
import itertools

from hypothesis import given, settings, strategies as st

from agent.compare.collisions import NOT_FILES, Collision, Writer, _overlap, possible_collisions


def every_pair(writers, run_spans):
    """The definition (agent/compare/collisions.py's docstring), pair by pair."""
    by_path = {}
    for w in writers:
        if not w.path.startswith(NOT_FILES):
            by_path.setdefault(w.path, {})[(w.run, w.process)] = w
    found = []
    for path in sorted(by_path):
        for a, b in itertools.combinations(by_path[path].values(), 2):
            if a.run == b.run:
                if a.process in b.ancestors or b.process in a.ancestors:
                    continue
                if not _overlap(a.start_ns, a.end_ns, b.start_ns, b.end_ns):
                    continue
                found.append(Collision(path, a, b, True, True))
            else:
                ra, rb = run_spans.get(a.run, (None, None)), run_spans.get(b.run, (None, None))
                found.append(Collision(path, a, b, False, _overlap(*ra, *rb)))
    return found


@st.composite
def writers(draw):
    out = []
    for _ in range(draw(st.integers(0, 30))):
        run = draw(st.sampled_from(["r1", "r2", "r3"]))
        process = f"p{draw(st.integers(0, 12))}"
        start = draw(st.none() | st.integers(0, 50))
        end = None if start is None else draw(st.none() | st.integers(start, 60))
        ancestors = tuple(sorted(draw(st.sets(st.sampled_from([f"p{i}" for i in range(13)]),
                                              max_size=3))))
        path = draw(st.sampled_from([b"/w/log", b"/w/out", b"/dev/null", b"/w/lock"]))
        out.append(Writer(path, run, process, start, end, ancestors))
    return out


@settings(max_examples=400, deadline=None)
@given(writers(), st.dictionaries(st.sampled_from(["r1", "r2"]),
                                  st.tuples(st.integers(0, 30), st.integers(30, 60))))
def test_the_sweep_finds_exactly_the_pairs_of_the_definition(ws, spans):
    assert possible_collisions(ws, spans) == every_pair(ws, spans)


def test_writers_in_turn_are_never_compared_pairwise():
    """10,000 processes of one run writing one log one after another: no
    collision, and the sweep compares each only with those alive when it starts."""
    ws = [Writer(b"/w/log", "r", f"p{i}", 10 * i, 10 * i + 5) for i in range(10_000)]
    assert possible_collisions(ws) == []
    two = ws + [Writer(b"/w/log", "r", "late", 12, 30)]     # alive beside p1 and p2
    assert [(c.a.process, c.b.process) for c in possible_collisions(two)] == \
        [("p1", "late"), ("p2", "late")]
