# Names derived from config alone, so the whole DAG is known before any data is read.
import functools
import hashlib
import os

from snakemake.io import contains_wildcard

from audiofold.backbones import declared_sample_rate

R = config["results_dir"]
N_FOLDS = config["cv"]["n_folds"]
FOLDS = list(range(N_FOLDS))
TRAIN_SHARDS = [f"fold{k}" for k in FOLDS]
TEST_SHARDS = [f"test{j}" for j in range(config["audio"]["test_shards"])]
BACKBONES = list(config["backbones"])
HEADS = list(config["heads"])
DATA = config["data"]


def backbone_sr(backbone):
    return declared_sample_rate(config["backbones"][backbone])


def gpus(section, name):
    """GPUs one job of this backbone/head asks the executor for: listed in resources.gpu_<section>, or device cuda."""
    listed = config["resources"].get(f"gpu_{section}", [])
    return int(name in listed or config[section][name].get("device") == "cuda")


def head_backbones(head):
    """Backbones a head trains on: its `backbones` list, else all of them."""
    return config["heads"][head].get("backbones", BACKBONES)


def head_params(head):
    """A head's own options (its `backbones` list only picks where it runs)."""
    return {k: v for k, v in config["heads"][head].items() if k != "backbones"}


# (backbone, head) pairs trained, collected and offered to the blend
CANDIDATES = [(b, h) for b in BACKBONES for h in HEADS if b in head_backbones(h)]


def table_inputs():
    return [p for p in (DATA["train_csv"], DATA["test_csv"], DATA["sample_submission"]) if p]


def audio_dirs():
    return sorted({d for d in (DATA["train_audio_dir"], DATA.get("test_audio_dir")) if d})


@functools.cache
def _audio_listing():
    """(path, path inside its folder, size, mtime_ns) of each regular file in the audio folders (hidden ones left out).

    Listed once per Snakemake invocation. Entries that are not readable files (a symlink loop, a
    dangling link) are left to prepare/validate, which report them under the bad-audio policy.
    """
    out = []
    for d in audio_dirs():
        for root, dirs, files in os.walk(d):
            dirs[:] = sorted(n for n in dirs if not n.startswith("."))
            for name in sorted(files):
                path = os.path.join(root, name)
                if name.startswith(".") or not os.path.isfile(path):
                    continue
                st = os.stat(path)
                out.append((path, os.path.relpath(path, d), st.st_size, st.st_mtime_ns))
    return out


def audio_inputs(wildcards):
    """The clips prepare and validate read, so an added, removed or newer clip reruns them and what follows.

    With demo data the folders are the demo rule's outputs (they do not exist before it runs).
    """
    if config["demo"]["enabled"]:
        return audio_dirs()
    # Snakemake reads "{x}" in any input path as a wildcard and has no escape: such names are left
    # out here and tracked by audio_fingerprint alone.
    return [entry[0] for entry in _audio_listing() if not contains_wildcard(entry[0])]


def audio_fingerprint(wildcards):
    """Hash of every clip's path, size and mtime: also catches a clip replaced by an older file
    (``cp -p``, ``rsync -t``), which the newer-than-output check misses."""
    if config["demo"]["enabled"]:
        return ""
    listing = "\n".join(f"{rel}\t{size}\t{mtime}" for _, rel, size, mtime in _audio_listing())
    return hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()


def embeddings(backbone, shards):
    return [f"{R}/embeddings/{backbone}/{s}.npz" for s in shards]


def final_outputs():
    return [f"{R}/submission.csv", f"{R}/metrics.json"]


wildcard_constraints:
    backbone="|".join(BACKBONES),
    head="|".join(HEADS),
    shard=r"(fold|test)\d+",
    fold=r"\d+",
    sr=r"\d+",
