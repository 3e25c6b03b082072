# SPDX-License-Identifier: GPL-3.0-or-later
"""pytest fixtures around the *simulated* PVE API (import them into a test module)."""
from __future__ import annotations

import pytest

from .runner import Simulator


@pytest.fixture
def sim(tmp_path):
    """A fresh simulated PVE API (own state, certificates and token secrets) per test."""
    simulator = Simulator(str(tmp_path / "simulated-pve")).start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture(scope="module")
def sim_module(tmp_path_factory):
    """One simulated PVE API shared by the tests of a module (state carries over between them)."""
    simulator = Simulator(str(tmp_path_factory.mktemp("simulated-pve"))).start()
    try:
        yield simulator
    finally:
        simulator.stop()
