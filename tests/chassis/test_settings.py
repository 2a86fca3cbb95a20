import pytest

from chassis.settings import ServiceSettings, load


def test_settings_read_the_runner_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_SERVICE", "orders")
    monkeypatch.setenv("AGORA_HTTP_PORT", "9001")
    monkeypatch.setenv("AGORA_PEERS", '{"cart": ["127.0.0.1:1", "127.0.0.1:2"]}')
    monkeypatch.setenv("AGORA_ALLOWED_CALLERS", "gateway,cli")
    settings = load(ServiceSettings)
    assert settings.peer("cart") == ["127.0.0.1:1", "127.0.0.1:2"]
    assert settings.allowed_callers == {"gateway", "cli"}
    with pytest.raises(LookupError, match="calls"):
        settings.peer("payments")


def test_missing_settings_stop_the_process_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("AGORA_SERVICE", raising=False)
    monkeypatch.setenv("AGORA_HTTP_PORT", "not-a-port")
    with pytest.raises(SystemExit):
        load(ServiceSettings)
    error = capsys.readouterr().err
    assert "SERVICE" in error and "HTTP_PORT" in error
    assert len(error.strip().splitlines()) == 1
