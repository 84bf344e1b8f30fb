# Names derived from config, and (after the validate checkpoint) from the clip table: the chunks.
import functools
import os

from audiofold.backbones import declared_sample_rate
from audiofold.clips import chunk_names, read_clips

R = config["results_dir"]
N_FOLDS = config["cv"]["n_folds"]
FOLDS = list(range(N_FOLDS))
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


def optional(path):
    """A named input that may be null in config: empty then (the script sees no file)."""
    return path or []


@functools.lru_cache(maxsize=4)
def _clip_table(path, mtime_ns):
    return read_clips(path)


def clip_table():
    """The validated clip table (id, split, path, chunk, action): known once the validate checkpoint ran."""
    path = checkpoints.validate.get().output.clips
    return _clip_table(path, os.stat(path).st_mtime_ns)


def chunks(split):
    """Embedding shards (chunks of clips, independent of folds) of one split: train0.., test0.."""
    return chunk_names(clip_table(), split)


def chunk_rows(shard):
    """(id, path, action) of one chunk's clips, in clip-table order: the embed job's param, so a job
    reruns exactly when its own clip list changes."""
    table = clip_table()
    return table.loc[table["chunk"] == shard, ["id", "path", "action"]].values.tolist()


def chunk_audio(wc):
    """The audio files one embed job reads: an edited file reruns only its chunk."""
    return [path for _, path, action in chunk_rows(wc.shard) if action == "decode"]


def embeddings(backbone, split):
    return [f"{R}/embeddings/{backbone}/{s}.npz" for s in chunks(split)]


def final_outputs():
    return [rules.submit.output.submission, rules.metrics.output.metrics]


wildcard_constraints:
    backbone="|".join(BACKBONES),
    head="|".join(HEADS),
    shard=r"(train|test)\d+",
    fold=r"\d+",
