"""50 SSE clients on a live recording of the stat loop (bench/bench_serve.py, short):
the recording loses nothing and counts exactly, the server's memory stays bounded,
every reading client sees the run to its end."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import bench_serve  # noqa: E402

pytestmark = pytest.mark.bpf

RSS_BOUND = 200 << 20          # the server's peak resident memory, stated in docs/serve.md


def test_fifty_clients_on_the_stat_loop():
    n = 200_000
    r = bench_serve.measure(n, nclients=50, nslow=10, baseline=False)
    assert r["served_counts"] == (n, n, 0)           # stat, open: exact; lost: none
    assert r["events"] >= 2 * n                      # the server read the whole journal
    assert r["rss_peak"] < RSS_BOUND, r["rss_peak"]
    assert r["fast_ended"] == 40                     # every reading client saw the end


def test_the_stat_loop_through_the_agent_with_watchers():
    """bench_serve.py --agent, short: every recording exact whether a watcher that only
    reads or `serve --agent` follows it; both get the whole recording."""
    n = 50_000
    r = bench_serve.measure_agent(n, rounds=1)
    assert r["inexact"] == []                        # stat, open: exact; lost: none
    assert r["watched_whole"] == [True]
    # the static loop: its exec, N stats, N opens, its exit
    assert r["served"] == [2 * n + 2]
    assert r["rss_peak"] < RSS_BOUND, r["rss_peak"]
