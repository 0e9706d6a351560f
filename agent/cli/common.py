"""Options and helpers several commands share."""
from __future__ import annotations

from ..output_files import PRIVATE_MODE, parse_mode


def add_output_mode(parser):
    """--output-mode: the Turtle holds every argv, so it is private unless widened."""
    parser.add_argument("--output-mode", type=str, default=None, metavar="MODE",
                        help="permission bits of the Turtle file, in octal "
                             "(default 600: it holds every command line)")


def output_mode(args):
    return PRIVATE_MODE if args.output_mode is None else parse_mode(args.output_mode)
