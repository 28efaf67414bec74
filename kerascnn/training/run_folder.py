"""The run folder of :func:`kerascnn.training.fit`: one owner, exact resume, nothing lost.

``out_dir`` holds ``best.keras``, ``model.keras``, ``log.csv``, ``result.json``,
``class_names.txt`` (written by :func:`~kerascnn.training.run.train_from_names`) and, while a
run is unfinished, ``backup/``. Its guarantees:

- **One owner.** A process training into the folder holds its lock (``.lock``, an
  ``flock``; POSIX) from before the data is read until it ends; a second process is refused
  in one line naming the owner. The operating system releases a dead process's lock, so
  the rerun after a crash or ``SIGKILL`` takes the folder over.
- **Exact resume.** The backup holds, for the last completed epoch, the weights and the
  optimizer, the random generators' states (augmentation, dropout), early stopping's state
  (best value, its epoch, the wait, the best weights) and whether training was stopped.
  An epoch's files carry its number; the metadata file naming them is written last
  (atomically), so a backup is always one whole epoch. Rerunning the same command resumes;
  an early-stopped run resumes to its finish without training more.
- **Finished runs are never lost.** Every file is written to a temporary name and renamed
  into place. The finish writes ``model.keras``, then ``result.json`` (which marks the run
  finished), then removes the backup: at every instant a rerun either finds the finished
  run (and refuses to clobber it) or resumes the unfinished one.
- **Overwrite replaces the whole run.** With ``overwrite``, the old run's files are moved
  into a hidden folder (``result.json`` last) before the new run writes: never a mix of old
  and new files, never a resume of the old backup. They are deleted when the new run
  finishes, and put back if it fails before completing an epoch.
- A backup that does not read back is moved aside (``backup.corrupt-<time>``) with a
  warning; a resumed run's log and history cover every epoch.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import pathlib
import shutil
import socket
import sys
import time
import warnings

import keras
import numpy as np

from kerascnn.errors import RunFolderError
from kerascnn.inference import CLASS_NAMES_FILE as CLASS_NAMES

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "BACKUP",
    "BEST",
    "check_run_folder",
    "FINAL",
    "finish_run",
    "LOCK",
    "LOG",
    "own_run_folder",
    "record_command",
    "restore_early_stopping",
    "run_folder",
    "save_early_stopping",
    "RESULT",
    "run_folder_state",
    "RunRecorder",
    "SafeBackupAndRestore",
]

BACKUP = "backup"
RESULT = "result.json"
LOG = "log.csv"
BEST = "best.keras"
FINAL = "model.keras"
LOCK = ".lock"
COMMAND = "command.json"
CURVES = "curves.png"
# A run's files, in the order overwrite removes them: result.json (the finished mark) last.
RUN_FILES = (BACKUP, BEST, FINAL, LOG, CLASS_NAMES, COMMAND, CURVES, "tensorboard", RESULT)


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
    """``"finished"`` (``result.json``: the finish wrote it after ``model.keras``; a backup
    left beside it by an interruption is stale), ``"unfinished"`` (a backup: rerunning
    resumes it) or ``"new"``."""
    out = pathlib.Path(out_dir)
    if (out / RESULT).exists():
        return "finished"
    if (out / BACKUP).exists():
        return "unfinished"
    return "new"


def check_run_folder(out_dir, overwrite: bool = False) -> pathlib.Path:
    """Check, before any data is read, that ``out_dir`` can take this run; return it.

    Raises :class:`~kerascnn.errors.RunFolderError` (one line) when ``out_dir`` is a file,
    is not writable (permissions, read-only file system), is in use by another process
    (its lock is held), or holds a finished run (``result.json``) and ``overwrite`` is
    false. An unfinished run (a ``backup`` folder) is resumed (see :func:`fit`)."""
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
    owner = _lock_owner(out)
    if owner is not None:
        raise _in_use(out, owner)
    if not overwrite and run_folder_state(out) == "finished":
        raise RunFolderError(
            f"run folder {out} holds a finished run ({RESULT}); to train it again and replace "
            "its files pass --overwrite (overwrite=True), or choose another --out"
        )
    return out


# --------------------------------------------------------------------------- the owner
_HELD: dict[str, int] = {}  # run folders this process owns: real path -> the lock's fd


def _in_use(out: pathlib.Path, owner: str) -> RunFolderError:
    return RunFolderError(
        f"run folder {out} is in use by {owner or 'another process'}; wait for that run to "
        "end, or choose another --out"
    )


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _lock_owner(out: pathlib.Path) -> str | None:
    """Who holds ``out``'s lock (the owner's line), or ``None`` when nobody (or we) do."""
    path = out / LOCK
    if os.path.realpath(out) in _HELD or not path.exists() or os.name != "posix":
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        if _try_lock(fd):
            return None  # closing the descriptor below releases it
        return os.read(fd, 1000).decode(errors="replace").strip()
    finally:
        os.close(fd)


@contextlib.contextmanager
def own_run_folder(out_dir):
    """Hold ``out_dir``'s lock for the block: create the folder and its ``.lock`` file and
    take an exclusive ``flock`` on it, recording this process (pid, host, start, command)
    for the message another process gets. Re-entrant within a process; the lock is
    released when the block ends, or by the operating system when the process dies.
    Raises :class:`~kerascnn.errors.RunFolderError` when another process holds it."""
    out = pathlib.Path(out_dir)
    key = os.path.realpath(out)
    if key in _HELD or os.name != "posix":  # already ours (or no flock: Windows)
        yield out
        return
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        owner = os.read(fd, 1000).decode(errors="replace").strip()
        os.close(fd)
        raise _in_use(out, owner)
    command = " ".join(sys.argv)[:300]
    os.ftruncate(fd, 0)
    os.write(
        fd,
        f"process {os.getpid()} on {socket.gethostname()} since "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({command})\n".encode(),
    )
    _HELD[key] = fd
    try:
        yield out
    finally:
        del _HELD[key]
        if created and os.listdir(out) == [LOCK]:  # refused before it wrote: leave no folder
            (out / LOCK).unlink()
            out.rmdir()
        os.close(fd)  # releases the flock; a lock file in use stays (unlinking it would race)


REPLACED = ".replaced-"  # prefix of the hidden folder holding a run being replaced


def _move_old_run_aside(out: pathlib.Path) -> pathlib.Path | None:
    """``overwrite``: move the run in ``out`` whole into a hidden folder (``result.json``
    last: cut midway, the folder still reads as finished), so the new run writes into a
    folder without any of its files. Returns the hidden folder (``None`` when ``out`` held
    no run). Other files are left alone; older hidden folders (an earlier overwrite that was
    cut) are deleted."""
    for stale in out.glob(REPLACED + "*"):
        shutil.rmtree(stale, ignore_errors=True)
    names = [p.name for p in sorted(out.glob(f"{BACKUP}.corrupt-*"))]
    names += [name for name in RUN_FILES if (out / name).exists()]
    if not names:
        return None
    aside = out / f"{REPLACED}{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    for name in names:
        os.replace(out / name, aside / name)
    return aside


def _put_back(aside: pathlib.Path, out: pathlib.Path) -> None:
    """Undo :func:`_move_old_run_aside` (the new run failed before writing an epoch);
    ``result.json`` last."""
    names = sorted(p.name for p in aside.iterdir())
    for name in sorted(names, key=lambda name: name == RESULT):
        if (out / name).is_dir():
            shutil.rmtree(out / name)
        os.replace(aside / name, out / name)
    aside.rmdir()


@contextlib.contextmanager
def run_folder(out_dir, overwrite: bool = False, check_backup: bool = True):
    """Own and prepare ``out_dir`` for a run, for the block; yields its path.

    Takes its lock (:func:`own_run_folder`), checks it (:func:`check_run_folder`), creates
    it, and moves a backup that does not read back aside (``check_backup``; the
    multi-worker loop's backup is a ``tf.train`` checkpoint its own callback reads). With ``overwrite`` the run there,
    finished or not, is moved aside whole before the new one writes (its backup is not
    resumed): deleted when the new run finishes (:func:`finish_run`), put back when the new
    run fails before it completes an epoch (a diverging or interrupted first epoch loses
    nothing). Re-entrant: :func:`~kerascnn.training.run.train_from_names` opens the folder
    before reading the data, :func:`~kerascnn.training.fit` again inside it."""
    with own_run_folder(out_dir):
        out = check_run_folder(out_dir, overwrite)
        out.mkdir(parents=True, exist_ok=True)
        aside = _move_old_run_aside(out) if overwrite else None
        backup = out / BACKUP
        if check_backup and backup.exists():
            problem = _backup_problem(backup)
            if problem:
                _move_aside(backup, problem)
        try:
            yield out
        except BaseException:
            if aside is not None and not (out / LOG).exists():
                _put_back(aside, out)
            raise


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def record_command(out: pathlib.Path, command: dict) -> None:
    """Record what the run in ``out`` is (``command.json``: model, data fingerprint, recipe
    and its arguments, seed, ...), refusing to resume an unfinished run of another command.

    Raises :class:`~kerascnn.errors.RunFolderError` naming every difference when ``out``
    holds a backup recorded with another command: resuming it would mix two runs."""
    path = out / COMMAND
    new = json.loads(json.dumps(command, default=repr))  # as it reads back from the file
    if (out / BACKUP).exists() and path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict):
            old_flat, new_flat = _flat(old), _flat(new)
            changed = [
                f"{key} {old_flat.get(key)!r} -> {new_flat.get(key)!r}"
                for key in sorted(set(old_flat) | set(new_flat))
                if old_flat.get(key) != new_flat.get(key)
            ]
            if changed:
                shown = "; ".join(changed[:6]) + ("; ..." if len(changed) > 6 else "")
                raise RunFolderError(
                    f"run folder {out} holds an unfinished run of another command ({shown}); "
                    "rerun that command to resume it, pass --overwrite (overwrite=True) to "
                    "start anew, or choose another --out"
                )
    atomic_write_text(path, json.dumps(new, indent=1, sort_keys=True) + "\n")


def finish_run(model: keras.Model, out: pathlib.Path, result: dict) -> None:
    """Write a finished run: ``model.keras``, then ``result.json`` (the finished mark), then
    remove the backup. Cut anywhere, a rerun resumes (the backup is complete until
    ``result.json`` exists) or finds the finished run."""
    atomic_save(model, out / FINAL)
    atomic_write_text(out / RESULT, json.dumps(result, indent=1) + "\n")
    shutil.rmtree(out / BACKUP, ignore_errors=True)
    for replaced in out.glob(REPLACED + "*"):  # the run this one replaced (overwrite)
        shutil.rmtree(replaced, ignore_errors=True)


# --------------------------------------------------------------------------- the backup
META = "training_metadata.json"  # Keras's BackupAndRestore name; the commit point


def _epoch_files(epoch: int) -> dict[str, str]:
    """The backup files of the state after ``epoch`` completed epochs."""
    return {
        "weights": f"epoch-{epoch}.weights.h5",
        "random_states": f"epoch-{epoch}.random_states.npz",
        "best_weights": f"epoch-{epoch}.best_weights.npz",
    }


# backups written before the files carried their epoch
_LEGACY_FILES = {"weights": "latest.weights.h5", "random_states": "random_states.npz"}


def _read_meta(backup: pathlib.Path) -> tuple[dict, dict[str, pathlib.Path]]:
    """The backup's metadata and the paths of the files it names (legacy names if none)."""
    meta = json.loads((backup / META).read_text())
    epoch = meta["epoch"]
    if not isinstance(epoch, int) or epoch < 0:
        raise RunFolderError(
            f"{backup / META} must record the epoch as an integer >= 0; received epoch={epoch!r}"
        )
    files = meta.get("files", _LEGACY_FILES)
    return meta, {key: backup / name for key, name in files.items()}


def _committed(backup: pathlib.Path, epoch: int) -> bool:
    """Whether the backup's metadata names the state after ``epoch`` epochs."""
    try:
        return _read_meta(backup)[0]["epoch"] == epoch
    except (OSError, ValueError, KeyError):
        return False


def _random_states(model) -> list:
    """The model's random generator states (augmentation, dropout): Keras's weight files
    leave ``SeedGenerator`` states out, so without them a resumed run would draw other
    augmentations than the uninterrupted run from the same seed."""
    return [v for v in model.non_trainable_variables if v.name == "seed_generator_state"]


def save_early_stopping(early, path: pathlib.Path) -> dict | None:
    """Early stopping's state for a backup's metadata (best value, its epoch, the wait, the
    stopped epoch; ``None`` without early stopping); its best weights, if any, go to the
    ``.npz`` file ``path`` (whose name the caller commits with the metadata)."""
    if early is None:
        return None
    if early.best_weights is not None:
        np.savez(path, **{f"w{i}": w for i, w in enumerate(early.best_weights)})
    best = None if early.best is None else float(early.best)
    return {
        "best": best, "best_epoch": int(early.best_epoch), "wait": int(early.wait),
        "stopped_epoch": int(early.stopped_epoch),
    }  # fmt: skip


def restore_early_stopping(early, state: dict | None, path: pathlib.Path | None) -> None:
    """Set ``early``'s state from :func:`save_early_stopping`'s, and its best weights from
    ``path`` when that file exists."""
    if early is None or state is None:
        return
    for key, value in state.items():
        setattr(early, key, value)
    if path is not None and path.exists():
        with np.load(path) as saved:
            early.best_weights = [saved[f"w{i}"] for i in range(len(saved.files))]


def _backup_problem(backup: pathlib.Path) -> str | None:
    """Why the backup folder cannot be resumed from (a half-written or corrupt file), or
    ``None`` when every file it names reads back."""
    import h5py

    try:
        if not (backup / META).exists():
            return "metadata missing"
        _, files = _read_meta(backup)
        if not files["weights"].exists():
            return "weights missing"

        def read(name, obj):
            if isinstance(obj, h5py.Dataset):
                obj[()]

        with h5py.File(files["weights"], "r") as f:
            f.visititems(read)
        for key in ("random_states", "best_weights"):
            if key in files and files[key].exists():
                with np.load(files[key]) as saved:
                    for name in saved.files:
                        saved[name]
    except (OSError, ValueError, KeyError, TypeError, EOFError, RuntimeError) as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return None


def _move_aside(backup: pathlib.Path, why: str) -> pathlib.Path:
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
    """The run's backup, ``BackupAndRestore`` made whole and exact.

    At every epoch end it writes the epoch's files under names carrying the epoch
    (``epoch-3.weights.h5``: weights and optimizer; ``epoch-3.random_states.npz``: the
    augmentation's and dropout's generator states, which Keras's weight files leave out;
    ``epoch-3.best_weights.npz``: early stopping's best weights), then commits them by
    writing ``training_metadata.json`` atomically (the epoch, the file names, early
    stopping's state, whether training was stopped), then removes the files of older
    epochs. ``on_train_begin`` restores all of it; a stopped run resumes at its end (no more
    epochs). A backup that does not load into this model is moved aside with a warning
    naming the new place. The backup is not removed when training ends:
    :func:`finish_run` does that after ``result.json`` is written.

    Args:
        backup_dir: the folder.
        early_stopping: the run's ``EarlyStopping`` (before this callback in the list), whose
            state is backed up and restored; ``None`` for none.
    """

    def __init__(self, backup_dir, early_stopping=None):
        super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
        self.backup = pathlib.Path(backup_dir)
        self.early_stopping = early_stopping

    def on_train_begin(self, logs=None):
        if not self.backup.exists():
            return
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        variables = list(model.weights)
        if model.optimizer is not None:
            variables += list(model.optimizer.variables)
        snapshot = [keras.ops.convert_to_numpy(v) for v in variables]
        try:
            self._restore()
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            for v, value in zip(variables, snapshot, strict=True):
                v.assign(value)
            model._initial_epoch = None
            if self.early_stopping is not None:
                self.early_stopping.on_train_begin()
            _move_aside(self.backup, f"{type(error).__name__}: {str(error).splitlines()[0]}")

    def _restore(self) -> None:
        meta, files = _read_meta(self.backup)
        self._weights_path = str(files["weights"])
        self._load_model()  # weights, optimizer, model._initial_epoch
        states = _random_states(self.model)
        if files["random_states"].exists():
            with np.load(files["random_states"]) as saved:
                values = [saved[f"s{i}"] for i in range(len(saved.files))]
            if [v.shape for v in values] != [tuple(s.shape) for s in states]:
                raise RunFolderError(
                    f"{files['random_states']} holds random generator states of shapes "
                    f"{[v.shape for v in values]}, not this model's "
                    f"{[tuple(s.shape) for s in states]}: the backup belongs to another model"
                )
            for state, value in zip(states, values, strict=True):
                state.assign(value)
        restore_early_stopping(
            self.early_stopping, meta.get("early_stopping"), files.get("best_weights")
        )
        if meta.get("stop_training"):  # stopped (early stopping): nothing more to train
            self.model._initial_epoch = max(meta["epoch"], self.params.get("epochs") or 0)

    def _save_model(self):
        backup, epoch = self.backup, self._current_epoch
        backup.mkdir(parents=True, exist_ok=True)
        names = _epoch_files(epoch)
        meta = {
            "epoch": epoch,
            "batch": self._last_batch_seen,
            "files": {k: v for k, v in names.items() if k != "best_weights"},
            "stop_training": bool(self.model.stop_training),
        }
        paths = [backup / name for name in names.values()]
        try:
            self.model.save_weights(filepath=str(paths[0]), overwrite=True)
            states = {
                f"s{i}": keras.ops.convert_to_numpy(s)
                for i, s in enumerate(_random_states(self.model))
            }
            np.savez(paths[1], **states)
            meta["early_stopping"] = save_early_stopping(self.early_stopping, paths[2])
            if getattr(self.early_stopping, "best_weights", None) is not None:
                meta["files"]["best_weights"] = names["best_weights"]
            atomic_write_text(backup / META, json.dumps(meta))  # the commit
        except BaseException:
            if not _committed(backup, epoch):  # (an interrupt may land just after the commit)
                for path in paths:  # this epoch's files are not committed: remove them
                    path.unlink(missing_ok=True)
            raise
        for path in backup.iterdir():  # older epochs' files, temporary files
            if path.name != META and path.name not in meta["files"].values():
                path.unlink(missing_ok=True)


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

    def _start(self, epoch: int) -> None:
        self._started = True
        self.rows = self._previous_rows(epoch) if epoch > 0 else []
        values = [r[self.monitor] for r in self.rows if self.monitor in r]
        values = [v for v in values if math.isfinite(v)]
        self.best = max(values) if values else None

    def on_epoch_begin(self, epoch, logs=None):
        if not self._started:
            self._start(epoch)

    def on_train_end(self, logs=None):
        # A run resumed at its end (all epochs done, or stopped early) runs no epoch: its
        # rows are the log's, up to the backup's epoch.
        if not self._started:
            self._start(self.model._initial_epoch or 0)

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

    def history(self) -> dict[str, list[float]]:
        keys = sorted({k for r in self.rows for k in r} - {"epoch"})
        return {k: [r.get(k, float("nan")) for r in self.rows] for k in keys}

    def epochs(self) -> list[int]:
        return [int(r["epoch"]) for r in self.rows]
