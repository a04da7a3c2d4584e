"""A shell command line as the hook hands it over: which programs did it run?

`split_commands` cuts a line into simple commands (at `&&`, `||`, `;`, `|`,
`&`, parentheses and newlines), skips what is not the program (`VAR=value`
prefixes, redirections, reserved words, and wrappers such as `env`, `command`,
`exec`, `nohup`, `time`, `sudo`), and `resolve_program` finds the file the
shell would have run. This is a tokenizer, not a shell: it is good enough to
point at the file that failed to start, and says nothing when unsure.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# Tokens made only of these are command separators; the next word starts a command.
_SEPARATOR_CHARS = frozenset(";&|()\n")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=")

# Reserved words that may precede a command (the command follows them).
_LEADING_WORDS: dict[str, frozenset[str]] = {
    "bash": frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}"}),
    "zsh": frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "}",
                      "noglob", "nocorrect", "-"}),
    "fish": frozenset({"and", "or", "not", "!", "if", "else", "while", "begin"}),
}

def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Builtins the shell runs itself: a file of that name on PATH never ran.
_BUILTINS: dict[str, frozenset[str]] = {
    "bash": _names("""
        . : [ alias bg bind break builtin caller cd command compgen complete compopt continue
        declare dirs disown echo enable eval exec exit export false fc fg getopts hash help
        history jobs kill let local logout mapfile popd printf pushd pwd read readarray
        readonly return set shift shopt source suspend test times trap true type typeset
        ulimit umask unalias unset wait"""),
    "zsh": _names("""
        . : [ alias autoload bg bindkey break builtin bye cd chdir command compadd continue
        declare dirs disable disown echo emulate enable eval exec exit export false fc fg
        float functions getopts hash history integer jobs kill let limit local logout
        noglob popd print printf pushd pushln pwd r read readonly rehash return set setopt
        shift source suspend test times trap true ttyctl type typeset ulimit umask unalias
        unfunction unhash unlimit unset unsetopt vared wait whence where which zle
        zmodload zstyle"""),
    "fish": _names("""
        . : [ abbr and argparse begin bg bind block break breakpoint builtin case cd command
        commandline complete contains continue count disown echo else emit end eval exec
        exit false fg for function functions history if jobs math not or printf pwd random
        read realpath return set set_color source status string switch test time true
        type ulimit wait while"""),
}

# Wrappers that run the next word as the program. For each: options that take a
# separate argument (to skip it too), and options that mean "not running it".
@dataclass(frozen=True)
class _Wrapper:
    with_argument: frozenset[str] = frozenset()
    not_running: frozenset[str] = frozenset()
    takes_assignments: bool = False


_WRAPPERS: dict[str, _Wrapper] = {
    "env": _Wrapper(frozenset({"-u", "--unset", "-C", "--chdir", "-S", "--split-string"}),
                    takes_assignments=True),
    "command": _Wrapper(not_running=frozenset({"-v", "-V"})),
    "exec": _Wrapper(frozenset({"-a"})),
    "nohup": _Wrapper(),
    "time": _Wrapper(frozenset({"-f", "--format", "-o", "--output"})),
    "nice": _Wrapper(frozenset({"-n", "--adjustment"})),
    "sudo": _Wrapper(frozenset({"-u", "--user", "-g", "--group", "-C", "--close-from",
                                "-D", "--chdir", "-h", "--host", "-p", "--prompt", "-r",
                                "--role", "-t", "--type", "-T", "--command-timeout", "-U",
                                "--other-user"}),
                     not_running=frozenset({"-l", "--list", "-v", "--validate", "-k", "-K",
                                            "-e", "--edit", "-V", "--version"}),
                     takes_assignments=True),
}


@dataclass(frozen=True)
class SimpleCommand:
    """One program the line ran: its name as typed, its arguments, and whether
    it ran under sudo (as root, which does not see the user's entries)."""

    name: str
    args: tuple[str, ...] = ()
    sudo: bool = False


@dataclass(frozen=True)
class Program:
    """A simple command together with the file the shell ran for it."""

    command: SimpleCommand
    path: Path


def _tokens(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>\n")
    lexer.whitespace = " \t\r"  # newline separates commands, like `;`
    lexer.whitespace_split = False
    return list(lexer)


def _is_separator(token: str) -> bool:
    return bool(token) and set(token) <= _SEPARATOR_CHARS


def _is_redirection(token: str) -> bool:
    return bool(token) and set(token) <= {"<", ">", "&", "|"} and ("<" in token or ">" in token)


def _words(line: str) -> Iterator[list[str]]:
    """The words of each simple command, redirections (with their targets) removed."""
    words: list[str] = []
    tokens = iter(_tokens(line))
    for token in tokens:
        if _is_redirection(token):
            next(tokens, None)  # the redirection's target
            if words and words[-1].isdigit():  # `2>file`: the fd number is no word
                words.pop()
        elif _is_separator(token):
            if words:
                yield words
            words = []
        else:
            words.append(token)
    if words:
        yield words


def _unwrap(words: Sequence[str], shell: str) -> SimpleCommand | None:
    """Skip prefixes and wrappers; None if the words run no program."""
    leading = _LEADING_WORDS.get(shell, _LEADING_WORDS["bash"])
    sudo = False
    i = 0
    assignments_ok = True
    while i < len(words):
        word = words[i]
        if word in leading or (assignments_ok and _ASSIGNMENT.match(word)):
            i += 1
            continue
        wrapper = _WRAPPERS.get(word)
        if wrapper is None:
            return SimpleCommand(word, tuple(words[i + 1:]), sudo)
        sudo = sudo or word == "sudo"
        assignments_ok = wrapper.takes_assignments
        i += 1
        while i < len(words) and words[i].startswith("-") and words[i] != "-":
            option = words[i]
            i += 1
            if option == "--":
                break
            if option in wrapper.not_running:
                return None
            if option in wrapper.with_argument:
                i += 1
    return None


def split_commands(line: str, shell: str = "bash") -> list[SimpleCommand]:
    """The simple commands of `line`, in order; [] for a line that cannot be
    split (an unclosed quote, say): the hook then stays silent."""
    try:
        groups = list(_words(line))
    except ValueError:
        return []
    commands = (_unwrap(words, shell) for words in groups)
    return [command for command in commands if command is not None]


def is_builtin(name: str, shell: str) -> bool:
    return name in _BUILTINS.get(shell, _BUILTINS["bash"])


def resolve_program(name: str, cwd: str | os.PathLike[str], path_env: str | None) -> Path | None:
    """The file the shell runs for `name`: a name with a `/` is a path (relative
    to the shell's cwd), any other is looked up on PATH (an empty entry is the
    cwd), the first executable regular file winning. None if there is none."""
    if "/" in name:
        candidate = Path(os.path.expanduser(name))
        if not candidate.is_absolute():
            candidate = Path(cwd) / candidate
        return candidate if candidate.is_file() else None
    if not name or path_env is None:
        return None
    for directory in path_env.split(os.pathsep):
        candidate = Path(directory or cwd) / name
        if not candidate.is_absolute():
            candidate = Path(cwd) / candidate
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def programs(line: str, *, shell: str, cwd: str | os.PathLike[str],
             path_env: str | None) -> list[Program]:
    """Every file the line may have run, once each, builtins left out."""
    found: list[Program] = []
    seen: set[Path] = set()
    for command in split_commands(line, shell):
        if "/" not in command.name and is_builtin(command.name, shell):
            continue
        path = resolve_program(command.name, cwd, path_env)
        if path is None or path in seen:
            continue
        seen.add(path)
        found.append(Program(command, path))
    return found
