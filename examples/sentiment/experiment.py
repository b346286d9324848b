"""Example experiment for gridexp: a small character-level sentiment classifier.

A worker imports this module, calls ``init_dataset(config)`` once and then
``run_one(hyperparameters, dataset)`` for each grid point it is given.

The data are synthetic movie "reviews" generated deterministically from word lists (no
download): a few sentences each, some praising and some panning the film, the majority
deciding the label, with negations ("not bad"), neutral filler, typos and a little label
noise, so a model has to learn something but cannot reach 100%. When a file named by the
config's ``dataset`` key (``imdb.pt``) exists in the working directory, for instance unpacked
from ``data.zip``, it is loaded instead of generated (same format as ``make_dataset``).

The model embeds each character (``vocab_size`` ids, ``char_embedding_size`` dimensions),
runs two small 1-d convolutions over the text, max-pools over time and classifies with the
fully connected layers ``fc_sizes``. It trains on one CPU thread in a few seconds.

It checkpoints every ``CHECKPOINT_EVERY`` epochs with ``gridexp.save_checkpoint`` and, at its
start, resumes from ``gridexp.load_checkpoint()``: stop a worker with Ctrl-C mid-trial and the
trial's next attempt, on any worker, goes on from the last checkpoint (``resumed_from_epoch``
in its results) instead of epoch 1.

Run one trial by hand::

    python experiment.py          # the first grid point of config.yaml
    python experiment.py 5        # the sixth grid point (server order)
    python experiment.py --all    # every grid point, one after the other
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import sys
import time

import gridexp
import torch
from torch import nn

# Characters the model can see, in id order. Id 0 is padding, id 1 stands for any character
# that is not here or whose id would not fit in vocab_size (the classic character-level CNN
# alphabet: letters, digits, punctuation; 68 characters plus the two special ids make 70).
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 -,;.!?:'\"/\\|_@#$%^&*~+=<>()[]{}"
PAD_ID = 0
UNKNOWN_ID = 1
MAX_LEN = 160  # characters per review; longer ones are cut, shorter ones padded

DATA_SEED = 1234
TRAIN_SIZE = 4000
VAL_SIZE = 1000
LABEL_NOISE = 0.03  # share of reviews whose label is flipped
TYPO_RATE = 0.02  # chance that a letter is replaced by a random one

CONV_CHANNELS = 48
CONV_KERNEL = 5
# Plain SGD with a little momentum and clipped gradients: both learning rates of the example
# grid (.03 and .1) train; with momentum 0.9 and no clipping the .1 runs collapse to chance.
MOMENTUM = 0.5
CLIP_NORM = 1.0
CHECKPOINT_EVERY = 2  # epochs

torch.set_num_threads(1)  # workers often share a machine's cores: one thread each

# ---------------------------------------------------------------------------------------
# Data

POSITIVE_ADJECTIVES = (
    "good great excellent wonderful amazing brilliant superb delightful enjoyable fantastic "
    "charming moving clever beautiful fun memorable gripping stunning solid lovely"
).split()
NEGATIVE_ADJECTIVES = (
    "bad awful terrible boring dull poor weak horrible dreadful clumsy tedious bland messy "
    "painful forgettable lame mediocre stupid annoying disappointing"
).split()
POSITIVE_VERBS = "loved enjoyed adored liked admired".split()
NEGATIVE_VERBS = "hated disliked regretted endured resented".split()
NOUNS = (
    "movie film plot acting story script cast ending soundtrack director dialogue pacing "
    "visuals characters score"
).split()
INTENSIFIERS = "really very truly quite so rather".split()
FILLERS = (
    "i saw it on friday.",
    "my friend picked it.",
    "it runs about two hours.",
    "the theater was full.",
    "we watched it at home.",
    "there is a dog in it.",
    "it came out last year.",
    "the popcorn was cold.",
    "i went with my sister.",
    "it is based on a book.",
    "the lead is a teacher.",
    "it was raining outside.",
)


def _sentiment_phrase(rng: random.Random, positive: bool) -> str:
    """One sentence that speaks for (positive) or against the film."""
    adjectives = POSITIVE_ADJECTIVES if positive else NEGATIVE_ADJECTIVES
    opposite = NEGATIVE_ADJECTIVES if positive else POSITIVE_ADJECTIVES
    verbs = POSITIVE_VERBS if positive else NEGATIVE_VERBS
    noun = rng.choice(NOUNS)
    kind = rng.randrange(7)
    if kind == 0:
        return f"the {noun} was {rng.choice(adjectives)}."
    if kind == 1:
        return f"a {rng.choice(adjectives)} {noun}."
    if kind == 2:
        return f"the {noun} is {rng.choice(INTENSIFIERS)} {rng.choice(adjectives)}!"
    if kind == 3:
        return f"i {rng.choice(verbs)} the {noun}."
    if kind == 4:
        # A negation: the words say the opposite of what the sentence means.
        return f"the {noun} was not {rng.choice(opposite)}."
    if kind == 5:
        return f"not {rng.choice(opposite)} at all."
    rating = rng.randint(7, 10) if positive else rng.randint(1, 4)
    return f"{rating}/10, {rng.choice(adjectives)}."


def _review(rng: random.Random, label: int) -> str:
    """A review whose sentiment sentences mostly agree with label (1 positive, 0 negative)."""
    count = rng.choice((1, 2, 3, 3))
    polarities = [label == 1] * count
    if count == 3 and rng.random() < 0.4:
        polarities[rng.randrange(3)] = label != 1  # one dissenting sentence of three
    sentences = [_sentiment_phrase(rng, positive) for positive in polarities]
    for _ in range(rng.choice((0, 1, 1, 2))):
        sentences.insert(rng.randrange(len(sentences) + 1), rng.choice(FILLERS))
    text = " ".join(sentences)
    letters = ALPHABET[:26]
    return "".join(
        rng.choice(letters) if c in letters and rng.random() < TYPO_RATE else c for c in text
    )


def encode(text: str, max_len: int = MAX_LEN) -> list[int]:
    """Character ids of text (lower-cased), cut or padded to max_len."""
    index = {c: i + 2 for i, c in enumerate(ALPHABET)}
    ids = [index.get(c, UNKNOWN_ID) for c in text.lower()[:max_len]]
    return ids + [PAD_ID] * (max_len - len(ids))


def make_dataset(seed: int = DATA_SEED) -> dict:
    """Generate the train and validation sets; the same seed always gives the same tensors."""
    rng = random.Random(seed)
    total = TRAIN_SIZE + VAL_SIZE
    labels = [i % 2 for i in range(total)]
    rng.shuffle(labels)
    texts = [_review(rng, label) for label in labels]
    noisy = [1 - label if rng.random() < LABEL_NOISE else label for label in labels]
    x = torch.tensor([encode(text) for text in texts], dtype=torch.uint8)
    y = torch.tensor(noisy, dtype=torch.long)
    return {
        "train_x": x[:TRAIN_SIZE],
        "train_y": y[:TRAIN_SIZE],
        "val_x": x[TRAIN_SIZE:],
        "val_y": y[TRAIN_SIZE:],
        "train_text": texts[:TRAIN_SIZE],
        "val_text": texts[TRAIN_SIZE:],
    }


def init_dataset(config: dict) -> dict:
    """Called once per worker with the whole config.yaml; returns what run_one gets."""
    path = (config or {}).get("dataset")
    if path and os.path.isfile(path):
        dataset = torch.load(path)
        missing = [k for k in ("train_x", "train_y", "val_x", "val_y") if k not in dataset]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}: not a make_dataset() file")
        return dataset
    return make_dataset()


# ---------------------------------------------------------------------------------------
# Model

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}

LOSSES = {
    "xent": nn.CrossEntropyLoss,
    "hinge": nn.MultiMarginLoss,
}


def _lookup(table: dict, name: str, what: str):
    if name not in table:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(sorted(table))}")
    return table[name]


class CharClassifier(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        embedding_size: int,
        fc_sizes: list[int],
        activation: str,
        classes: int = 2,
    ):
        super().__init__()
        act = _lookup(ACTIVATIONS, activation, "activation")
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=PAD_ID)
        self.conv = nn.Sequential(
            nn.Conv1d(embedding_size, CONV_CHANNELS, CONV_KERNEL, padding=CONV_KERNEL // 2),
            act(),
            nn.MaxPool1d(2),
            nn.Conv1d(CONV_CHANNELS, CONV_CHANNELS, CONV_KERNEL, padding=CONV_KERNEL // 2),
            act(),
        )
        layers: list[nn.Module] = []
        width = CONV_CHANNELS
        for size in fc_sizes:
            layers += [nn.Linear(width, int(size)), act()]
            width = int(size)
        layers.append(nn.Linear(width, classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embedding(ids).transpose(1, 2)  # (batch, embedding, length)
        h = self.conv(h).amax(dim=2)  # max over time: (batch, channels)
        return self.classifier(h)


# ---------------------------------------------------------------------------------------
# Training


def _ids(x: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """Character ids as the model sees them: ids that do not fit in vocab_size are unknown."""
    x = x.long()
    return torch.where(x < vocab_size, x, torch.full_like(x, UNKNOWN_ID))


def _evaluate(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, y: torch.Tensor):
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(x[i : i + 500]) for i in range(0, len(x), 500)])
        loss = loss_fn(logits, y).item()
        accuracy = (logits.argmax(dim=1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def run_one(hyperparameters: dict, dataset: dict, log=None):
    """Train one model; returns (results, model). log, when given, is called once per epoch."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    hp = hyperparameters
    seed = int(hp.get("seed", 0))
    batch_size = int(hp["batch_size"])
    epochs = int(hp["epochs"])
    vocab_size = int(hp["vocab_size"])
    if vocab_size < 2:
        raise ValueError("vocab_size must be at least 2 (padding and unknown)")

    torch.manual_seed(seed)
    model = CharClassifier(
        vocab_size,
        int(hp["char_embedding_size"]),
        list(hp["fc_sizes"]),
        str(hp["activation"]),
    )
    loss_fn = _lookup(LOSSES, str(hp["loss_fn"]), "loss_fn")()
    optimizer = torch.optim.SGD(
        model.parameters(), lr=float(hp["learning_rate"]), momentum=MOMENTUM
    )

    train_x, train_y = _ids(dataset["train_x"], vocab_size), dataset["train_y"]
    val_x, val_y = _ids(dataset["val_x"], vocab_size), dataset["val_y"]
    shuffle = torch.Generator().manual_seed(seed)

    train_loss = train_accuracy = val_loss = val_accuracy = math.nan
    best_val_accuracy = 0.0
    epochs_run = 0
    stopped_early = False
    # A checkpoint of this trial from an earlier attempt (preempted, or its worker died): go on
    # from the epoch it saved, with the same weights, optimizer state and shuffling.
    checkpoint = gridexp.load_checkpoint() if hasattr(gridexp, "load_checkpoint") else None
    resumed_from_epoch = 0
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        shuffle.set_state(checkpoint["shuffle"])
        best_val_accuracy = checkpoint["best_val_accuracy"]
        resumed_from_epoch = epochs_run = checkpoint["epoch"]
        print(f"resuming from the checkpoint of epoch {resumed_from_epoch}", flush=True)

    def save_checkpoint(epoch: int) -> None:
        if hasattr(gridexp, "save_checkpoint"):
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "shuffle": shuffle.get_state(),
                "best_val_accuracy": best_val_accuracy,
                "epoch": epoch,
            }
            gridexp.save_checkpoint(state, step=epoch)

    for epoch in range(resumed_from_epoch + 1, epochs + 1):
        order = torch.randperm(len(train_x), generator=shuffle)
        total_loss = 0.0
        correct = 0
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            xb, yb = train_x[batch], train_y[batch]
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
            optimizer.step()
            total_loss += loss.item() * len(batch)
            correct += (logits.argmax(dim=1) == yb).sum().item()
        train_loss = total_loss / len(order)
        train_accuracy = correct / len(order)
        val_loss, val_accuracy = _evaluate(model, loss_fn, val_x, val_y)
        best_val_accuracy = max(best_val_accuracy, val_accuracy)
        epochs_run = epoch

        if hasattr(gridexp, "report"):
            gridexp.report(
                step=epoch,
                loss=train_loss,
                train_accuracy=train_accuracy,
                val_loss=val_loss,
                val_accuracy=val_accuracy,
            )
        if log is not None:
            log(
                f"epoch {epoch:2d}/{epochs}: loss {train_loss:.4f} "
                f"train_accuracy {train_accuracy:.3f} val_loss {val_loss:.4f} "
                f"val_accuracy {val_accuracy:.3f} ({time.perf_counter() - started:.1f} s)"
            )
        if not math.isfinite(train_loss):
            break  # diverged: more epochs will not help
        if hasattr(gridexp, "should_stop") and gridexp.should_stop():
            # Preempted (the worker got SIGTERM, SIGINT or SIGUSR1): save where it is, so the
            # next attempt goes on from here. Cancelled: just stop.
            if getattr(gridexp, "stop_reason", lambda: None)() == "preempted":
                save_checkpoint(epoch)
            stopped_early = epoch < epochs
            break
        if epoch % CHECKPOINT_EVERY == 0 and epoch < epochs:
            save_checkpoint(epoch)

    results = {
        "train_loss": train_loss,
        "train_accuracy": train_accuracy,
        "val_loss": val_loss,
        "val_accuracy": val_accuracy,
        "best_val_accuracy": best_val_accuracy,
        "epochs_run": epochs_run,
        "resumed_from_epoch": resumed_from_epoch,
        "stopped_early": stopped_early,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": time.perf_counter() - started,
    }
    return results, model


# ---------------------------------------------------------------------------------------
# Running by hand

FIRST_GRID_POINT = {
    "activation": "relu",
    "batch_size": 128,
    "char_embedding_size": 8,
    "epochs": 10,
    "fc_sizes": [2048],
    "learning_rate": 0.03,
    "loss_fn": "xent",
    "vocab_size": 70,
}


def _scalar(text: str):
    """A YAML scalar or flow list as this config writes them: 128, .03, 'xent', [2048]."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [_scalar(item) for item in inner.split(",")] if inner else []
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "~", ""):
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_config(text: str) -> dict:
    """Just enough YAML for config.yaml when PyYAML is not installed."""
    config: dict = {}
    section = None  # the top-level mapping being filled (hyperparameters)
    key = None  # the hyperparameter whose list items follow
    for raw in text.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if indent == 0:
            name, _, value = stripped.partition(":")
            value = value.strip()
            section = None if value else config.setdefault(name.strip(), {})
            if value:
                config[name.strip()] = _scalar(value)
            key = None
        elif stripped.startswith("- ") or stripped == "-":
            if section is None or key is None:
                raise ValueError(f"unexpected list item: {raw!r}")
            section.setdefault(key, []).append(_scalar(stripped[1:]))
        elif section is not None:
            key, _, value = stripped.partition(":")
            key = key.strip().strip("'\"")
            if value.strip():
                section[key] = _scalar(value)
        else:
            raise ValueError(f"cannot parse: {raw!r}")
    return config


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        import yaml  # optional: a minimal parser below does without
    except ImportError:
        return _parse_config(text)
    return yaml.safe_load(text)


def grid(config: dict) -> list[dict]:
    """The grid points in the server's order: keys sorted, the first key slowest."""
    axes = config["hyperparameters"]
    keys = sorted(axes)
    values = [axes[k] if isinstance(axes[k], list) else [axes[k]] for k in keys]
    return [dict(zip(keys, point)) for point in itertools.product(*values)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run grid points of config.yaml by hand.")
    parser.add_argument("index", nargs="?", type=int, default=0, help="grid point (from 0)")
    parser.add_argument("--all", action="store_true", help="run every grid point")
    parser.add_argument("--config", default="config.yaml")
    args = parser.parse_args(argv)

    here = os.path.dirname(os.path.abspath(__file__))
    config_path = args.config if os.path.isfile(args.config) else os.path.join(here, args.config)
    try:
        config = load_config(config_path)
        points = grid(config)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"cannot read {config_path} ({error}); using the built-in first grid point")
        config, points = {"dataset": "imdb.pt"}, [FIRST_GRID_POINT]

    chosen = list(enumerate(points)) if args.all else [(args.index, points[args.index])]
    dataset = init_dataset(config)
    summary = []
    for index, hyperparameters in chosen:
        print(f"grid point {index}: {hyperparameters}")
        results, _model = run_one(hyperparameters, dataset, log=print)
        print(
            "results:", {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}
        )
        summary.append((index, results))
    if len(summary) > 1:
        for index, results in summary:
            print(
                f"{index}: val_accuracy {results['val_accuracy']:.3f} "
                f"seconds {results['seconds']:.1f} {points[index]}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
