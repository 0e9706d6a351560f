"""psutil enrichment: what the recorded processes cost."""
import sys

import pytest

from agent.enrich import Sampler, TREE_TOTALS, sample
from capture import capture


def test_sample_of_this_process():
    import psutil
    s = sample(psutil.Process())
    assert s["rss_max_bytes"] > 1 << 20
    assert s["threads_max"] >= 1
    assert s["cpu_user_s"] + s["cpu_system_s"] > 0


def test_sampler_forgets_dead_pids():
    sampler = Sampler(interval=0)
    sampler.maybe_sample([2 ** 22 + 7])    # cannot exist
    assert sampler.stats == {}


@pytest.mark.bpf
def test_recorded_command_gets_exact_totals():
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass\n"
    run, events = capture([sys.executable, "-c", burn], sampler=Sampler(0.1))
    root = run.process_stats[run.root_pid]
    assert root[TREE_TOTALS] is True
    # at least the 0.3 s of CPU the command burned, by its own clock
    assert root["cpu_user_s"] + root["cpu_system_s"] >= 0.3
    assert root["rss_max_bytes"] > 1 << 20
