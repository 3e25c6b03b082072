# SPDX-License-Identifier: GPL-3.0-or-later
"""The guest roles (nvidia_driver, whisper_api): meta/argument_specs.yml documents exactly the
keys of defaults/main.yml, and each documented choice list contains the default."""
from __future__ import annotations

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(role, rel):
    with open(os.path.join(ROOT, "roles", role, rel), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.mark.parametrize("role", ["nvidia_driver", "whisper_api"])
def test_argument_specs_match_defaults(role):
    defaults = _load(role, "defaults/main.yml")
    options = _load(role, "meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        assert name.startswith(role + "_"), name
        assert spec.get("description"), name
        if "choices" in spec:
            assert defaults[name] in spec["choices"], name
