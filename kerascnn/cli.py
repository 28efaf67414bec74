"""The ``kerascnn`` command line: thin subcommands over the library.

``--backend jax|torch|tensorflow`` (before the subcommand) or the ``KERAS_BACKEND`` environment
variable picks the Keras backend.

Errors. Expected failures print one line, ``kerascnn COMMAND: error: ...``, and exit non-zero;
unexpected ones keep their traceback:

* exit 2: input the user can fix: kerascnn's :class:`~kerascnn.errors.UserInputError`, which
  every argument check of the library raises (an unknown model, recipe or dataset, bad data,
  a finished run folder without ``--overwrite``, a non-finite ``--lr``, a file that is not a
  ``.keras`` model, a refused export target, ...), :class:`UserError` (this module's own
  checks), a missing file or dependency, a diverged training;
* exit 1: the environment failed: an ``OSError`` such as a full disk or a read-only file
  system while writing (the run folder keeps its last complete files; rerun to resume);
* exit 130: Ctrl-C (``KeyboardInterrupt``): ``interrupted``; a ``train`` resumes from its
  last completed epoch when the same command is run again.

Any other exception, a plain ``ValueError`` among them (raised inside Keras, TensorFlow or
NumPy), is a bug or a case kerascnn does not know, and keeps its traceback. ``--debug`` (before the
subcommand) shows the traceback of every error.
"""

from __future__ import annotations

import argparse
import os
import sys

from kerascnn.backends import BACKENDS, select_backend
from kerascnn.errors import KerascnnError, UserInputError

__all__ = [
    "build_parser",
    "main",
    "UserError",
]


class UserError(UserInputError):
    """An error reported to the user as one line, exit code 2."""


def cmd_list(args) -> int:
    from kerascnn.listing import format_rows, stored_rows

    columns, rows = stored_rows(args.pattern)
    if not rows:
        raise UserError(
            f"no registered model matches pattern={args.pattern!r}; try `kerascnn list`"
        )
    for line in format_rows(columns, rows, wide=args.wide):
        print(line)
    return 0


def cmd_summary(args) -> int:
    from kerascnn import zoo

    overrides = {}
    if args.input_shape:
        overrides["input_shape"] = tuple(int(d) for d in args.input_shape.split("x"))
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    model = zoo.create(args.name, **overrides)
    model.summary(expand_nested=True)
    print(f"MACs per image: {zoo.count_flops(model):,}")
    return 0


def _seed(text: str) -> int:
    """argparse type of ``--seed``: an integer in 0 .. 2**32 - 1 (NumPy's seed range)."""
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be an integer in 0..{2**32 - 1}; received {text!r}")
    return value


def _needs_tensorflow_backend(what: str, instead: str) -> None:
    """Refuse, in one line, a SavedModel export on a backend other than TensorFlow."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UserError(
            f"{what} writes a SavedModel, which needs the TensorFlow backend (running: "
            f"{keras.backend.backend()}); {instead}"
        )


def cmd_train(args) -> int:
    from kerascnn.training import jax_parallel

    # several JAX processes: joined before anything else uses JAX
    jax_parallel.initialize(args.coordinator, args.num_processes, args.process_id)
    from kerascnn.training.config import RunConfig
    from kerascnn.training.loop import TrainingDiverged
    from kerascnn.training.run import train

    if args.export:
        _needs_tensorflow_backend(
            "--export",
            "train without it, then run `kerascnn --backend tensorflow export "
            f"RUN/model.keras {args.export}`",
        )
    config = RunConfig(
        args.model, args.dataset, recipe=args.recipe,
        recipe_overrides={
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
            "weight_decay": args.weight_decay, "augment": args.augment,
            "early_stopping": args.early_stopping, "label_smoothing": args.label_smoothing,
        },
        out_dir=args.out or os.path.join("runs", args.model), seed=args.seed,
        validation_fraction=args.validation_fraction, data_dir=args.data_dir,
        image_size=args.image_size, on_bad_file="skip" if args.skip_bad_files else "error",
        placement=args.placement, jit_compile={"auto": "auto", "on": True, "off": False}[args.jit],
        mixed_precision=args.mixed_precision, strategy=args.strategy,
        lr_scaling=args.lr_scaling, overwrite=args.overwrite, export=args.export,
        allow_new_signature=args.allow_new_signature,
        model_overrides={"norm": args.norm} if args.norm else {},
    )  # fmt: skip

    def check_data(train_data):  # once the data is read, before training
        shape = "x".join(str(d) for d in train_data.image_shape)
        print(
            f"data: {args.dataset}: {len(train_data)} training images of {shape}, "
            f"{train_data.num_classes} classes"
        )

    verbose = 2 if args.quiet or not sys.stdout.isatty() else "auto"
    try:
        run = train(config, verbose=verbose, check_data=check_data)
    except TrainingDiverged as error:
        raise TrainingDiverged(f"{error}; rerun: {_rerun_with_lower_lr(args)}") from None
    result = run.result
    stop = (
        f", early-stopped; best epoch {result.best_epoch} restored" if result.stopped_early else ""
    )
    print(f"trained {args.model} on {args.dataset}: {result.epochs_run} epochs{stop}")
    if result.val_accuracy is not None:
        print(f"validation accuracy: {result.val_accuracy:.4f}")
    from kerascnn.inference import CLASS_NAMES_FILE

    print(
        f"run folder: {config.out_dir} (model.keras, best.keras, log.csv, result.json, "
        f"{CLASS_NAMES_FILE})"
    )
    if run.curves is not None:
        print(f"curves: {run.curves} (training and validation loss, accuracy)")
    elif not _has_plots():
        print("curves: pip install 'kerascnn[plots]' to get a plot of them in the run folder")
    if run.export_path is not None:
        _print_export(run.export_path, tuple(run.model.inputs[0].shape[1:]))
    return 0


def _has_plots() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _rerun_with_lower_lr(args) -> str:
    """The command that starts a diverged ``train`` again (``--overwrite``: the diverging
    run's backup is not resumed) with a learning rate ten times lower."""
    import shlex

    from kerascnn.training.config import resolve_recipe
    from kerascnn.training.recipes import get_recipe

    lr = args.lr if args.lr is not None else get_recipe(resolve_recipe(args.recipe, args.model)).lr
    argv, kept = list(args.argv), []
    while argv:
        arg = argv.pop(0)
        if arg == "--lr":
            argv.pop(0)
        elif not arg.startswith("--lr=") and arg != "--overwrite":
            kept.append(arg)
    return shlex.join(["kerascnn", *kept, "--lr", f"{lr / 10:g}", "--overwrite"])


def _image_size(text: str) -> tuple[int, int]:
    """argparse type of ``--image-size``: ``HxW`` (two positive integers)."""
    parts = text.lower().split("x")
    if len(parts) == 2 and all(p.isdigit() and int(p) > 0 for p in parts):
        return int(parts[0]), int(parts[1])
    raise argparse.ArgumentTypeError(f"must be HEIGHTxWIDTH, e.g. 32x32; received {text!r}")


def _image_size_argument(parser) -> None:
    parser.add_argument(
        "--image-size",
        type=_image_size,
        metavar="HxW",
        help="resize every image to HxW (default: the data's own size; an image folder's "
        "most common size)",
    )


def _allow_new_signature_argument(parser) -> None:
    parser.add_argument(
        "--allow-new-signature",
        action="store_true",
        help="publish a version whose image shape or classes differ from the model folder's "
        "latest version (its clients may break)",
    )


def query_hints(path: str, image_shape: tuple) -> list[str]:
    """The lines ``export`` prints on how to query the SavedModel at ``path``: commands that
    run as printed (``saved_model_cli``'s ``--input_exprs`` only takes Python literals, so
    the example batch goes through a ``.npy`` file), and ``kerascnn predict`` on an image."""
    import shlex

    shape = ", ".join(str(d) for d in (1, *image_shape))
    make = f"import numpy as np; np.save('images.npy', np.zeros(({shape}), np.uint8))"
    query = ["saved_model_cli", "run", "--dir", str(path), "--tag_set", "serve",
             "--signature_def", "serving_default", "--inputs", "images=images.npy"]  # fmt: skip
    return [
        f"  query it:  python -c {shlex.quote(make)}",
        f"             {shlex.join(query)}",
        f"  or:        kerascnn predict {shlex.quote(str(path))} YOUR_IMAGE.png",
    ]


def _export(model, base_dir, version, class_names, allow_new_signature=False) -> str:
    from kerascnn import export

    path = export.serving_export(
        model, base_dir, version=version, class_names=class_names,
        allow_new_signature=allow_new_signature,
    )  # fmt: skip
    _print_export(path, tuple(model.inputs[0].shape[1:]))
    return path


def _print_export(path, image_shape) -> None:
    print(f"exported SavedModel: {path}")
    for line in query_hints(path, image_shape):
        print(line)


def cmd_evaluate(args) -> int:
    from kerascnn import pipelines
    from kerascnn.inference import evaluate, load_keras_model, read_class_names
    from kerascnn.pipelines.validate import check_model_fits

    model = load_keras_model(args.model_file)
    from kerascnn.training.run import load_train_val

    _, val = load_train_val(
        args.dataset, args.validation_fraction, args.seed, args.data_dir,
        "skip" if args.skip_bad_files else "error", args.image_size,
    )  # fmt: skip
    model_dir = os.path.dirname(os.path.abspath(args.model_file))
    check_model_fits(model, val, args.model_file, read_class_names(model_dir))
    data = pipelines.build(val, batch_size=args.batch_size, shuffle=False, normalize="none")
    loss, accuracy = evaluate(model, data, tta=args.tta)  # the loss follows the model's outputs
    tta = "" if args.tta == "none" else f", test-time augmentation {args.tta}"
    print(
        f"{args.model_file} on {args.dataset} (validation, {len(val)} images{tta}): "
        f"loss {loss:.4f}, accuracy {accuracy:.4f}"
    )
    return 0


def cmd_export(args) -> int:
    from kerascnn.inference import load_keras_model, read_class_names

    _needs_tensorflow_backend(
        "export", f"run `kerascnn --backend tensorflow export {args.model_file} {args.target}`"
    )

    model = load_keras_model(args.model_file)
    if args.class_names:
        class_names = args.class_names.split(",")
    else:  # the run folder's, written by `kerascnn train`
        class_names = read_class_names(os.path.dirname(os.path.abspath(args.model_file)))
    _export(model, args.target, args.version, class_names, args.allow_new_signature)
    return 0


def cmd_predict(args) -> int:
    from kerascnn import inference

    for line in inference.predict_files(args.model, args.images, top_k=args.top_k):
        print(line)
    return 0


def cmd_convert(args) -> int:
    from kerascnn.zoo import model_info
    from kerascnn.zoo.torchvision_weights import convert_command

    for line in convert_command(model_info(args.name).build, args.name, args.checkpoint, args.out):
        print(line)
    return 0


def cmd_experiment(args) -> int:
    from kerascnn.experiments import EXPERIMENTS

    options = {k: v for k, v in vars(args).items() if k not in ("command", "func", "experiment")}
    paths = EXPERIMENTS[args.experiment].run(**options)
    for label, path in paths.items():
        print(f"{label}: {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kerascnn",
        description="kerascnn: the classic deep CNNs in Keras 3, with in-model augmentation: "
        "list, train, evaluate, export and predict from the command line.",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow); jax and torch need no "
        "TensorFlow except for SavedModel export and tfds sources",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of every error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered models with parameters and MACs")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'resnet*'")
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column (features, recipe, paper), not only those that fit the terminal",
    )
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("summary", help="print the Keras summary of a registered model")
    p.add_argument("name", help="a registered model name (see `kerascnn list`)")
    p.add_argument("--input-shape", help="HxWxC, e.g. 32x32x3")
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser(
        "train",
        help="train a registered model on a dataset",
        description="Train a registered model (see `kerascnn list`) on a dataset into a run "
        "folder (default runs/MODEL). By default: the bundled cifar10-sample and the 'quick' "
        "recipe; --epochs, --batch-size, --lr, --weight-decay, --label-smoothing, --augment and "
        "--early-stopping override the recipe's values. Rerun the same command to resume.",
    )
    p.add_argument("model", help="a registered model name, e.g. resnet20")
    p.add_argument(
        "--dataset",
        default="cifar10-sample",
        help="cifar10-sample (bundled), a tfds name, an .npz file or an image folder "
        "(default: cifar10-sample)",
    )
    p.add_argument(
        "--recipe",
        default="quick",
        help="quick, resnet-cifar, resnet-cifar-cosine, vgg-sweep, adamw, fast-cifar, or paper: "
        "the recipe the model's row names (the recipe column of kerascnn list; default: quick)",
    )
    p.add_argument("--epochs", type=int, help="training epochs (default: the recipe's)")
    p.add_argument("--batch-size", type=int, help="batch size (default: the recipe's)")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the recipe's)")
    p.add_argument("--weight-decay", type=float, help="weight decay (default: the recipe's)")
    p.add_argument("--label-smoothing", type=float,
                   help="label smoothing of the cross-entropy, in [0, 1) (default: the recipe's)")  # fmt: skip
    p.add_argument(
        "--augment",
        help="e.g. 'flip,padcrop,randaugment:2:9,mixup:0.2' ('' for none; default: the recipe's)",
    )
    p.add_argument(
        "--placement",
        choices=("model", "pipeline"),
        default="model",
        help="where augmentation runs (default: model)",
    )
    p.add_argument(
        "--early-stopping",
        type=int,
        metavar="PATIENCE",
        help="patience in epochs (0 = off; default: the recipe's)",
    )
    p.add_argument(
        "--validation-fraction",
        type=float,
        default=0.1,
        help="part of the training data held out for validation, stratified (sources without "
        "their own validation split; default: 0.1)",
    )
    p.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="seed of the split, the shuffle and the initial weights (default: 0)",
    )
    p.add_argument("--data-dir", help="tensorflow-datasets data directory")
    p.add_argument(
        "--jit",
        choices=("auto", "on", "off"),
        default="auto",
        help="XLA / jit (default auto: JAX jit; TensorFlow XLA only with a GPU, 0.1-0.4x as "
        "fast on a CPU; PyTorch eager; benchmarks/results/2026-12-04-xla-cpu.md)",
    )
    p.add_argument("--mixed-precision", choices=("mixed_float16", "mixed_bfloat16"))
    p.add_argument(
        "--strategy",
        choices=("auto", "none", "mirrored", "multiworker", "data-parallel"),
        default="auto",
        help="TensorFlow: tf.distribute mirrored or multiworker (auto: multiworker with a TF_CONFIG cluster, mirrored with 2+ GPUs); JAX: data-parallel (keras.distribution; auto: with 2+ devices); see docs/distributed.md",
    )
    p.add_argument(
        "--norm",
        choices=("batch", "sync_batch"),
        help="batch-norm statistics over several devices: each device's (batch, the default) or the global batch's (sync_batch)",
    )
    p.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="JAX data-parallel over several processes: process 0's address (or KERAS_DISTRIBUTION_JOB_ADDRESSES)",
    )
    p.add_argument(
        "--num-processes",
        type=int,
        help="JAX: processes in the run (or KERAS_DISTRIBUTION_NUM_PROCESSES)",
    )
    p.add_argument(
        "--process-id",
        type=int,
        help="JAX: this process, 0..N-1; 0 writes the run folder (or KERAS_DISTRIBUTION_PROCESS_ID)",
    )
    p.add_argument(
        "--lr-scaling",
        choices=("linear", "sqrt", "none"),
        default="linear",
        help="with N replicas --batch-size is per replica; lr x N (linear), x sqrt(N), or unchanged (none: batch and lr are global)",
    )
    p.add_argument(
        "--out", help="run folder (default runs/MODEL); rerun the same command to resume"
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start anew in a run folder that holds a run, finished or not: the old run is "
        "moved aside before the new one writes and deleted when it finishes (put back if "
        "it fails before its first epoch)",
    )
    p.add_argument(
        "--skip-bad-files",
        action="store_true",
        help="image folders: leave out files that cannot be decoded (listed in a warning) "
        "instead of stopping",
    )
    _image_size_argument(p)
    p.add_argument("--export", metavar="DIR", help="export a SavedModel to DIR/VERSION afterwards")
    _allow_new_signature_argument(p)
    p.add_argument(
        "--quiet",
        action="store_true",
        help="one line per epoch instead of a progress bar (chosen without a terminal: "
        "piped output, nohup, CI logs)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a .keras model on a dataset's validation part")
    p.add_argument("model_file")
    p.add_argument("--dataset", default="cifar10-sample")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--validation-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--data-dir")
    p.add_argument(
        "--skip-bad-files", action="store_true", help="image folders: leave out undecodable files"
    )
    _image_size_argument(p)
    p.add_argument(
        "--tta",
        choices=("none", "flip"),  # = inference.TTA (not imported: keras is slow; tested)
        default="none",
        help="test-time augmentation: flip averages each image's class probabilities with its "
        "mirror image's",
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "export", help="export a .keras model as a SavedModel for TensorFlow Serving"
    )
    p.add_argument("model_file")
    p.add_argument("target", help="model folder, e.g. saved_models/resnet20; versions go inside")
    p.add_argument(
        "--version", type=int, help="version number (default: next free); never overwritten"
    )
    p.add_argument(
        "--class-names",
        help="comma-separated class names stored with the model (default: the run folder's "
        "class_names.txt beside the .keras file, if any)",
    )
    _allow_new_signature_argument(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser(
        "predict", help="top-k classes of image files from a .keras model or an exported SavedModel"
    )
    p.add_argument("model", help="RUN/model.keras (any backend) or saved_models/NAME/VERSION")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "convert", help="convert a torchvision checkpoint into Keras weights (.weights.h5)"
    )
    p.add_argument("name", help="a kerascnn model torchvision has weights for, e.g. resnet50")
    p.add_argument("checkpoint", help="torchvision's .pth (needs PyTorch) or .safetensors file")
    p.add_argument("out", help="the Keras weights file to write, e.g. resnet50.weights.h5")
    p.set_defaults(func=cmd_convert)

    from kerascnn.experiments import EXPERIMENTS

    p = sub.add_parser("experiment", help="run one of the lecture's experiments (CSV + PNG)")
    experiments = p.add_subparsers(
        dest="experiment", required=True, metavar="NAME", parser_class=_LazyParser
    )
    for experiment in EXPERIMENTS.values():
        e = experiments.add_parser(
            experiment.name, help=experiment.help, add_arguments=experiment.add_arguments
        )
        e.set_defaults(func=cmd_experiment)
    return parser


class _LazyParser(argparse.ArgumentParser):
    """A subcommand's parser that declares its arguments when it parses, so that
    ``kerascnn experiment NAME`` imports NAME's module and no other experiment's."""

    def __init__(self, *args, add_arguments=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_arguments = add_arguments

    def parse_known_args(self, args=None, namespace=None):
        if self._add_arguments is not None:
            add_arguments, self._add_arguments = self._add_arguments, None
            add_arguments(self)
        return super().parse_known_args(args, namespace)


def _one_line(error: BaseException) -> str:
    from kerascnn.pipelines.sources import BadImageFileError

    if isinstance(error, BadImageFileError) and error.root is not None:
        shown = ", ".join(error.paths[:3]) + (", ..." if len(error.paths) > 3 else "")
        return (
            f"{error.root}: {len(error.paths)} of {error.total} files cannot be decoded as "
            f"images (JPEG, PNG, GIF or BMP): {shown}; remove them, or pass --skip-bad-files "
            "to leave them out"
        )
    text = " ".join(str(error).split()) or type(error).__name__
    return text


def _user_errors() -> tuple:
    """The error classes reported as the user's (imported when an error is handled: `list`
    and `--help` import neither Keras nor TensorFlow)."""
    from kerascnn.backends import MissingDependencyError
    from kerascnn.export import ExportError
    from kerascnn.training.loop import TrainingDiverged

    return (
        KerascnnError, FileNotFoundError, FileExistsError, TrainingDiverged,
        MissingDependencyError, ExportError,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    argv = sys.argv[1:] if argv is None else argv
    try:
        select_backend(argv)
    except ValueError as error:
        print(f"kerascnn: error: {error}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    args.argv = list(argv)  # for the commands the CLI suggests
    try:
        return args.func(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = "; rerun the same command to resume" if args.command == "train" else ""
        print(f"kerascnn {args.command}: interrupted{hint}", file=sys.stderr)
        return 130
    except Exception as error:
        expected = isinstance(error, _user_errors())
        environment = isinstance(error, OSError) and not expected
        if args.debug or not (expected or environment):
            raise
        print(f"kerascnn {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1 if environment else 2


if __name__ == "__main__":
    sys.exit(main())
