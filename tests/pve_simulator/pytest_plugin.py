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


@pytest.fixture
def sim_client(sim):  # pylint: disable=redefined-outer-name
    """A factory of PveClient objects connected to ``sim`` with its token and CA (tasks polled every 50 ms);
    keyword arguments override PveClient's."""
    from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.pve_client import PveClient

    def make(**kwargs):
        args = dict(host="127.0.0.1", port=sim.port, token_id=sim.token_id, token_secret=sim.token_secret,
                    ca_path=sim.ca_path, poll_interval=0.05)
        args.update(kwargs)
        return PveClient(**args)
    return make
