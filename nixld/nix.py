"""The one place that runs Nix.

Every Nix command goes through `_run`: it logs the exact command, passes the
environment untouched (the user's nix.conf, `NIX_CONFIG` and trusted settings
apply as they are), turns a missing or failing Nix into one `NixError` line,
and on Ctrl-C interrupts the child, waits for it (Nix cleans up after
SIGINT: a half-fetched path is never registered valid) and re-raises.

Checked against Nix 2.8 (Debian's nix-bin): `nix-store --realise --dry-run`
prints its plan on stderr and exits 0 even for paths nobody can provide;
`--log-format internal-json` works on the legacy commands; `nix copy` needs the
`nix-command` feature.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from nixld.errors import NixError, StateError
from nixld.progress import ProgressLine
from nixld.text import human_size, safe

log = logging.getLogger(__name__)

INSTALL_HINT: Final = "install Nix, see https://nixos.org/download"
NIX_COMMAND: Final = ("--extra-experimental-features", "nix-command")
NIX_FLAKES: Final = ("--extra-experimental-features", "nix-command flakes")

# A store path as Nix names it: 32 base-32 hash characters, then the name.
# Checked before a path reaches a Nix expression (profile elements).
STORE_PATH_RE: Final = re.compile(r"^/nix/store/[0-9a-df-np-sv-z]{32}-[A-Za-z0-9+\-._?=]+$")
_ANSI_RE: Final = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# How long a child gets to clean up after SIGINT before it is killed.
_INTERRUPT_GRACE_S: Final = 10.0


NIXOS_SETTING: Final = "on NixOS: nix.settings.{}"


def _listed(items: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(safe(p) for p in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


class NotAvailableError(NixError):
    """No configured substituter has these store paths (and they are not built here)."""

    def __init__(self, paths: Sequence[str], substituters: Sequence[str] = ()) -> None:
        self.paths = list(paths)
        self.substituters = list(substituters)
        asked = (f"asked {_listed(self.substituters)}" if self.substituters
                 else "no substituter is configured")
        super().__init__(
            f"no configured substituter has {_listed(self.paths)} ({asked}; check "
            "`substituters` in nix.conf or NIX_CONFIG, or build the package from your nixpkgs)")


class NixTrustError(NixError):
    """Nix refused a substituter or a path on trust: only a setting can fix it,
    so trying other candidates or building them changes nothing."""


class UntrustedSubstituterError(NixTrustError):
    """The Nix daemon ignored substituters this (untrusted) user asked for."""

    def __init__(self, substituters: Sequence[str]) -> None:
        self.substituters = list(dict.fromkeys(substituters))
        s = "s" if len(self.substituters) > 1 else ""
        super().__init__(
            f"the Nix daemon ignores the substituter{s} {_listed(self.substituters)}: you are "
            "not a trusted user; add it to `trusted-substituters` in the daemon's nix.conf "
            f"({NIXOS_SETTING.format('trusted-substituters')}), or add yourself to "
            "`trusted-users`")


class UnsignedPathError(NixTrustError):
    """A substituter has the path, but not signed by a key Nix trusts."""

    def __init__(self, path: str, substituter: str) -> None:
        self.path = path
        self.substituter = substituter
        super().__init__(
            f"{safe(path)} from {safe(substituter)} is not signed by any key in "
            "`trusted-public-keys`: add the cache's public key there "
            f"({NIXOS_SETTING.format('trusted-public-keys')}), or use a signed cache")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def is_store_path(path: str) -> bool:
    return STORE_PATH_RE.match(path) is not None


def check_store_paths(paths: Iterable[str]) -> list[str]:
    """The paths, each checked to be a plain store path (no sub-path, no junk)."""
    out = list(paths)
    for p in out:
        if not is_store_path(p):
            raise NixError(f"not a store path: {safe(p)}")
    return out


def _clean(line: str) -> str:
    return _ANSI_RE.sub("", line).strip()


def _message_of(line: str) -> str:
    """A plain line, or the message of an internal-json log line."""
    if line.startswith("@nix "):
        try:
            event = json.loads(line[5:])
        except ValueError:
            return ""
        if event.get("action") != "msg" or int(event.get("level", 9)) > 1:
            return ""
        line = str(event.get("msg", ""))
    return _clean(line)


def _error_line(stderr: str) -> str:
    """The line of Nix's output that says what went wrong.

    For a failed build, the builder's last log line (printed just before the
    error) is added: it usually says why.
    """
    lines = [m for m in map(_message_of, stderr.splitlines()) if m]
    for i, line in enumerate(lines):
        if line.startswith("error:"):
            message = line.removeprefix("error:").strip()
            before = lines[i - 1] if i else ""
            if message.startswith("builder for") and before and \
                    not before.startswith(("building '", "/nix/store/")):
                message += f" (last log line: {before})"
            return message + _hint_for(message)
    return lines[-1] if lines else "no output"


def _hint_for(message: str) -> str:
    """What to do about a Nix setup problem the user can fix in one step."""
    if "specified in 'build-users-group' does not exist" in message:
        return (" (create Nix's build users, e.g. Debian's `apt-get install "
                "nix-setup-systemd`, or set `build-users-group =` in nix.conf)")
    return ""


def _run(args: Sequence[str], *, what: str, check: bool = True,
         on_stderr_line: Callable[[str], None] | None = None) -> Result:
    """Run one Nix command; `what` names the job in error messages."""
    log.debug("running %s", shlex.join(args))
    try:
        child = subprocess.Popen(
            list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="surrogateescape")
    except FileNotFoundError:
        raise NixError(f"Nix is not installed (no {args[0]} on PATH): {INSTALL_HINT}") from None
    except OSError as err:
        raise NixError(f"cannot run {args[0]}: {err.strerror}") from None
    out: list[str] = []
    err_lines: list[str] = []
    assert child.stdout is not None and child.stderr is not None
    stdout = child.stdout
    # stdout drains on a thread while stderr is read line by line here: neither
    # pipe can fill up and stall Nix.
    reader = threading.Thread(target=lambda: out.append(stdout.read()), daemon=True)
    reader.start()
    try:
        for line in child.stderr:
            err_lines.append(line)
            if on_stderr_line is not None:
                on_stderr_line(line)
        child.wait()
    except KeyboardInterrupt:
        _interrupt(child)
        raise
    reader.join()
    result = Result(child.returncode, "".join(out), "".join(err_lines))
    log.debug("%s exited %d", args[0], result.returncode)
    if check and result.returncode != 0:
        raise NixError(f"{what} failed: {safe(_error_line(result.stderr))}")
    return result


def _interrupt(child: subprocess.Popen[str]) -> None:
    """Let Nix clean up after Ctrl-C (it already got SIGINT from a terminal)."""
    deadline = time.monotonic() + _INTERRUPT_GRACE_S
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
    while child.poll() is None:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
        except KeyboardInterrupt:  # a second Ctrl-C: stop waiting politely
            child.kill()


# ---------------------------------------------------------------- validity


def invalid_paths(store_paths: Sequence[str]) -> list[str]:
    """The paths among `store_paths` that are not valid in the local store."""
    paths = check_store_paths(store_paths)
    if not paths:
        return []
    res = _run(["nix-store", "--check-validity", "--print-invalid", *paths],
               what="checking store paths")
    return res.stdout.split()


def is_valid(store_path: str) -> bool:
    return not invalid_paths([store_path])


# ---------------------------------------------------------------- fetching


@dataclass(frozen=True)
class FetchPlan:
    """What `nix-store --realise` would do for some paths."""

    fetch: list[str] = field(default_factory=list)  # to substitute, closure included
    unavailable: list[str] = field(default_factory=list)  # nobody can provide these
    build: list[str] = field(default_factory=list)  # derivations to build
    download_bytes: int = 0  # Nix prints MiB with two decimals: precise to 10 KiB
    unpacked_bytes: int = 0
    ignored: list[str] = field(default_factory=list)  # substituters the daemon ignored


_FETCH_RE: Final = re.compile(r"will be fetched \(([\d.]+) MiB download, ([\d.]+) MiB unpacked\)")
# What Nix 2.8 says (as warnings) when it will not use a substituter or a path.
_UNTRUSTED_RE: Final = re.compile(r"ignoring untrusted substituter '([^']*)'")
_UNSIGNED_RE: Final = re.compile(r"the substitute for '(/nix/store/[^']*)' from '([^']*)' "
                                 r"is not signed by any of the keys in 'trusted-public-keys'")
_MIB: Final = 1024 * 1024


def parse_dry_run(stderr: str) -> FetchPlan:
    """Parse `nix-store --realise --dry-run` (Nix's printMissing)."""
    fetch: list[str] = []
    unavailable: list[str] = []
    build: list[str] = []
    download = unpacked = 0
    section: list[str] | None = None
    for raw in stderr.splitlines():
        line = _clean(raw)
        if raw.startswith("  /"):
            if section is not None:
                section.append(line)
            continue
        section = None
        if m := _FETCH_RE.search(line):
            download = round(float(m.group(1)) * _MIB)
            unpacked = round(float(m.group(2)) * _MIB)
            section = fetch
        elif "don't know how to build" in line:
            section = unavailable
        elif "will be built" in line:
            section = build
    return FetchPlan(fetch, unavailable, build, download, unpacked,
                     ignored=ignored_substituters(stderr))


def ignored_substituters(stderr: str) -> list[str]:
    """The substituters the Nix daemon said it ignores (this user is not trusted)."""
    found = (_UNTRUSTED_RE.search(m) for m in map(_message_of, stderr.splitlines()))
    return list(dict.fromkeys(m.group(1) for m in found if m))


def trust_error(stderr: str) -> NixTrustError | None:
    """Why Nix refused to substitute, when the reason is a trust setting."""
    ignored = ignored_substituters(stderr)
    if ignored:
        return UntrustedSubstituterError(ignored)
    for line in map(_message_of, stderr.splitlines()):
        if m := _UNSIGNED_RE.search(line):
            return UnsignedPathError(m.group(1), m.group(2))
    return None


# A store path that is never valid: asking about it costs the daemon one
# lookup in its database and no substituter query.
_PROBE_PATH: Final = "/nix/store/" + "0" * 32 + "-nixld-doctor-probe"
DAEMON_SOCKET: Final = "/nix/var/nix/daemon-socket/socket"
NIX_DB_DIR: Final = "/nix/var/nix/db"


def uses_daemon(environ: Mapping[str, str]) -> bool:
    """Does Nix go through nix-daemon here? As Nix 2.8 decides: NIX_REMOTE
    `daemon` or `unix://...`; unset or `auto`, the daemon unless this user can
    write the store's database itself."""
    remote = environ.get("NIX_REMOTE", "") or "auto"
    if remote == "daemon" or remote.startswith("unix://"):
        return True
    if remote != "auto":
        return False
    return not os.access(NIX_DB_DIR, os.W_OK) and os.path.exists(DAEMON_SOCKET)


def daemon_ignored_substituters() -> list[str]:
    """The configured substituters the daemon refuses this user (it says so
    whenever a client connects with settings it does not trust)."""
    res = _run(["nix-store", "--check-validity", "--print-invalid", _PROBE_PATH],
               what="asking the Nix daemon", check=False)
    if res.returncode != 0:
        raise NixError(f"asking the Nix daemon failed: {safe(_error_line(res.stderr))}")
    return ignored_substituters(res.stderr)


def configured_substituters() -> list[str]:
    """The `substituters` setting as Nix sees it here (nix.conf, then NIX_CONFIG)."""
    res = _run(["nix", *NIX_COMMAND, "show-config"], what="reading the Nix configuration",
               check=False)
    for line in res.stdout.splitlines():
        name, _, value = line.partition(" = ")
        if name.strip() == "substituters":
            return value.split()
    return []


def plan_fetch(store_paths: Sequence[str]) -> FetchPlan:
    """Ask Nix what realising `store_paths` would fetch, from which nothing is done."""
    paths = check_store_paths(store_paths)
    if not paths:
        return FetchPlan()
    res = _run(["nix-store", "--realise", "--dry-run", *paths],
               what="asking Nix what to fetch")
    return parse_dry_run(res.stderr)


def query_missing(store_paths: Sequence[str]) -> tuple[list[str], int]:
    """The paths realising would fetch (closure included) and the download size in bytes.

    Paths that no substituter has are not counted; `plan_fetch` lists them.
    """
    plan = plan_fetch(store_paths)
    return plan.fetch, plan.download_bytes


class Progress:
    """What Nix is fetching, on stderr: a summary line, then a live line on a terminal.

    Fed from Nix's `--log-format internal-json` activity stream: result type
    105 (progress) of the copy-paths activity counts paths, and byte progress
    of file transfers (activity 101) counts the download.
    """

    _ACT_FILE_TRANSFER: Final = 101
    _ACT_COPY_PATHS: Final = 103
    _RES_PROGRESS: Final = 105

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.paths_done = 0
        self.paths_total = 0
        self.download_total = 0
        self._transfers: dict[int, int] = {}  # activity id -> bytes done
        self._kinds: dict[int, int] = {}  # activity id -> activity type
        self._last_draw = 0.0
        self._line = ProgressLine(self.stream, live=self.live)

    def start(self, plan: FetchPlan) -> None:
        self.paths_total = len(plan.fetch)
        self.download_total = plan.download_bytes
        n = self.paths_total
        print(f"nixld-hook: fetching {n} store path{'s' if n != 1 else ''} "
              f"({human_size(plan.download_bytes)} download)", file=self.stream, flush=True)

    def feed(self, line: str) -> None:
        """One line of Nix's stderr."""
        if not line.startswith("@nix "):
            return
        try:
            event: dict[str, Any] = json.loads(line[5:])
        except ValueError:
            return
        action = event.get("action")
        if action == "start":
            kind = int(event.get("type", 0))
            fields = event.get("fields") or [""]
            if kind == self._ACT_FILE_TRANSFER and "/nar/" not in str(fields[0]):
                return  # narinfo and nix-cache-info downloads are not the download
            self._kinds[int(event.get("id", 0))] = kind
        elif action == "result" and event.get("type") == self._RES_PROGRESS:
            self._progress(int(event.get("id", 0)), event.get("fields", []))

    def _progress(self, act: int, fields: list[int]) -> None:
        kind = self._kinds.get(act)
        if kind == self._ACT_COPY_PATHS and len(fields) >= 2:
            self.paths_done, self.paths_total = fields[0], max(fields[1], self.paths_total)
        elif kind == self._ACT_FILE_TRANSFER and fields:
            self._transfers[act] = fields[0]
        self._draw()

    def _draw(self, final: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not final and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        got = sum(self._transfers.values())
        # file:// caches report no transfers: then the path count says it all
        size = f", {human_size(got)} of {human_size(self.download_total)}" \
            if self._transfers and self.download_total else ""
        self._line.show(f"fetched {self.paths_done}/{self.paths_total} paths{size}")

    def finish(self) -> None:
        if self.live:
            self._draw(final=True)
            self._line.end(keep=True)


def realise(store_paths: Sequence[str], *, quiet: bool = False,
            progress: Progress | None = None) -> None:
    """Make `store_paths` valid, substituting them from the configured substituters.

    Paths already valid cost one query. Raises `NotAvailableError` when no
    substituter has some path (the caller may fall back to `build_attr`), a
    `NixTrustError` when the daemon ignores a substituter or a path lacks a
    trusted signature (no fallback helps: a setting must change), `NixError`
    when fetching fails otherwise. Prints progress on stderr unless `quiet`.
    """
    missing = invalid_paths(store_paths)
    if not missing:
        return
    plan = plan_fetch(missing)
    if plan.unavailable:
        raise _unavailable(plan.unavailable, plan.ignored)
    if progress is None and not quiet:
        progress = Progress()
    if progress is not None:
        progress.start(plan)
    try:
        res = _run(["nix-store", "--realise", "--log-format", "internal-json", *missing],
                   what=f"fetching {len(plan.fetch)} store paths", check=False,
                   on_stderr_line=progress.feed if progress is not None else _ignore)
    finally:
        if progress is not None:
            progress.finish()
    if res.returncode != 0:
        raise trust_error(res.stderr) or NixError(
            f"fetching {len(plan.fetch)} store paths failed: {safe(_error_line(res.stderr))}")
    still = invalid_paths(missing)
    if still:  # e.g. a path changed hands between the plan and the fetch
        raise _unavailable(still, plan.ignored)


def _unavailable(paths: Sequence[str], ignored: Sequence[str]) -> NixError:
    """No substituter had `paths`: because the daemon ignored some, or for real."""
    if ignored:
        return UntrustedSubstituterError(ignored)
    return NotAvailableError(paths, configured_substituters())


def _ignore(_line: str) -> None:
    pass


# ---------------------------------------------------------------- building


def _nixpkgs_in_nix_path() -> bool:
    res = _run(["nix-instantiate", "--find-file", "nixpkgs"], what="finding <nixpkgs>",
               check=False)
    return res.returncode == 0


def build_attr(attr: str, output: str = "out") -> str:
    """Build (or substitute) `attr`'s `output` from the user's nixpkgs; its store path.

    `<nixpkgs>` from NIX_PATH when it names one, else the flake registry's
    `nixpkgs`. The result is not rooted: install it in the profile next.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_'\-.]*", attr) or \
            not re.fullmatch(r"[A-Za-z0-9_\-]+", output):
        raise NixError(f"not a nixpkgs attribute: {safe(attr)}.{safe(output)}")
    target = f"{attr}.{output}"
    if _nixpkgs_in_nix_path():
        res = _run(["nix-build", "<nixpkgs>", "--no-out-link", "-A", target],
                   what=f"building {target} from <nixpkgs>")
        built = res.stdout.split()
    else:
        res = _run(["nix", *NIX_FLAKES, "build", "--no-link", "--json", f"nixpkgs#{target}"],
                   what=f"building {target} from the flake registry's nixpkgs "
                        "(no <nixpkgs> in NIX_PATH)")
        built = _outputs_of_build_json(res.stdout, output)
    if not built or not is_store_path(built[0]):
        raise NixError(f"building {target} gave no store path")
    return built[0]


def _outputs_of_build_json(stdout: str, output: str) -> list[str]:
    try:
        data = json.loads(stdout)
        outs: dict[str, str] = data[0]["outputs"]
    except (ValueError, LookupError, TypeError):
        return []
    return [outs[output]] if output in outs else list(outs.values())[:1]


# ---------------------------------------------------------------- store and cache


def add_to_store(path: Path) -> str:
    """`nix-store --add PATH`: copy a file or directory into the store."""
    res = _run(["nix-store", "--add", os.fspath(path)], what=f"adding {safe(path)} to the store")
    return res.stdout.strip()


def copy_to_cache(store_paths: Sequence[str], cache_dir: Path, *,
                  secret_key: Path | None = None, compression: str | None = None) -> None:
    """Put `store_paths` (with their closure) into a `file://` binary cache,
    signed with `secret_key` (a `nix-store --generate-binary-cache-key` file),
    compressed with `compression` (e.g. "zstd") instead of Nix's default xz."""
    paths = check_store_paths(store_paths)
    params = [f"secret-key={secret_key.absolute()}"] if secret_key is not None else []
    params += [f"compression={compression}"] if compression is not None else []
    url = f"file://{cache_dir.absolute()}" + ("?" + "&".join(params) if params else "")
    _run(["nix", *NIX_COMMAND, "copy", "--to", url, *paths],
         what=f"copying to the binary cache {safe(cache_dir)}")


def generate_signing_key(name: str, secret: Path, public: Path) -> str:
    """A binary cache key pair; the public key (`name:base64`)."""
    _run(["nix-store", "--generate-binary-cache-key", name, os.fspath(secret),
          os.fspath(public)], what="generating a binary cache key")
    return public.read_text().strip()


def add_root(store_path: str, root: Path) -> None:
    """An indirect gc root at `root` keeping the (valid) `store_path` alive."""
    [path] = check_store_paths([store_path])
    _run(["nix-store", "--realise", "--add-root", os.fspath(root), path],
         what=f"adding the gc root {safe(root)}")


def live_paths() -> set[str]:
    """Every store path some gc root keeps alive (`nix-store --gc --print-live`)."""
    res = _run(["nix-store", "--gc", "--print-live"], what="listing live store paths")
    return set(res.stdout.split())


def referrers_closure(store_paths: Sequence[str]) -> list[str]:
    """The paths and every valid path that refers to them, directly or not."""
    paths = check_store_paths(store_paths)
    if not paths:
        return []
    res = _run(["nix-store", "--query", "--referrers-closure", *paths],
               what="querying referrers")
    return res.stdout.split()


def delete_paths(store_paths: Sequence[str]) -> None:
    """`nix-store --delete`: fails if a path is still alive (reachable from a root)."""
    paths = check_store_paths(store_paths)
    if paths:
        _run(["nix-store", "--delete", *paths], what="deleting store paths")


def collect_garbage() -> None:
    """`nix-collect-garbage -d`: what a user runs to free space."""
    _run(["nix-collect-garbage", "-d"], what="collecting garbage")


# ---------------------------------------------------------------- nix-env profiles


@dataclass(frozen=True)
class ProfileElement:
    store_path: str
    name: str
    priority: int | None


def profile_elements(profile: Path) -> list[ProfileElement]:
    """The elements of a nix-env profile (none when it does not exist yet)."""
    if not os.path.lexists(profile):
        return []
    res = _run(["nix-env", "-p", os.fspath(profile), "-q", "--json", "--out-path", "--meta"],
               what=f"reading the profile {safe(profile)}")
    try:
        data: dict[str, dict[str, Any]] = json.loads(res.stdout or "{}")
    except ValueError:
        raise NixError(f"cannot parse the elements of the profile {safe(profile)}") from None
    out = []
    for item in data.values():
        outputs = item.get("outputs") or {}
        prio = (item.get("meta") or {}).get("priority")
        for path in outputs.values():
            if isinstance(path, str):
                out.append(ProfileElement(path, str(item.get("name", "")),
                                          prio if isinstance(prio, int) else None))
    return out


def _element_expr(path: str, priority: int) -> str:
    # A derivation-like attrset nix-env installs as is: `outputs`/`out` make it
    # link the path (and root it through the manifest); `meta.priority`, unique
    # per element, lets two elements holding the same file coexist.
    name = path.split("-", 1)[1]
    return (f'(let p = builtins.storePath "{path}"; in {{ type = "derivation"; '
            f'name = "{name}"; outPath = p; outputs = [ "out" ]; out = {{ outPath = p; }}; '
            f"meta.priority = {priority}; }})")


def profile_add(profile: Path, paths_with_priority: Sequence[tuple[str, int]]) -> None:
    """Add elements in one new generation, keeping every existing element."""
    items = [(p, int(prio)) for p, prio in paths_with_priority]
    check_store_paths(p for p, _ in items)
    if not items:
        return
    expr = "_: [ " + " ".join(_element_expr(p, prio) for p, prio in items) + " ]"
    _profile_run(profile, ["-i", "--preserve-installed", "-E", expr],
                 what="installing into the profile")


def profile_remove(profile: Path, store_paths: Sequence[str]) -> None:
    """Remove the elements with these store paths, in one new generation."""
    paths = check_store_paths(store_paths)
    if paths and os.path.lexists(profile):
        _profile_run(profile, ["-e", *paths], what="removing from the profile")


def profile_generations(profile: Path) -> list[Path]:
    """The generation links nix-env keeps beside the profile (`NAME-N-link`)."""
    return sorted(profile.parent.glob(f"{profile.name}-*-link"))


def profile_delete_old_generations(profile: Path) -> None:
    """Old generations keep their paths alive: drop all but the current one."""
    if len(profile_generations(profile)) > 1:
        _profile_run(profile, ["--delete-generations", "old"],
                     what="deleting old profile generations")


def _profile_run(profile: Path, args: list[str], *, what: str) -> None:
    try:
        _run(["nix-env", "-p", os.fspath(profile), *args], what=what)
    except NixError as err:
        if not os.access(profile.parent, os.W_OK):
            raise StateError(f"cannot write the state directory {safe(profile.parent)} "
                             "(read-only?): make it writable or set XDG_STATE_HOME") from err
        raise
