"""The ``kerascnn`` command line: thin subcommands over the library.

Errors a user can fix (unknown model, bad argument) print one line and exit with 2,
without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys


class UserError(Exception):
    """An error reported to the user as one line, exit code 2."""


def _format_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def cmd_list(args) -> int:
    from kerascnn.zoo import table

    rows = table.rows(args.pattern)
    if not rows:
        raise UserError(
            f"no registered model matches pattern={args.pattern!r}; try `kerascnn list`"
        )
    header = ("name", "family", "input", "params", "MACs", "paper")
    lines = [
        (
            r["name"],
            r["family"],
            r["input"],
            f"{r['trainable_params']:,}",
            _format_count(r["macs"]),
            r["paper"],
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header[:-1])]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths) + "  {}"
    print(fmt.format(*header))
    for line in lines:
        print(fmt.format(*line))
    return 0


def cmd_summary(args) -> int:
    import kerascnn

    overrides = {}
    if args.input_shape:
        overrides["input_shape"] = tuple(int(d) for d in args.input_shape.split("x"))
    if args.num_classes is not None:
        overrides["num_classes"] = args.num_classes
    model = kerascnn.zoo.create(args.name, **overrides)
    model.summary(expand_nested=True)
    print(f"MACs per image: {kerascnn.zoo.count_flops(model):,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kerascnn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered models with parameters and MACs")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'resnet*'")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("summary", help="print the Keras summary of a registered model")
    p.add_argument("name", help="a registered model name (see `kerascnn list`)")
    p.add_argument("--input-shape", help="HxWxC, e.g. 32x32x3")
    p.add_argument("--num-classes", type=int)
    p.set_defaults(func=cmd_summary)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ValueError, FileNotFoundError) as error:
        print(f"kerascnn {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
