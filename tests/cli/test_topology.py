"""The declared topology keeps DESIGN.md's rule for sync calls: a request never crosses more than
3 sync hops, and no service calls back into one that called it."""

from __future__ import annotations

from functools import cache

from agora_cli import topology

MAX_SYNC_HOPS = 3


def test_a_request_crosses_at_most_three_sync_hops_and_no_call_goes_round_in_a_circle() -> None:
    services = topology.load(topology.topology_path())
    # Every service calls identity for its signing keys only (`chassis.identity_keys`), cached for
    # minutes, never for an answer a request waits on; the gateway calls it for logins too.
    calls = {
        name: [callee for callee in service.calls if callee != "identity" or name == "gateway"]
        for name, service in services.items()
    }

    @cache
    def deepest(name: str, path: tuple[str, ...] = ()) -> int:
        assert name not in path, f"a cycle: {' -> '.join((*path, name))}"
        return max((1 + deepest(callee, (*path, name)) for callee in calls[name]), default=0)

    assert deepest("gateway") <= MAX_SYNC_HOPS
    assert max(deepest(name) for name in services) == deepest("gateway")  # every request enters there
