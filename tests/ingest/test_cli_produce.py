"""The producer commands: one clear line and exit 2 on user mistakes; real runs on Tansu."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from finsent import cli
from ingest.broker import EmbeddedBroker
from ingest.schema import decode


def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["finsent", *args])
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def kafka_env(monkeypatch: pytest.MonkeyPatch, tansu: EmbeddedBroker,
              topic_names: dict[str, str]) -> dict[str, str]:
    monkeypatch.setenv("FINSENT_KAFKA_BOOTSTRAP", tansu.bootstrap)
    monkeypatch.setenv("FINSENT_TOPIC_NEWS", topic_names["news"])
    monkeypatch.setenv("FINSENT_TOPIC_COMMENTS", topic_names["comments"])
    monkeypatch.setenv("FINSENT_TOPIC_DEADLETTER", topic_names["deadletter"])
    return topic_names


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "/no/such/file.jsonl"], "no such file: /no/such/file.jsonl"),
        (["replay", "{tmp}/data.jsonl", "--format", "parquet"], "unknown format 'parquet'"),
        (["replay", "{tmp}/data.txt"], "cannot tell the format"),
        (["replay", "{tmp}/data.csv", "--map", "text"], "bad --map 'text'"),
        (["replay", "{tmp}/data.csv", "--map", "text=nope"], "no column 'nope'"),
        (["replay", "{tmp}/data.jsonl", "--map", "text=body"], "--map applies to --format csv"),
        (["replay", "{tmp}/data.jsonl", "--rate", "0"], "--rate must be positive"),
        (["simulate", "--rate", "-1"], "--rate must be positive"),
        (["simulate", "--regime-ticker", "NOPE"], "unknown simulator ticker 'NOPE'"),
        (["feed", "gopher://old.example/feed"], "not a feed URL"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    args: list[str], message: str,
) -> None:
    for name, body in (("data.jsonl", "{}\n"), ("data.txt", "x\n"), ("data.csv", "body\nhi\n")):
        (tmp_path / name).write_text(body)
    # No broker: every one of these must fail before Kafka is contacted.
    monkeypatch.setenv("FINSENT_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    code, out, err = run_main(monkeypatch, capsys, *[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("finsent: error: ")
    assert message in lines[0]


def test_broker_on_a_taken_port(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str], tansu: EmbeddedBroker) -> None:
    code, _, err = run_main(monkeypatch, capsys, "broker", "--port", str(tansu.port))
    assert code == 2
    assert f"port {tansu.port} on 127.0.0.1 is already in use" in err.strip().splitlines()[-1]


def test_broker_binary_missing(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setenv("CALF_TANSU_BIN", str(tmp_path / "tansu"))
    code, _, err = run_main(monkeypatch, capsys, "broker", "--port", "0")
    assert code == 2
    assert "Tansu broker binary not found" in err


def test_broker_runs_in_the_foreground_until_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "FINSENT_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "finsent.cli", "broker", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        address = lines[0].split("kafka://")[1].split()[0]
        assert lines[1].strip() == f"export FINSENT_KAFKA_BOOTSTRAP={address}"
        assert "finsent.news, finsent.comments, finsent.deadletter" in lines[2]
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "broker stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_topics_create_and_replay_and_simulate(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
    kafka_env: dict[str, str], read_topic,
) -> None:
    code, out, _ = run_main(monkeypatch, capsys, "topics", "create")
    assert code == 0
    assert f"{kafka_env['news']}: exists" in out

    path = tmp_path / "posts.csv"
    path.write_text("uid,body,kind\n1,Apple beats,news\n2,,news\n3,Tesla slides,news\n")
    code, out, _ = run_main(monkeypatch, capsys, "replay", str(path), "--map", "id=uid",
                            "--map", "text=body", "--source", "blog", "--no-progress")
    assert code == 0
    assert "replayed 3 messages" in out and "1 malformed" in out
    records = read_topic(kafka_env["news"], 3)
    good = sorted(decode(r.value, max_bytes=10_000).id for r in records if r.key)
    assert good == ["1", "3"]
    assert [json.loads(r.value)["id"] for r in records if not r.key] == ["2"]

    code, out, _ = run_main(monkeypatch, capsys, "simulate", "--count", "25", "--rate", "500")
    assert code == 0
    assert "simulated 25 messages" in out
