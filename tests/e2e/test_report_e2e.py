"""A small classification run, its `snakemake --report` HTML rendered in headless Chromium, and
`audiofold status` on the same results."""

import base64
import json
import re
import subprocess

import pytest

from audiofold.cli import main as cli
from audiofold.cli.status import collect_status
from audiofold.clips import chunk_names, read_clips

from conftest import demo_config, find_tool, requires_tool, snakemake

# One worker runs the whole module, so its module-scoped run is made once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("report")]

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, finished_runs):
    wd = finished_runs.copy(demo_config("classification"), tmp_path_factory.mktemp("report"))
    snakemake(wd, "--report", str(wd / "report.html"))
    return wd


CHROMIUM = ("chromium", "chromium-browser")


def _render(html, tmp_path, *args):
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        find_tool(*CHROMIUM),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
        html.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def test_report_has_every_section_and_image(run_dir):
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    # Snakemake 9 writes one self-contained page: results are embedded as base64 data URIs.
    pngs = [base64.b64decode(m) for m in re.findall(r"data:image/png;[^,]*base64,([A-Za-z0-9+/=]+)", html)]
    assert len(pngs) >= 4 and all(p.startswith(b"\x89PNG") and len(p) > 1000 for p in pngs)
    for name in ("scores.png", "oof_vs_truth.png", "blend_weights.png", "calibration.png", "scores_table.html"):
        assert name in html, name
    for caption in (
        "trivial predictor",
        "confusion matrix",
        "judged by LWLRAP",
        "grid search",
        "the score after calibration",
    ):  # one from each .rst caption
        assert caption in html, caption
    table = base64.b64decode(
        re.search(r"data:text/html;[^,]*filename=scores_table.html;base64,([A-Za-z0-9+/=]+)", html).group(1)
    )
    assert b"BLEND" in table and b"blend weight" in table and b"fold 2" in table


@requires_tool(*CHROMIUM, why="renders the Snakemake HTML report headless")
def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    page = run_dir / "report.html"
    dom = _render(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page is a JavaScript app: the section names are visible text only once it has run.
    visible = re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom.stdout, flags=re.S))
    visible = " ".join(visible.split())
    for section in ("Results", "1. Scores", "2. OOF predictions", "3. Blend", "4. Calibration"):
        assert section in visible, (section, visible[:1000])

    shot = tmp_path / "shot.png"
    done = _render(page, tmp_path, f"--screenshot={shot}", "--window-size=1200,900")
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    lo, hi = pixels.getextrema()
    assert hi - lo > 100, "the rendered report is blank"


def test_status_reads_the_run(run_dir, capsys):
    status = collect_status(run_dir / "results")
    assert sorted(status["embeddings"]) == ["logmel", "mfcc"]
    clips = read_clips(run_dir / "results/validation/clips.csv")
    chunks = chunk_names(clips, "train") + chunk_names(clips, "test")
    assert sorted(status["embeddings"]["logmel"]) == sorted(chunks) and len(chunks) >= 2
    assert status["preds"]["mfcc/knn"] == [0, 1, 2]
    assert status["primary"] == json.loads((run_dir / "results/metrics.json").read_text())["primary"]
    assert set(status["scores"]) == {f"{b}/{h}/main" for b in ("logmel", "mfcc") for h in ("linear", "knn")}
    assert status["blend"]["in_sample"] and status["blend"]["nested"] and status["submission"]

    assert cli(["status", "--results", str(run_dir / "results")]) == 0
    out = capsys.readouterr().out
    assert "mfcc/knn: 0, 1, 2" in out and "blend OOF" in out and "submission.csv: written" in out
