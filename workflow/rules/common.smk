# Names derived from config, and (after the validate checkpoint) from the clip table: the chunks.
import functools
import hashlib
import os

from audiofold.backbones import backbone_class, declared_sample_rate, split_backbone_config
from audiofold.clips import chunk_names, read_clips

R = config["results_dir"]
N_FOLDS = config["cv"]["n_folds"]
FOLDS = list(range(N_FOLDS))
BACKBONES = list(config["backbones"])
HEADS = list(config["heads"])
DATA = config["data"]
# near duplicates are looked for in this backbone's embeddings
DUPLICATES_BACKBONE = config["duplicates"]["backbone"] or BACKBONES[0]
# Pseudo-groups (cv.auto_groups) only where the table names no groups and no folds: otherwise the
# auto_groups step is not in the graph and prepare reads what it always did.
AUTO_GROUPS = (
    config["cv"]["auto_groups"] is not False
    and not DATA["group_column"]
    and not DATA["fold_column"]
    and (config["cv"]["auto_groups"] is True or not config["demo"]["enabled"])
)


def groups_backbone():
    """(name under `backbones` whose embeddings the auto_groups step reuses, or None; the backbone's options)."""
    chosen = config["cv"]["auto_groups_backbone"]
    if isinstance(chosen, str):
        return chosen, config["backbones"][chosen]
    same = [name for name, options in config["backbones"].items() if options == chosen]
    return (same[0] if same else None), chosen


GROUPS_BACKBONE, GROUPS_BACKBONE_OPTIONS = groups_backbone()
# The auto_groups step's embeddings: a configured backbone's, else its own, made by embed jobs per
# training chunk (cached and restartable like any backbone's) under this name.
GROUPS_EMBEDDING = GROUPS_BACKBONE or "auto_groups"
EMBEDDED = BACKBONES + ([GROUPS_EMBEDDING] if AUTO_GROUPS and not GROUPS_BACKBONE else [])
if AUTO_GROUPS and not GROUPS_BACKBONE and "auto_groups" in config["backbones"]:
    from audiofold.errors import ConfigError

    raise ConfigError(
        "config.yaml: backbones.auto_groups: the name is taken by the auto_groups step's own embeddings "
        "(cv.auto_groups_backbone, here other options); rename the backbone, or set "
        "cv.auto_groups_backbone: auto_groups to cluster on it."
    )


def backbone_options(name):
    """Options of a backbone the embed step runs: a configured one, or the auto_groups step's own."""
    return config["backbones"][name] if name in config["backbones"] else GROUPS_BACKBONE_OPTIONS


def embed_threads(backbone):
    """Cores of one embed job: what the backbone can keep busy (Backbone.job_threads), else 2."""
    options = backbone_options(backbone)
    return backbone_class(backbone, split_backbone_config(options)[0]).job_threads or 2


def backbone_sr(backbone):
    return declared_sample_rate(config["backbones"][backbone])


def gpus(section, name):
    """GPUs one job of this backbone/head/fine-tuned model asks the executor for: listed in
    resources.gpu_<section>, or device cuda (profiles/slurm then sends it to the GPU partition)."""
    listed = config["resources"].get(f"gpu_{section}", [])
    options = backbone_options(name) if section == "backbones" else config[section][name]
    return int(name in listed or options.get("device") == "cuda")


def head_backbones(head):
    """Backbones a head trains on: its `backbones` list, else all of them."""
    return config["heads"][head].get("backbones", BACKBONES)


def head_params(head):
    """A head's own options (its `backbones` list only picks where it runs)."""
    return {k: v for k, v in config["heads"][head].items() if k != "backbones"}


def pseudo_label_params(wildcards):
    """The pseudo_labels block when enabled, else {}: tuning a disabled block reruns no training job."""
    block = config["pseudo_labels"]
    return dict(block) if block["enabled"] else {}


# Fine-tuned encoders (workflow/rules/finetune.smk): candidate backbone ft-<name>, head finetune.
FINETUNE = list(config.get("finetune") or {})
FT_BACKBONES = [f"ft-{m}" for m in FINETUNE]
FT_HEADS = ["finetune"] if FINETUNE else []

# (backbone, head) pairs trained, collected and offered to the blend
CANDIDATES = [(b, h) for b in BACKBONES for h in HEADS if b in head_backbones(h)]
CANDIDATES += [(b, "finetune") for b in FT_BACKBONES]

if FINETUNE:
    from audiofold.errors import ConfigError
    from audiofold.finetune import FinetuneOptions  # imports torch: only when something is fine-tuned

    if "finetune" in HEADS:
        raise ConfigError(
            "config.yaml: heads.finetune: the head name `finetune` is taken by fine-tuned candidates; rename it."
        )
    # start-up check of every option (loads no weights)
    FT_RATE = {m: FinetuneOptions.from_config(config["finetune"][m], f"finetune.{m}").sample_rate for m in FINETUNE}


def ft_store(model, split, suffix):
    return [f"{R}/audio/{FT_RATE[model]}/{s}.{suffix}" for s in chunks(split)]


def optional(path):
    """A named input that may be null in config: empty then (the script sees no file)."""
    return path or []


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
    """The audio folders, as hashes' and validate's inputs: with demo data they are the demo rule's
    outputs; otherwise a clip added or removed makes its folder newer.

    Not the clips themselves: Snakemake's own bookkeeping per input file made its main process cost
    O(clips) per call (3 of 10 s CPU for a 10k-clip dry run). ``audio_fingerprint``, a param, sees
    every added, removed or edited clip instead, in one pass over the folders.
    """
    return audio_dirs()


def audio_fingerprint(wildcards):
    """Hash of every clip's path, size and mtime: also catches a clip replaced by an older file
    (``cp -p``, ``rsync -t``), which the newer-than-output check misses."""
    if config["demo"]["enabled"]:
        return ""
    listing = "\n".join(f"{rel}\t{size}\t{mtime}" for _, rel, size, mtime in _audio_listing())
    return hashlib.sha256(listing.encode("utf-8", "surrogateescape")).hexdigest()


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


def chunk_manifest(wc):
    """The one data input of a job that reads one chunk's clips (embed, audio_store): the chunk's
    manifest (id, path, action, content hash, file state), written by the validate checkpoint only when
    it changed. Not the audio files: Snakemake's scheduler stats every input of every ready job each
    round. An edited, added or removed clip changes its chunk's manifest and so reruns that chunk alone.
    Not an output of validate (Snakemake would delete every manifest before the step, giving each a
    new mtime): a source file that exists once the checkpoint ran. Asking for the checkpoint first puts
    it (and the hashes step) before a job asked for by name, so an edited clip reruns it there too."""
    checkpoints.validate.get()
    return f"{R}/validation/chunks/{wc.shard}.tsv"


def embeddings(backbone, split):
    return [f"{R}/embeddings/{backbone}/{s}.npz" for s in chunks(split)]


def final_outputs():
    curves = [f"{R}/plots/finetune_curves.png"] if FINETUNE else []
    return [rules.submit.output.submission, rules.report.output.metrics, *curves]


wildcard_constraints:
    backbone="|".join(EMBEDDED + FT_BACKBONES),
    head="|".join(HEADS + FT_HEADS),
    shard=r"(train|test)\d+",
    fold=r"\d+",
