"""The run folder of :func:`kerascnn.training.fit`: its files, written so that nothing is lost.

``out_dir`` holds ``best.keras``, ``model.keras``, ``log.csv``, ``result.json`` and, while a
run is unfinished, ``backup/`` (weights, optimizer, the augmentation's random states and the
epoch). Every file is written to a temporary name and renamed into place; a finished run is
never overwritten unless asked; a corrupt backup is moved aside; a resumed run's history
covers every epoch.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pathlib
import warnings

import keras
import numpy as np

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "BACKUP",
    "BEST",
    "check_run_folder",
    "FINAL",
    "LOG",
    "prepare_run_folder",
    "RandomStateBackup",
    "RESULT",
    "run_folder_state",
    "RunRecorder",
    "SafeBackupAndRestore",
]


class RandomStateBackup(keras.callbacks.Callback):
    """Back up the model's random-generator states (augmentation, dropout) next to
    ``BackupAndRestore``'s weights at every epoch end, and restore them when a run resumes.

    Keras's weights files leave ``SeedGenerator`` states out, so without this a resumed run
    would draw other augmentations than the uninterrupted run from the same seed."""

    FILE = "random_states.npz"

    def __init__(self, backup_dir: pathlib.Path, save: bool = True):
        super().__init__()
        self.path = pathlib.Path(backup_dir) / self.FILE
        self.save = save  # False: SafeBackupAndRestore writes the file with the weights

    @staticmethod
    def states_of(model) -> list:
        return [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]

    def _states(self) -> list:
        return self.states_of(self.model)

    def on_train_begin(self, logs=None):
        if not self.path.exists():
            return
        states = self._states()
        try:
            with np.load(self.path) as saved:
                values = [saved[f"s{i}"] for i in range(len(saved.files))]
        except (OSError, ValueError, KeyError, EOFError) as error:
            warnings.warn(f"{self.path} cannot be read ({error}); not restored", stacklevel=2)
            return
        if [v.shape for v in values] != [tuple(s.shape) for s in states]:
            warnings.warn(
                f"{self.path} does not match this model's random generators; not restored",
                stacklevel=2,
            )
            return
        for state, value in zip(states, values, strict=True):
            state.assign(value)

    def on_epoch_end(self, epoch, logs=None):
        if not self.save:
            return
        values = {f"s{i}": keras.ops.convert_to_numpy(s) for i, s in enumerate(self._states())}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        try:
            np.savez(tmp, **values)
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# --------------------------------------------------------------------------- run folder
BACKUP = "backup"
RESULT = "result.json"
LOG = "log.csv"
BEST = "best.keras"
FINAL = "model.keras"


def _write_atomically(path: pathlib.Path, tmp: pathlib.Path, write) -> None:
    """``write(tmp)``, then rename ``tmp`` over ``path``: ``path`` holds the old or the new
    content, never a part (also when the disk fills up); ``tmp`` is removed on failure."""
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`_write_atomically`)."""
    _write_atomically(path, path.with_name(path.name + ".tmp"), lambda tmp: tmp.write_text(text))


def atomic_save(model: keras.Model, path: pathlib.Path) -> None:
    """``model.save(path)`` atomically (see :func:`_write_atomically`)."""
    _write_atomically(path, path.with_name(path.stem + ".tmp.keras"), model.save)


def run_folder_state(out_dir) -> str:
    """``"new"`` (no finished run, no backup), ``"unfinished"`` (a backup: rerunning
    resumes it) or ``"finished"`` (``result.json`` and no backup)."""
    out = pathlib.Path(out_dir)
    if (out / BACKUP).exists():
        return "unfinished"
    if (out / RESULT).exists():
        return "finished"
    return "new"


def check_run_folder(out_dir, overwrite: bool = False) -> pathlib.Path:
    """Check, before any data is read, that ``out_dir`` can take this run; return it.

    Raises :class:`~kerascnn.errors.RunFolderError` (one line) when ``out_dir`` is a file,
    is not writable (permissions, read-only file system), or holds a finished run
    (``result.json`` without a ``backup``) and ``overwrite`` is false. An unfinished run
    (a ``backup`` folder) is resumed (see :func:`fit`)."""
    from kerascnn.errors import RunFolderError

    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"run folder {out} is an existing file; pass a folder (--out DIR)")
    anchor = out.absolute()
    while not anchor.exists():
        anchor = anchor.parent
    if not anchor.is_dir():
        raise RunFolderError(f"cannot create run folder {out}: {anchor} is a file")
    writable = os.access(anchor, os.W_OK | os.X_OK)
    if writable:  # os.access says yes to root on a read-only file system: try it
        try:
            probe = anchor / f".kerascnn-write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError:
            writable = False
    if not writable:
        raise RunFolderError(
            f"run folder {out} is not writable ({anchor} is read-only or not ours); "
            "pass another --out"
        )
    if not overwrite and run_folder_state(out) == "finished":
        raise RunFolderError(
            f"run folder {out} holds a finished run ({RESULT}); to train it again and replace "
            "its files pass --overwrite (overwrite=True), or choose another --out"
        )
    return out


def _backup_problem(backup: pathlib.Path) -> str | None:
    """Why the backup folder cannot be resumed from (a half-written or corrupt file), or
    ``None`` when every file in it reads back."""
    import h5py

    weights = backup / "latest.weights.h5"
    meta = backup / "training_metadata.json"
    try:
        if not weights.exists() or not meta.exists():
            return f"{'weights' if not weights.exists() else 'metadata'} missing"
        epoch = json.loads(meta.read_text())["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            return f"bad epoch {epoch!r} in {meta.name}"

        def read(name, obj):
            if isinstance(obj, h5py.Dataset):
                obj[()]

        with h5py.File(weights, "r") as f:
            f.visititems(read)
        states = backup / RandomStateBackup.FILE
        if states.exists():
            with np.load(states) as saved:
                for key in saved.files:
                    saved[key]
    except (OSError, ValueError, KeyError, TypeError, EOFError, RuntimeError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def _move_aside(backup: pathlib.Path, why: str) -> pathlib.Path:
    import time

    target = backup.with_name(f"{backup.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    n = 1
    while target.exists():
        n += 1
        target = backup.with_name(f"{backup.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}-{n}")
    os.replace(backup, target)
    warnings.warn(
        f"the backup {backup} cannot be resumed from ({why}); moved it to {target} and "
        "starting this run from epoch 1",
        stacklevel=3,
    )
    return target


class SafeBackupAndRestore(keras.callbacks.BackupAndRestore):
    """``BackupAndRestore`` whose files are written to temporary files renamed into place (a
    full disk or a kill mid-write never leaves a half-written backup at the final path), and
    which moves a backup that does not load into this model aside (with a warning naming the
    new place) instead of resuming from it."""

    def on_train_begin(self, logs=None):
        backup = pathlib.Path(self.backup_dir)
        if not backup.exists():
            return
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = list(model.weights)
        if model.optimizer is not None:
            variables += list(model.optimizer.variables)
        snapshot = [keras.ops.convert_to_numpy(v) for v in variables]
        try:
            super().on_train_begin(logs)
        except (OSError, ValueError, KeyError, TypeError) as error:
            for v, value in zip(variables, snapshot, strict=True):
                v.assign(value)
            model._initial_epoch = None
            _move_aside(backup, f"{type(error).__name__}: {str(error).splitlines()[0]}")

    def _save_model(self):
        # Every file goes to a temporary name first; they are renamed into place only when
        # all are written, the metadata (the epoch to resume from) last.
        backup = pathlib.Path(self.backup_dir)
        backup.mkdir(parents=True, exist_ok=True)
        states_path = backup / RandomStateBackup.FILE
        states_tmp = backup / "random_states.tmp.npz"
        weights_tmp = backup / "latest.tmp.weights.h5"
        meta_tmp = backup / "training_metadata.json.tmp"
        try:
            states = RandomStateBackup.states_of(self.model)
            np.savez(
                states_tmp, **{f"s{i}": keras.ops.convert_to_numpy(s) for i, s in enumerate(states)}
            )
            self.model.save_weights(filepath=str(weights_tmp), overwrite=True)
            meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
            meta_tmp.write_text(json.dumps(meta))
            os.replace(states_tmp, states_path)
            os.replace(weights_tmp, self._weights_path)
            os.replace(meta_tmp, self._training_metadata_path)
        except BaseException:
            for tmp in (states_tmp, weights_tmp, meta_tmp):
                tmp.unlink(missing_ok=True)
            raise


class RunRecorder(keras.callbacks.Callback):
    """``log.csv`` and ``best.keras`` of a run folder, each written atomically at every
    epoch end (a temporary file renamed over the old one): a crash, a full disk or a
    diverging rerun leaves the previous complete file.

    A resumed run (its first epoch is not 0) keeps the log's rows of the epochs before it
    and the best value among them, so the log and the history cover the whole run and
    ``best.keras`` is only replaced by a better epoch."""

    def __init__(self, out: pathlib.Path, monitor: str | None = "val_accuracy"):
        super().__init__()
        self.out = pathlib.Path(out)
        self.monitor = monitor
        self.rows: list[dict] = []
        self.best: float | None = None
        self._started = False

    def _previous_rows(self, start: int) -> list[dict]:
        path = self.out / LOG
        if not path.exists():
            return []
        rows = []
        with path.open(newline="") as f:
            for raw in csv.DictReader(f):
                try:
                    epoch = int(raw["epoch"])
                    row = {
                        k: float(v) for k, v in raw.items() if k != "epoch" and v not in ("", None)
                    }
                except (KeyError, TypeError, ValueError):
                    continue
                if epoch < start:
                    rows.append({"epoch": epoch, **row})
        return rows

    def on_epoch_begin(self, epoch, logs=None):
        if self._started:
            return
        self._started = True
        self.rows = self._previous_rows(epoch) if epoch > 0 else []
        values = [r[self.monitor] for r in self.rows if self.monitor in r]
        values = [v for v in values if math.isfinite(v)]
        self.best = max(values) if values else None

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
        value = row.get(self.monitor) if self.monitor else None
        if value is not None and math.isfinite(value) and (self.best is None or value > self.best):
            atomic_save(self.model, self.out / BEST)
            self.best = value
        self.rows.append(row)
        keys = ["epoch", *sorted({k for r in self.rows for k in r} - {"epoch"})]
        lines = [",".join(keys)]
        for r in self.rows:
            lines.append(",".join(repr(r[k]) if k in r else "" for k in keys))
        atomic_write_text(self.out / LOG, "\n".join(lines) + "\n")
        # The folder now holds a run in progress: an older run's result no longer applies.
        (self.out / RESULT).unlink(missing_ok=True)

    def history(self) -> dict[str, list[float]]:
        keys = sorted({k for r in self.rows for k in r} - {"epoch"})
        return {k: [r.get(k, float("nan")) for r in self.rows] for k in keys}

    def epochs(self) -> list[int]:
        return [int(r["epoch"]) for r in self.rows]


def prepare_run_folder(out_dir, overwrite: bool = False) -> pathlib.Path:
    """:func:`check_run_folder`, then create the folder and move a corrupt or mismatched
    backup of an unfinished run aside (that run is resumed, also with ``overwrite``)."""
    out = check_run_folder(out_dir, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    backup = out / BACKUP
    if backup.exists():
        problem = _backup_problem(backup)
        if problem:
            _move_aside(backup, problem)
    return out
