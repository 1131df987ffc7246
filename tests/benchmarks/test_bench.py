"""The benchmark code runs (tiny sizes); its figures are reported, never asserted."""

import os

import mlflow
import pytest

from benchmarks import __main__ as benchmarks_cli
from benchmarks import bench, scratch, summary


def test_summary_and_render():
    assert summary([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    results = {
        "measured": "now",
        "machine": {"cores": "2", "cpu": "x", "tensorflow": "t", "keras": "k", "mlflow": "m"},
        "overhead": {"throughput_ratio": summary([0.9, 1.0])},
    }
    assert "| overhead: throughput_ratio | 0.950 | 0.900 | 1.000 | 2 |" in bench.render(results)


@pytest.mark.slow
def test_overhead_data_prep_inference_and_serving_run_in_a_scratch_project(bare_project):
    project = bare_project
    store = project / "mlruns" / "mlflow.db"
    with scratch.project() as scratch_project, scratch_project.active():
        folder = scratch_project.root
        assert folder != project
        over = bench.overhead(repeats=1, epochs=1)
        assert over["throughput_ratio"]["n"] == 1 and over["bare_samples_per_s"]["median"] > 0
        assert over["warmup_rounds"] == 1  # trained, not counted
        client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])  # the scratch store
        task = client.get_experiment_by_name("digits-classification")
        assert len(client.search_runs([task.experiment_id])) == 2
        prep = bench.data_prep(scratch_project, repeats=1, count=100)
        assert prep["images"] == 100 and prep["peak_memory_mib"]["median"] > 10
        assert bench.inference(scratch_project, repeats=1)["images"] == 100
        served = bench.serving(scratch_project, repeats=1, requests_per_size=4)
        assert served["server_64_requests_per_s"]["median"] > 0 and served["server_1_over_pyfunc"]["n"] == 1
    assert not folder.exists() and not store.exists()  # nothing written to the user's project


@pytest.mark.integration  # trains svc, reads the store in a child process
def test_store_sizes_name_each_run_and_sum_their_durations(project):
    from tests.helpers import train

    train("svc", ["train.limit=100"])
    total, by_run, seconds = bench.store_sizes(project)
    assert set(by_run) == {"svc"} and 0 < by_run["svc"] <= total
    assert seconds > 0
    assert bench.store_sizes_apart(project) == (total, by_run, seconds)  # the same, read in a child
    rendered = bench.render(
        {
            "measured": "now",
            "machine": {"cores": "2", "cpu": "x", "tensorflow": "t", "keras": "k", "mlflow": "m"},
            "train_all": {"artifacts_mib_by_run": by_run},
        }
    )
    assert "| svc |" in rendered


@pytest.mark.parametrize("command, bad", [("bench", "--only=nothing"), ("soak", "--cycles=0")])
def test_every_harness_has_help_and_refuses_a_bad_flag(command, bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        benchmarks_cli.main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m benchmarks {command}")
    with pytest.raises(SystemExit) as exit_:
        benchmarks_cli.main([command, bad])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(f"python -m benchmarks {command}: error:")
