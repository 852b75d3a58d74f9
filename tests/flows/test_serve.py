"""`rlvr serve` refusals that need no server (the full path is in test_serve_e2e.py)."""

import signal
import socket

from flows.serve import main


def test_a_busy_port_is_refused_with_what_to_do(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        try:
            assert main(["--port", str(port), "--results-dir", str(tmp_path)]) == 2
        finally:
            signal.signal(signal.SIGTERM, handler)
    err = capsys.readouterr().err
    assert f"port {port} is in use" in err and f"PREFECT_API_URL=http://127.0.0.1:{port}/api" in err


def test_worker_only_needs_a_server_address(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    handler = signal.getsignal(signal.SIGTERM)
    try:
        assert main(["--worker-only", "--results-dir", str(tmp_path)]) == 2
    finally:
        signal.signal(signal.SIGTERM, handler)
    assert "--worker-only needs PREFECT_API_URL" in capsys.readouterr().err
