"""What train-all prints: one line per experiment and a table per task, the best per problem marked."""

from pipeline.workflows import console


def summary(name, value, task="digits-transfer", problem="5-9", higher=True, seconds=1.0):
    return console.Summary(
        name, task, problem, "test_accuracy", value, higher, seconds, 12, 9, "abcdef123456"
    )


def test_the_best_is_marked_per_problem_and_direction():
    rows = [summary("pretrain", 1.0, problem="0-4"), summary("feature", 0.91), summary("scratch", 0.90)]
    lines = console.tables(rows).splitlines()
    assert lines[0] == "digits-transfer (test_accuracy, higher is better)"
    marked = [line.split()[1] for line in lines[1:] if line.strip().startswith("★")]
    assert sorted(marked) == ["feature", "pretrain"]  # pretrain never competes with the 5-9 runs
    lower = [summary("naive", 0.93, "co2", "w", False), summary("lstm", 0.44, "co2", "w", False)]
    (best,) = [line for line in console.tables(lower).splitlines() if "★" in line]
    assert "lstm" in best


def test_a_result_line_says_the_metric_epochs_and_time():
    line = console.result_line(summary("cnn-same", 0.99444, seconds=18.25))
    assert (
        line
        == "cnn-same: test_accuracy 0.9944 · 12 epochs, best at 9 · 18.2 s · digits-transfer · run abcdef12"
    )


def test_a_log_gets_lines_and_no_bars(capsys):
    import io

    stream = io.StringIO()
    with console.Progress(stream=stream) as progress:
        progress.epoch("mlp", 1, 10)  # not a terminal: no bar
        progress.finished("mlp: done")
    assert stream.getvalue() == "mlp: done\n"
