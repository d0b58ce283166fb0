"""compare_runs.py: the Experiment Log table and the per-epoch plot from run folders."""
import json

import matplotlib.image
import pytest

import compare_runs


def evaluation(epoch, fid_value, kid, accuracy, n_real=(56, 895)):
    relative = {"Disgust": accuracy / 2, "Happy": accuracy * 1.5}
    per_emotion = {"Disgust": {"n_real": n_real[0], "fid": None, "relative_accuracy": relative["Disgust"]},
                   "Happy": {"n_real": n_real[1], "fid": fid_value, "relative_accuracy": relative["Happy"]}}
    return {"step": 100 * epoch, "epoch": epoch, "checkpoint": "checkpoint.npz", "split": "PublicTest",
            "extractor": "classifier", "extractor_id": "classifier-0123", "per_emotion": per_emotion,
            "mean": {"fid": fid_value, "kid": kid, "accuracy": accuracy, "rec_l1": 0.1,
                     "relative_accuracy": sum(relative.values()) / 2},
            "min": {"relative_accuracy": min(relative.values())}}


def make_run(folder, config, records):
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.fixture
def two_runs(tmp_path):
    t1 = make_run(tmp_path / "t1", {"run_name": "t1_base", "experiment": "ccyclegan_t1",
                                    "description": "baseline | U-Net", "notes": "lr 2e-4"},
                  [evaluation(1, 80.0, 0.9, 0.30), evaluation(2, 60.5, 0.5, 0.45)])
    t2 = make_run(tmp_path / "t2", {"script": "ccyclegan_t2.py"},
                  [evaluation(1, 70.0, 0.7, 0.40), evaluation(2, 40.25, 0.25, 0.70), evaluation(3, None, 0.2, 0.8)])
    return t1, t2


def test_table_and_png_from_two_runs(two_runs, tmp_path, capsys):
    out = tmp_path / "log"
    assert compare_runs.main([str(run) for run in two_runs] + ["--out", str(out)]) == 0
    table = (out / "experiment_log.md").read_text()
    assert table in capsys.readouterr().out
    header, rule, first, second, _, caption = table.strip().splitlines()
    assert caption == "Every row judged by the classifier `classifier-0123`."
    assert header == ("| id | script | description | FID | KID | expression accuracy | relative accuracy: mean "
                      "| min | per emotion | rec L1 | notes |")
    cells = [cell.strip() for cell in first.strip("|").split(" | ")]
    assert cells[:10] == ["t1_base", "ccyclegan_t1.py", "baseline \\| U-Net", "60.50", "0.5000", "0.450",
                          "0.450", "0.225", "Di 0.23 Ha 0.68", "0.100"]
    assert "2 evaluation(s), latest at epoch 2, step 200" in cells[10] and "N_real per emotion 56-895" in cells[10]
    assert "lr 2e-4" in cells[10]
    assert second.startswith("| t2 | ccyclegan_t2.py | T2") and "| n/a | 0.2000 | 0.800 | 0.800 | 0.400 |" in second
    image = matplotlib.image.imread(out / "experiment_log.png")
    assert image.shape[0] > 200 and image.shape[1] > 600
    assert image[..., :3].std() > 0.05     # something is drawn, not a blank canvas
    assert sorted(p.name for p in out.iterdir()) == ["experiment_log.md", "experiment_log.png"]


def test_runs_evaluated_with_other_extractors_are_flagged(two_runs, tmp_path):
    record = evaluation(1, 1.0, 0.1, 0.9)
    record["extractor_id"] = "classifier-9999"
    other = make_run(tmp_path / "other", None, [record])
    table = compare_runs.markdown_table([compare_runs.load_run(run) for run in (*two_runs, other)])
    assert "| other |  |  | 1.00 |" in table
    assert table.count("not comparable with the other runs") == 3
    assert table.strip().endswith("Rows judged by 2 different classifiers (`classifier-0123`, `classifier-9999`): "
                                  "compare only rows of one.")


@pytest.mark.parametrize("write, message", [
    (None, "metrics.jsonl: no metrics yet; evaluate the run first"),
    ("", "metrics.jsonl: empty"),
    ('{"mean": {}}\n{oops\n', "metrics.jsonl: line 2: not valid JSON"),
    ('{"step": 1}\n', "metrics.jsonl: line 1: not an evaluation record"),
])
def test_a_run_without_usable_metrics_is_one_error_line(tmp_path, capsys, write, message):
    run = tmp_path / "run"
    run.mkdir()
    if write is not None:
        (run / "metrics.jsonl").write_text(write)
    assert compare_runs.main([str(run), "--out", str(tmp_path / "log")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "log").exists()


def test_readme_experiment_log_is_generated_between_its_markers(two_runs, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n## Experiment Log\n<!-- experiment-log:start -->\ntyped by hand\n"
                      "<!-- experiment-log:end -->\n\n## Next\n")
    argv = [str(run) for run in two_runs] + ["--out", str(tmp_path / "docs"), "--readme", str(readme)]
    assert compare_runs.main(argv) == 0
    first = readme.read_text()
    assert first.startswith("# Title\n\n## Experiment Log\n<!-- experiment-log:start -->\n")
    assert first.endswith("<!-- experiment-log:end -->\n\n## Next\n") and "typed by hand" not in first
    assert (tmp_path / "docs" / "experiment_log.md").read_text() in first
    assert "![FID, KID, expression accuracy, relative accuracy (mean, minimum) and reconstruction L1 per training step](docs/experiment_log.png)" in first
    assert compare_runs.main(argv) == 0
    assert readme.read_text() == first          # regenerating changes nothing


def test_readme_without_markers_is_an_error_before_anything_is_written(two_runs, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n")
    argv = [str(run) for run in two_runs] + ["--out", str(tmp_path / "docs"), "--readme", str(readme)]
    assert compare_runs.main(argv) == 2
    assert "README.md: no '<!-- experiment-log:start -->'" in capsys.readouterr().err
    assert readme.read_text() == "# Title\n" and not (tmp_path / "docs").exists()


def test_the_plot_never_joins_evaluations_that_are_not_comparable(tmp_path):
    quick = [dict(evaluation(epoch, 50.0, 0.5, 0.3), max_per_class=100) for epoch in (1, 2, 3)]
    full = [dict(evaluation(4, 40.0, 0.4, 0.4), max_per_class=None)]
    other_judge = [dict(evaluation(5, 30.0, 0.3, 0.5), max_per_class=None, extractor_id="classifier-4567")]
    run = compare_runs.load_run(make_run(tmp_path / "run", None, quick + full + other_judge))
    series = compare_runs.comparable_series(run)
    assert [len(records) for records in series.values()] == [3, 1, 1]
    figure_path = compare_runs.plot_runs([run], tmp_path / "plot.png")
    import matplotlib.pyplot as plt
    assert figure_path.is_file() and not plt.get_fignums()  # written and closed


def test_the_plot_draws_only_the_latest_judges_evaluations(tmp_path, monkeypatch):
    """After a judge change the old judge's curve is on another scale: only the new one is drawn."""
    old_judge = [dict(evaluation(epoch, 50.0, 0.5, 0.3), max_per_class=None) for epoch in (1, 2, 3)]
    new_judge = [dict(evaluation(3, 30.0, 0.3, 0.5), max_per_class=None, extractor_id="classifier-4567")]
    run = compare_runs.load_run(make_run(tmp_path / "run", None, old_judge + new_judge))
    figures = []
    monkeypatch.setattr(compare_runs.plt, "close", figures.append)
    compare_runs.plot_runs([run], tmp_path / "plot.png")
    fid_panel = figures[0].axes[0]
    assert [list(line.get_ydata()) for line in fid_panel.get_lines()] == [[30.0]]


def test_every_series_has_its_own_look_and_the_legend_covers_no_panel(tmp_path, monkeypatch):
    """The log has more runs than tab10 has colours: each keeps a colour/marker of its own, and
    every run is named in a legend below the panels, not over a curve."""
    runs = [compare_runs.load_run(make_run(tmp_path / f"run{i:02d}", {"run_name": f"run{i:02d}"},
                                           [evaluation(1, 50.0 + i, 0.5, 0.3), evaluation(2, 40.0 + i, 0.4, 0.4)]))
            for i in range(23)]
    figures = []
    monkeypatch.setattr(compare_runs.plt, "close", figures.append)
    compare_runs.plot_runs(runs, tmp_path / "plot.png")
    figure = figures[0]
    looks = [(line.get_color(), line.get_marker()) for line in figure.axes[0].get_lines()]
    assert len(looks) == 23 and len(set(looks)) == 23
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()][:23] == [f"run{i:02d}" for i in range(23)]
    renderer = figure.canvas.get_renderer()
    legend_box = legend.get_window_extent(renderer)
    assert not any(legend_box.overlaps(ax.get_tightbbox(renderer)) for ax in figure.axes)
