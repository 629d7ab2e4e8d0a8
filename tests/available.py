"""Skipping tests whose target is not available here (gir.targets() says why)."""

import pytest

import gir


def require_target(name: str) -> None:
    """Skip the calling test unless target ``name`` is available on this machine."""
    info = {t.name: t for t in gir.targets()}
    if name not in info:
        raise ValueError(f"unknown target {name!r}")
    if not info[name].available:
        pytest.skip(f"target {name} unavailable: {info[name].reason}")
