"""Retrain alerts against a real webhook receiver on 127.0.0.1: a promotion and a failure are
posted as JSON, a dead or slow webhook never hangs the job, and the URL's secret is never printed."""

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import mlflow
import numpy as np
import pytest

from pipeline import cli, data
from pipeline.errors import UserError
from pipeline.monitoring import alerts
from tests.helpers import edit_params, free_port, loaded

SECRET = "T000-B000-s3cr3tT0k3n"


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 200
    delay = 0.0

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(self.delay)
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def receiver(status=200, delay=0.0):
    handler = type("Handler", (Receiver,), {"received": [], "status": status, "delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hooks/{SECRET}?token={SECRET}", handler.received
    finally:
        server.shutdown()
        server.server_close()


def test_the_webhook_comes_from_the_environment_checked():
    assert alerts.from_environment({}) is None and alerts.from_environment({alerts.VARIABLE: " "}) is None
    hook = alerts.from_environment(
        {alerts.VARIABLE: f"https://bot:{SECRET}@hooks.example.com:8443/x/{SECRET}"}
    )
    assert hook.shown == "https://hooks.example.com:8443"
    with pytest.raises(UserError, match="plain http only to a loopback") as error:
        alerts.from_environment({alerts.VARIABLE: f"http://hooks.example.com/{SECRET}"})
    for bad in (f"hooks.example.com/{SECRET}", f"ftp://{SECRET}", f"https://host:port{SECRET}/"):
        with pytest.raises(UserError, match="is not an https:// URL") as error:
            alerts.from_environment({alerts.VARIABLE: bad})
        assert SECRET not in str(error.value)


def test_a_post_arrives_as_json_and_prints_no_secret(capsys):
    with receiver() as (url, received):
        assert alerts.post(alerts.Webhook(url), alerts.payload("promoted", "m", "line", {}, "why"))
    ((path, kind, body),) = received
    assert path.startswith(f"/hooks/{SECRET}") and kind == "application/json"
    assert body["event"] == "promoted" and body["text"] == "line" and body["reason"] == "why"
    out = capsys.readouterr()
    assert "alert: promoted m sent to http://127.0.0.1:" in out.out
    assert SECRET not in out.out + out.err


@pytest.mark.parametrize("case", ["refused", "error", "slow"])
def test_a_dead_failing_or_slow_webhook_never_hangs_the_job(case, capsys):
    message = {"refused": "failed (ConnectionError)", "error": "answered 500", "slow": "no answer in 1 s"}
    started = time.monotonic()
    if case == "refused":
        url = f"http://127.0.0.1:{free_port()}/{SECRET}"  # nothing listens there
        assert not alerts.post(alerts.Webhook(url), alerts.payload("failed", "m", "t", {}, "r"), timeout=1)
    else:
        with receiver(status=500, delay=30 if case == "slow" else 0) as (url, _):
            assert not alerts.post(
                alerts.Webhook(url), alerts.payload("failed", "m", "t", {}, "r"), timeout=1
            )
    assert time.monotonic() - started < 5
    err = capsys.readouterr().err
    assert message[case] in err and "the failed alert was not delivered" in err and SECRET not in err


def register(name, promote):
    """A registered version without training (the registry is what the alert reads)."""
    client = mlflow.MlflowClient()
    with contextlib.suppress(mlflow.exceptions.MlflowException):
        client.create_registered_model(name)
    version = client.create_model_version(name, "file:///nowhere", None).version
    client.set_model_version_tag(name, version, "gate.reason", f"v{version} beats the champion")
    client.set_registered_model_alias(name, "challenger", version)
    if promote:
        client.set_registered_model_alias(name, "champion", version)
    return version


def test_each_promotion_of_a_cycle_is_announced(project, capsys):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    register("digits-classifier", promote=True)
    register("co2-forecaster", promote=True)

    def cycle():
        register("digits-classifier", promote=True)
        register("co2-forecaster", promote=False)
        print("retrain digits-classifier: batches b1 (+60 examples) · challenger v2 · promoted")
        print("retrain co2-forecaster: batches w1 (+13 examples) · challenger v2 · not promoted")
        return 0

    with receiver() as (url, received):
        assert alerts.announced(alerts.Webhook(url), cycle, None) == 0
    ((_, _, body),) = received  # the forecaster was not promoted: nothing to announce
    assert body["event"] == "promoted" and body["model"] == "digits-classifier"
    assert body["text"] == "retrain digits-classifier: batches b1 (+60 examples) · challenger v2 · promoted"
    assert body["versions"] == {"champion": "2", "challenger": "2", "previous_champion": "1"}
    assert body["reason"] == "v2 beats the champion"
    assert "retrain co2-forecaster" in capsys.readouterr().out  # the cycle's lines still reach the log


def test_a_failed_cycle_is_announced_and_still_fails(project):
    mlflow.set_tracking_uri(f"sqlite:///{project / 'mlruns' / 'mlflow.db'}")
    register("digits-classifier", promote=True)

    def cycle():
        print("retrain digits-classifier: no new data in data/incoming/digits")
        raise RuntimeError("disk full\nsecond line")

    with receiver() as (url, received):
        with pytest.raises(RuntimeError, match="disk full"):
            alerts.announced(alerts.Webhook(url), cycle, "digits-classifier")
    ((_, _, body),) = received
    assert body["event"] == "failed" and body["reason"] == "disk full"
    assert body["text"].startswith("retrain digits-classifier failed: disk full · before it: retrain digits")
    assert body["versions"] == {"champion": "1", "challenger": "1"}


def test_an_unreadable_registry_still_lets_a_failure_through(monkeypatch, capsys):
    def unreachable(model):
        raise mlflow.exceptions.MlflowException("API request to http://mlflow.internal:5000 failed")

    def cycle():
        raise mlflow.exceptions.MlflowException("the store is down")

    monkeypatch.setattr(alerts, "champions", unreachable)
    with receiver() as (url, received):
        with pytest.raises(mlflow.exceptions.MlflowException, match="the store is down"):
            alerts.announced(alerts.Webhook(url), cycle, None)
    ((_, _, body),) = received
    assert body["event"] == "failed" and body["reason"] == "the store is down"
    assert "cannot read the registry" in capsys.readouterr().err


@pytest.mark.slow
def test_make_retrain_announces_a_real_promotion_and_a_real_failure(retrain_project, monkeypatch, capsys):
    # a 1-epoch challenger on 200 original examples (the batch is always merged) against a champion
    # trained so too (retrain_project): with this margin any one is promoted
    edit_params(retrain_project, lambda p: p["retrain"]["gates"]["digits-classifier"].update(margin=-1.0))
    from tests.helpers import write_batch

    x, y = loaded(data.load("digits"), "train")
    write_batch(retrain_project / "data" / "incoming" / "digits" / "b1", x[:30], y[:30])
    with receiver() as (url, received):
        monkeypatch.setenv(alerts.VARIABLE, url)
        assert cli.main(["retrain", "--model", "digits-classifier"]) == 0
        assert cli.main(["retrain", "--model", "digits-clasifier"]) == 2
    (promoted, failed) = [body for _, _, body in received]
    assert promoted["event"] == "promoted" and promoted["model"] == "digits-classifier"
    assert promoted["versions"]["champion"] == "2" and promoted["versions"]["previous_champion"] == "1"
    assert promoted["text"].startswith("retrain digits-classifier: batches b1") and promoted["reason"]
    assert failed["event"] == "failed" and "unknown registered model 'digits-clasifier'" in failed["reason"]
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err
    assert np.isfinite(
        float(mlflow.MlflowClient().get_model_version("digits-classifier", "2").tags["gate_challenger"])
    )


def test_the_systemd_failure_notifier_posts_json(tmp_path):
    import os
    import subprocess

    from tests.helpers import REPO

    script = REPO / "deploy" / "systemd" / "notify-failure.sh"
    unit = (REPO / "deploy" / "systemd" / "dl-pipeline-retrain.service").read_text()
    assert "OnFailure=dl-pipeline-notify@%n.service" in unit
    assert (REPO / "deploy" / "systemd" / "dl-pipeline-notify@.service").is_file()
    with receiver() as (url, received):
        env = {"PATH": os.environ["PATH"], alerts.VARIABLE: url}
        done = subprocess.run(
            [script, "dl-pipeline-retrain.service"], env=env, capture_output=True, text=True
        )
    assert done.returncode == 0, done.stderr
    ((_, kind, body),) = received
    assert kind == "application/json" and body["event"] == "failed"
    assert body["unit"] == "dl-pipeline-retrain.service" and "failed on" in body["text"]
    assert SECRET not in done.stdout + done.stderr
    env = {"PATH": os.environ["PATH"], alerts.VARIABLE: f"http://127.0.0.1:{free_port()}/{SECRET}"}
    dead = subprocess.run([script, "x.service"], env=env, capture_output=True, text=True, timeout=30)
    assert dead.returncode == 1 and SECRET not in dead.stdout + dead.stderr
