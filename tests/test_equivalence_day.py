"""Incremental ticks request what a full evaluation requests, over a simulated day at 300 models.

The day is `benchmarks/equivalence_quiet_tick.py`'s: a generated 300-model dbt project loaded as
`dg` loads it, a tenth of its models with a TTL, quiet hours or a backoff, and about a hundred
ticks between 30 s and 1 h apart, with random seed updates, runs that fail, start and are
cancelled, and code edits. Each tick is evaluated by the sensor as shipped (quiet ticks skipped,
busy ticks evaluating what their events can affect) and by the same sensor evaluating every asset.
"""

import os
import random
import sys
from pathlib import Path
from unittest import mock

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def day(monkeypatch: pytest.MonkeyPatch):
    """The benchmark's day module; loading a generated project sets environment variables and
    `sys.path`, both restored after the test."""
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    with mock.patch.dict(os.environ):
        import equivalence_quiet_tick

        yield equivalence_quiet_tick


def test_a_simulated_day_on_300_models_requests_what_a_full_evaluation_requests(day, tmp_path):
    rng = random.Random(18)
    project = day.write_project(tmp_path / "ours_300", 300, "ours")
    assets = day.load_day_assets(project, rng)

    result = day.simulate_day(assets, hours=24, rng=rng, report=lambda line: None)

    assert result.difference is None
    # The fast paths ran: a day where every tick evaluated in full would prove nothing.
    assert result.kinds["skipped"] >= 10, result.kinds
    assert result.kinds["partial"] >= 10, result.kinds
    assert result.ticks >= 90, result.kinds
