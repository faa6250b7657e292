"""Fixtures for the ``nemo`` backend's tests: a served platform emulator, endpoints and a client pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backends.nemo.emulator import EmulatorURLs, FakeClock, NemoEmulator, serve_emulator
from flywheel.backends.nemo import PlatformClient, PlatformEndpoints


@pytest.fixture(autouse=True)
def _hub_online_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why: the suite sets HF_HUB_OFFLINE so that no test downloads from the Hub; the Data Store these tests upload
    to through ``huggingface_hub`` is the emulator on loopback, so that switch is lifted for them."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def served() -> Iterator[tuple[NemoEmulator, EmulatorURLs]]:
    """Why: every test gets a fresh platform (its own state, scripts and faults) on its own loopback port."""
    with serve_emulator() as pair:
        yield pair


@pytest.fixture
def emu(served: tuple[NemoEmulator, EmulatorURLs]) -> NemoEmulator:
    """The emulator's state, to script it and to look at what it was asked."""
    return served[0]


@pytest.fixture
def urls(served: tuple[NemoEmulator, EmulatorURLs]) -> EmulatorURLs:
    """The blueprint's three ``nmp_config`` URLs, pointing at the emulator."""
    return served[1]


@pytest.fixture
def endpoints(urls: EmulatorURLs) -> PlatformEndpoints:
    """Why: the backend's view of the emulated platform, in namespace ``flywheel-test``, without keys."""
    return PlatformEndpoints(urls.nemo_base_url, urls.nim_base_url, urls.datastore_base_url, "flywheel-test")


@pytest.fixture
def clock() -> FakeClock:
    """Why: deployment waits and retries run on fake time, so a stall timeout of an hour takes no time."""
    return FakeClock()


@pytest.fixture
def client(endpoints: PlatformEndpoints, clock: FakeClock) -> Iterator[PlatformClient]:
    """Why: a platform client whose retries wait on the fake clock; closed after the test."""
    platform_client = PlatformClient(endpoints, sleep=clock.sleep, timeout_s=10.0)
    yield platform_client
    platform_client.close()
