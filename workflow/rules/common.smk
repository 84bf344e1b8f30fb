# Names derived from config alone, so the whole DAG is known before any data is read.
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
