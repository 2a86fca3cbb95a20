"""`agora keys rotate` against a running identity, found the way the CLI finds it (city.json)."""

from __future__ import annotations

import json
import os

import jwt
import pytest

from agora_cli.config import Config
from agora_cli.errors import AgoraError
from agora_cli.keys import rotate_signing_key
from tests.identity.conftest import Identity


def _config(identity: Identity, *, supervisor_pid: int | None) -> Config:
    config = Config.from_env({"AGORA_HOME": str(identity.settings.home), "AGORA_MTLS": "off"})
    config.home.root.mkdir(parents=True, exist_ok=True)
    city = {
        "supervisor": {"pid": supervisor_pid, "create_time": None},
        "services": [{"name": "identity", "instance": 0, "pid": None, "grpc": f"127.0.0.1:{identity.settings.grpc_port}"}],
        "infra": [],
    }
    config.home.state_file.write_text(json.dumps(city))
    return config


async def test_agora_keys_rotate_makes_identity_sign_with_a_new_key(identity: Identity) -> None:
    await identity.register("ada@example.com")
    before = jwt.get_unverified_header((await identity.login("ada@example.com")).access_token)["kid"]
    kid = await rotate_signing_key(_config(identity, supervisor_pid=os.getpid()))
    after = jwt.get_unverified_header((await identity.login("ada@example.com")).access_token)["kid"]
    assert after == kid != before


async def test_agora_keys_rotate_needs_a_running_city(identity: Identity) -> None:
    with pytest.raises(AgoraError, match="no city is running"):
        await rotate_signing_key(_config(identity, supervisor_pid=None))
