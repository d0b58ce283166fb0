"""Compare training runs: a markdown Experiment Log and a PNG of FID, KID and accuracies per training step.

    python compare_runs.py saved_models/t1_base saved_models/t2_paper --out docs [--readme README.md]

Reads each run folder's config.json (run_name, script or experiment, description or the script's
docstring, notes; all optional) and metrics.jsonl (written by evaluate.py and its training
callback). The table shows each run's latest evaluation; the plot shows every evaluation. Writes
<out>/experiment_log.md and <out>/experiment_log.png and prints the table; --readme also puts both
between the Experiment Log markers of README.md, so that log is generated, not typed.
"""
from __future__ import annotations

import argparse
import ast
import math
import os
import pathlib
import sys
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # files only; no screen needed
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

import atomic  # noqa: E402
import experiments  # noqa: E402
import run_folder  # noqa: E402
from repo import REPO_ROOT  # noqa: E402

TABLE_FILE = "experiment_log.md"
PLOT_FILE = "experiment_log.png"
README_START, README_END = "<!-- experiment-log:start -->", "<!-- experiment-log:end -->"


class CompareError(ValueError):
    """A run folder that cannot be compared; the message is one line naming the file."""


@dataclass
class Run:
    folder: pathlib.Path
    config: dict
    records: list[dict] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.config.get("run_name") or self.folder.name)

    @property
    def script(self) -> str:
        """config "script", or the trainer's "experiment" module name as a file name."""
        if self.config.get("script"):
            return str(self.config["script"])
        return f"{self.config['experiment']}.py" if self.config.get("experiment") else ""

    @property
    def description(self) -> str:
        """config "description", else the first line of the experiment script's docstring."""
        text = self.config.get("description") or ""
        script = REPO_ROOT / self.script
        # Only a registered script's docstring: a run folder's config must not point at other files.
        if not text and self.script in {f"{name}.py" for name in experiments.EXPERIMENTS} and script.is_file():
            try:
                text = ast.get_docstring(ast.parse(script.read_text())) or ""
            except (SyntaxError, ValueError, OSError):  # not a Python script (binary, unreadable): no docstring
                text = ""
        return str(text).strip().splitlines()[0] if str(text).strip() else ""


def load_run(folder) -> Run:
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise CompareError(f"{folder}: {'a file, not a' if folder.exists() else 'no such'} run folder")
    metrics = folder / run_folder.METRICS
    if not metrics.exists():
        raise CompareError(f"{metrics}: no metrics yet; evaluate the run first: python evaluate.py {folder}")
    try:
        config = run_folder.read_config(folder, missing_ok=True)
        records = run_folder.read_metrics(folder, check=_checked_numbers)
    except run_folder.RunFolderError as err:
        raise CompareError(str(err)) from None
    if "experiment" in config and config["experiment"] not in experiments.EXPERIMENTS:
        raise CompareError(f"{folder / run_folder.CONFIG}: unknown experiment {config['experiment']!r}; "
                           f"known: {', '.join(experiments.EXPERIMENTS)}")
    if not records:
        raise CompareError(f"{metrics}: empty; evaluate the run first: python evaluate.py {folder}")
    return Run(folder, config, records)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _checked_numbers(record: dict, where: str) -> dict:
    """The record, if the numbers the log shows are numbers or null; a bare NaN (older files) becomes null."""
    for name, holder in (("step", record), ("epoch", record), ("fid", record["mean"]), ("kid", record["mean"]),
                         ("accuracy", record["mean"]), ("relative_accuracy", record["mean"]),
                         ("rec_l1", record["mean"]), ("relative_accuracy", record.setdefault("min", {}))):
        value = holder.get(name)
        if value is not None and not _is_number(value):
            raise run_folder.RunFolderError(f"{where}: {name} {value!r} is not a number")
        if value is not None and not math.isfinite(value):
            holder[name], holder[f"{name}_nonfinite"] = None, True
    return record


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _notes(run: Run, latest: dict, extractors: set[str]) -> str:
    per_emotion = latest.get("per_emotion", {})
    n_real = [m["n_real"] for m in per_emotion.values() if isinstance(m, dict) and _is_number(m.get("n_real"))]
    at = ", ".join(f"{key} {latest[key]}" for key in ("epoch", "step") if latest.get(key) is not None)
    notes = [f"{len(run.records)} evaluation(s), latest at {at or 'unknown step'}",
             f"{latest.get('split', '?')}, {latest.get('extractor', '?')} features",
             f"N_real per emotion {min(n_real)}-{max(n_real)}" if n_real else "N unknown"]
    if len(extractors) > 1:
        notes.append(f"extractor {latest.get('extractor_id', '?')}: not comparable with the other runs")
    if run.config.get("notes"):
        notes.append(str(run.config["notes"]))
    return "; ".join(notes)


def _relative_per_emotion(latest: dict) -> str:
    """Relative expression accuracy per target emotion, e.g. "An 0.91 Di 0.12 ..."."""
    cells = [f"{name[:2]} {_number(m.get('relative_accuracy'), 2)}"
             for name, m in latest.get("per_emotion", {}).items() if isinstance(m, dict)]
    return " ".join(cells) if any("n/a" not in cell for cell in cells) else "n/a"


def markdown_table(runs: list[Run]) -> str:
    """The Experiment Log: one row per run, from its latest evaluation."""
    extractors = {run.records[-1].get("extractor_id", "?") for run in runs}
    rows = ["| id | script | description | FID | KID | expression accuracy | relative accuracy: mean | min "
            "| per emotion | rec L1 | notes |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        latest = run.records[-1]
        mean = latest["mean"]
        cells = [run.id, run.script, run.description, _number(mean.get("fid"), 2), _number(mean.get("kid"), 4),
                 _number(mean.get("accuracy"), 3), _number(mean.get("relative_accuracy"), 3),
                 _number(latest.get("min", {}).get("relative_accuracy"), 3), _relative_per_emotion(latest),
                 _number(mean.get("rec_l1"), 3), _notes(run, latest, extractors)]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    judges = ", ".join(f"`{extractor}`" for extractor in sorted(extractors))
    caption = (f"Every row judged by the classifier {judges}." if len(extractors) == 1 else
               f"Rows judged by {len(extractors)} different classifiers ({judges}): compare only rows of one.")
    return "\n".join(rows) + "\n\n" + caption + "\n"


PANELS = (("fid", "mean FID ({extractor} features)"), ("kid", "mean KID ({extractor} features)"),
          ("accuracy", "expression accuracy (mean)"), ("relative_accuracy", "relative accuracy (mean)"),
          ("min_relative_accuracy", "relative accuracy (minimum)"), ("rec_l1", "reconstruction L1"))
SERIES_MARKERS = ("o", "s", "^", "D", "v")
LEGEND_COLUMNS, LEGEND_ROW_INCHES = 3, 0.22
RELATIVE_PANELS = ("relative_accuracy", "min_relative_accuracy")  # where 1.0 is "as recognisable as real faces"


def _panel_value(record: dict, key: str):
    return record.get("min", {}).get("relative_accuracy") if key == "min_relative_accuracy" else record["mean"].get(key)


def comparable_series(run: Run) -> dict:
    """The run's evaluations grouped by what makes numbers comparable (split, --max_per_class,
    classifier): {(split, max_per_class, extractor_id): [record, ...]}, in log order."""
    series = {}
    for record in run.records:
        key = (record.get("split"), record.get("max_per_class"), record.get("extractor_id"))
        series.setdefault(key, []).append(record)
    return series


def plot_runs(runs: list[Run], path) -> pathlib.Path:
    """FID, KID, accuracy, mean and minimum relative accuracy and reconstruction L1 against the
    training step: one line per run and kind of evaluation (never joining evaluations of another
    split, --max_per_class or classifier), a lone evaluation as a point; written atomically. Only
    evaluations by the classifier of the run's latest (the table's) are drawn: an older judge's
    numbers are on another scale."""
    curves = []
    for run in runs:
        judge = run.records[-1].get("extractor_id")
        series = {key: records for key, records in comparable_series(run).items() if key[2] == judge}
        for (split, max_per_class, _), records in series.items():
            label = run.id if len(series) == 1 else f"{run.id} ({split}, max_per_class {max_per_class})"
            curves.append((label, records))
    figure, axes = plt.subplots(2, len(PANELS) // 2, figsize=(15, 7.6), sharex=True)
    axes = axes.ravel()
    for index, (label, records) in enumerate(curves):
        x = [record.get("step") if record.get("step") is not None else i + 1 for i, record in enumerate(records)]
        # tab10 has ten colours: past ten series the marker tells them apart.
        style = dict(color=f"C{index % 10}", marker=SERIES_MARKERS[index // 10 % len(SERIES_MARKERS)],
                     linestyle="-" if len(records) > 1 else "none", label=label)
        for ax, (key, _) in zip(axes, PANELS):
            y = [_panel_value(record, key) for record in records]
            ax.plot(x, [float("nan") if v is None else v for v in y], **style)
    extractor = runs[0].records[-1].get("extractor", "?")
    for ax, (_, title) in zip(axes, PANELS):
        ax.set_title(title.format(extractor=extractor))
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))  # five-digit steps, no overlap
    panel = {key: ax for ax, (key, _) in zip(axes, PANELS)}
    panel["accuracy"].axhline(1 / 7, color="grey", linestyle=":", label="chance (1/7)")
    panel["accuracy"].set_ylim(0, 1)
    for key in RELATIVE_PANELS:
        panel[key].axhline(1.0, color="grey", linestyle=":", label="as recognisable as real faces")
        panel[key].set_ylim(bottom=0)
    panel["rec_l1"].set_ylim(bottom=0)
    handles = {}  # each label once: the runs (every panel has them) and the two reference lines
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # The legend goes below the panels, in a strip the figure grows by, so it covers no curve.
    legend_inches = LEGEND_ROW_INCHES * math.ceil(len(handles) / LEGEND_COLUMNS)
    figure.set_figheight(figure.get_figheight() + legend_inches)
    figure.legend(handles.values(), handles.keys(), loc="lower center", ncol=LEGEND_COLUMNS, fontsize="small",
                  frameon=False)
    figure.tight_layout(rect=(0, legend_inches / figure.get_figheight(), 1, 1))
    with atomic.replacing(path) as temporary:
        figure.savefig(temporary, dpi=100)
    plt.close(figure)
    return pathlib.Path(path)


def readme_with_log(readme, table: str, plot: pathlib.Path) -> str:
    """`readme`'s text with the table and plot between its Experiment Log markers."""
    readme = pathlib.Path(readme)
    try:
        text = readme.read_text() if readme.is_file() else ""
    except (ValueError, OSError) as err:
        raise CompareError(f"{readme}: not a readable text file ({err})") from None
    # Markers count only on lines of their own: prose may quote them.
    start, end = text.find(f"\n{README_START}\n") + 1, text.find(f"\n{README_END}\n") + 1
    if start < 1 or end < start:
        raise CompareError(f"{readme}: no '{README_START}' ... '{README_END}' lines to put the log between")
    image = os.path.relpath(plot.resolve(), readme.resolve().parent)
    return (text[:start] + f"{README_START}\n<!-- generated by compare_runs.py; do not edit by hand -->\n\n"
            f"{table}\n![FID, KID, expression accuracy, relative accuracy (mean, minimum) and reconstruction L1 per training step]({image})\n" + text[end:])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", help="run folders (saved_models/<run>) holding metrics.jsonl")
    parser.add_argument("--out", default="docs", help="folder for experiment_log.md and experiment_log.png")
    parser.add_argument("--readme", default=None, help="also put the table and plot into this markdown file, "
                        f"between its {README_START} and {README_END} lines (e.g. README.md)")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    try:
        if out.exists() and not out.is_dir():
            raise CompareError(f"{out}: --out must be a folder (this is a file)")
        runs = [load_run(folder) for folder in args.run_dirs]
        table = markdown_table(runs)
        readme = readme_with_log(args.readme, table, out / PLOT_FILE) if args.readme else None
        atomic.write_text(out / TABLE_FILE, table)
        plot = plot_runs(runs, out / PLOT_FILE)
        if readme is not None:
            atomic.write_text(pathlib.Path(args.readme), readme)
    except CompareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # an unwritable --out or README: what was written before it stays whole
        print(f"error: {err.filename or out}: cannot write ({err.strerror or err})", file=sys.stderr)
        return 2
    print(table)
    print(f"wrote {out / TABLE_FILE} and {plot}")
    if readme is not None:
        print(f"updated the Experiment Log in {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
