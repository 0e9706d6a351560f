"""bench/bench_kernel_side.py's program variants: --ablate's edits still apply to
the kernel side as it is (each one exactly where it says, and nowhere else),
and each variant still loads, so the bench measures what its table names."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bench_kernel_side  # noqa: E402

FULL = (BENCH.parent / "bpf" / "batchflow.bpf.c").read_text()


@pytest.fixture(scope="module")
def ablated(tmp_path_factory):
    return bench_kernel_side.ablated_programs(tmp_path_factory.mktemp("ablate"))


def test_every_ablation_is_one_variant_beside_the_headers(ablated):
    assert list(ablated) == list(bench_kernel_side.ABLATIONS)
    texts = set()
    for label, path in ablated.items():
        text = path.read_text()
        assert text != FULL, label
        texts.add(text)
        for header in ("batchflow.h", "arch_x86_64.h"):
            assert (path.parent / header).read_bytes() == \
                (BENCH.parent / "bpf" / header).read_bytes()
    assert len(texts) == len(ablated)


def test_each_edit_changes_only_what_it_names(ablated):
    for label, edits in bench_kernel_side.ABLATIONS.items():
        text = ablated[label].read_text()
        change = 0
        for old, new, count in edits:
            assert old not in text or old in new, label
            found = FULL.count(old)
            assert found > 0 and (count is None or found == count), label
            change += found * (len(new) - len(old))
        # nothing but the named text was replaced
        assert len(text) - len(FULL) == change, label


def test_an_edit_that_no_longer_applies_stops_the_bench(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_kernel_side.ABLATIONS, "gone",
                        [("no such line in the program", "", 1)])
    with pytest.raises(SystemExit) as stop:
        bench_kernel_side.ablated_programs(tmp_path)
    assert "gone" in str(stop.value) and "update ABLATIONS" in str(stop.value)


@pytest.mark.bpf
def test_every_variant_loads(ablated, monkeypatch):
    from agent.capture import loader
    for label, path in ablated.items():
        monkeypatch.setattr(loader, "PROGRAM", path)
        monkeypatch.setattr(loader, "BPF_DIR", path.parent)
        probe = loader.Probe(ringbuf_pages=16)
        try:
            assert probe.bpf.raw_tracepoint_fds, label
        finally:
            probe.close()
