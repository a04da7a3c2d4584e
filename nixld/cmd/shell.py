"""`init`, `install`, `uninstall` and `handle`: the shell side of nixld-hook.

Kept import-light: `init` runs at every shell start under `eval`, and
`handle` after every failed command; neither may pay for pyelftools unless a
file really has to be read.
"""

from __future__ import annotations

import argparse
import sys

SHELL_CHOICES = ("bash", "zsh", "fish")


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    if name == "init":
        parser.add_argument("shell", choices=SHELL_CHOICES, help="the shell to hook")
        parser.epilog = ('bash/zsh: eval "$(nixld-hook init bash)" in the rc file; '
                         "fish: nixld-hook init fish | source")
    elif name in ("install", "uninstall"):
        parser.add_argument("--shell", choices=(*SHELL_CHOICES, "all"), default="all",
                            help="which shell's start-up files to change (default: all)")
        if name == "install":
            parser.add_argument("--auto-accept", action="store_true",
                                help="also turn on auto-accept: install the top-ranked "
                                     "plan without asking")
    elif name == "handle":
        parser.add_argument("--shell", choices=SHELL_CHOICES, required=True)
        parser.add_argument("--status", type=int, required=True,
                            help="the exit status of the failed command")
        parser.add_argument("--cwd", help="the shell's working directory ($PWD)")
        parser.add_argument("line", nargs=argparse.REMAINDER,
                            help="-- then the command line, as one argument")


def run(args: argparse.Namespace) -> int:
    if args.command == "init":
        from nixld.shell import init_text

        sys.stdout.write(init_text(args.shell))
        return 0
    if args.command == "install":
        return _install(args)
    if args.command == "uninstall":
        return _uninstall(args)
    from nixld.handle import handle, request_from

    line = args.line[1:] if args.line[:1] == ["--"] else args.line
    return handle(request_from(args.shell, args.status, line, args.cwd))


def _install(args: argparse.Namespace) -> int:
    from nixld.shell import install
    from nixld.text import safe

    for change in install(args.shell):
        print(f"{change.shell}: {change.action} {safe(change.path)}")
    if args.auto_accept:
        from nixld.config import set_setting
        from nixld.paths import config_file

        changed = set_setting("auto_accept", True)
        state = "turned on" if changed else "already on"
        print(f"auto-accept: {state} in {safe(config_file())}")
    print("open a new shell (or source the file) to start using the hook")
    return 0


def _uninstall(args: argparse.Namespace) -> int:
    from nixld.shell import uninstall
    from nixld.text import safe

    for change in uninstall(args.shell):
        what = "removed the hook from" if change.action == "removed" else "no hook in"
        print(f"{change.shell}: {what} {safe(change.path)}")
    return 0
