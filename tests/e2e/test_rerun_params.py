"""Each rule's params are the config keys it reads, one param per key: after a real run, changing one
key reruns only the jobs that read it (and what follows them), as `snakemake -n` plans it."""

import pytest
import yaml

from conftest import demo_config, jobs_to_run

# One worker runs the whole module, so its module-scoped run is made once.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rerun_params")]

DOWNSTREAM_OF_EMBED = {
    "embed",
    "train",
    "refit",
    "collect_oof",
    "shift",
    "duplicates",
    "calibrate",
    "blend",
    "blend_nested",
    "submit",
    "report",
    "all",
}
ENSEMBLE = {"blend", "blend_nested", "submit", "report", "all"}


@pytest.fixture(scope="module")
def done(tmp_path_factory, finished_runs):
    """The small regression demo, run in full."""
    return finished_runs.copy(demo_config("regression"), tmp_path_factory.mktemp("rerun"))


def _planned(wd, change: dict) -> set[str]:
    (wd / "change.yaml").write_text(yaml.safe_dump(change))
    return set(jobs_to_run(wd, "--configfile", str(wd / "config.yaml"), str(wd / "change.yaml")))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, set()),
        ({"blend": {"step": 0.25}}, ENSEMBLE),
        ({"blend": {"max_candidates": 3}}, ENSEMBLE),
        ({"blend": {"method": "greedy"}}, ENSEMBLE),
        ({"blend": {"greedy_rounds": 10}}, ENSEMBLE),
        ({"submission": {"round": "never"}}, ENSEMBLE),
        ({"submission": {"threshold": 0.3}}, {"submit", "all"}),
        ({"calibrate": {"enabled": False}}, {"calibrate"} | ENSEMBLE),
        ({"cache_dir": "elsewhere"}, set()),
        ({"resources": {"gpu_heads": ["linear"]}}, set()),
        ({"duplicates": {"threshold": 0.99}}, {"duplicates", "report", "all"}),
        ({"duplicates": {"backbone": "mfcc"}}, {"duplicates", "report", "all"}),
        ({"cv": {"group_duplicates": False}}, {"prepare"} | DOWNSTREAM_OF_EMBED - {"embed", "shift"}),
        ({"cv": {"auto_groups_threshold": 0.3}}, set()),  # the demo has no pseudo-groups under auto
        # its own embed jobs (backbone auto_groups), then the folds and all training; no other backbone re-embeds
        ({"cv": {"auto_groups": True}}, {"auto_groups", "prepare", "embed"} | DOWNSTREAM_OF_EMBED - {"shift"}),
        ({"pseudo_labels": {"min_confidence": 0.9}}, set()),  # disabled: its settings are no job's params
        ({"pseudo_labels": {"enabled": True}}, {"train", "refit", "collect_oof", "calibrate"} | ENSEMBLE),
    ],
    ids=[
        "nothing",
        "blend.step",
        "blend.max_candidates",
        "blend.method",
        "blend.greedy_rounds",
        "submission.round",
        "submission.threshold",
        "calibrate.enabled",
        "cache_dir",
        "resources",
        "duplicates.threshold",
        "duplicates.backbone",
        "cv.group_duplicates",
        "cv.auto_groups_threshold (demo: inactive)",
        "cv.auto_groups",
        "pseudo_labels.min_confidence (disabled)",
        "pseudo_labels.enabled",
    ],
)
def test_a_key_reruns_only_what_reads_it(done, change, expected):
    assert _planned(done, change) == expected


def test_audio_max_seconds_reruns_embedding_but_not_prepare(done):
    planned = _planned(done, {"audio": {"max_seconds": 30}})
    # the embed jobs themselves are listed only once the validate checkpoint has run again
    assert "validate" in planned and planned <= {"validate"} | DOWNSTREAM_OF_EMBED, planned
    assert "prepare" not in planned and "demo_data" not in planned


def test_under_bad_audio_skip_prepare_reads_the_clip_table(done):
    # skip drops bad training rows from the targets, so there the clip table (and audio.*) feeds prepare
    planned = _planned(done, {"audio": {"bad_audio": "skip"}})
    assert {"validate", "prepare"} <= planned, planned
