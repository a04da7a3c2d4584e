"""A NixOS-like world on a plain Debian machine: the ground every end-to-end
test (and `nixld-hook demo`) stands on.

What it holds, all real:

- a NixOS-like loader: a glibc store path made from Debian's libc6 whose
  ld.so searches only its own lib/ (its compiled-in system directories and
  its /etc/ld.so.cache name overwritten at the same length), used as NIX_LD;
- unmodified foreign binaries from Debian packages (FOREIGN says why each);
- C fixtures compiled on the spot for the loader's corner cases;
- nixpkgs-like providers: store paths made from Debian library packages,
  named as nixpkgs names them, added with `nix-store --add`, copied into a
  local file:// binary cache and deleted from the store, so every realisation
  is a real substitution;
- a nix-index database describing those real store paths, with the traps of
  the real one (an FHS env holding copies of almost everything, applications
  bundling copies, non-top-level copies, an older soname lacking a symbol
  version, store paths in no particular order);
- switches for the failures the hooks catch: copies whose interpreter does
  not exist, and copies whose interpreter is the project's shim.

A world is built once into `$NIXLD_WORLD_HOME` (default
`$XDG_CACHE_HOME/nixld-world`) under a key made of WORLD_VERSION and its
inputs, and reused afterwards; the downloaded .deb files are kept there too.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nixld import nix
from nixld.errors import ExitCode, NixError, NixldError
from nixld.text import safe

# Bump when anything below changes what a world holds.
WORLD_VERSION = 1

Kind = Literal["full", "small"]
STORE_DIR = "/nix/store"
SYSTEM = "x86_64-linux"
MULTIARCH = "x86_64-linux-gnu"
# The interpreter the no-interpreter switch points at: like /lib64/ld-linux-x86-64.so.2
# on NixOS, it does not exist.
MISSING_INTERPRETER = "/lib64/nixld-world-missing/ld-linux-x86-64.so.2"
DATABASE_SEED = 5  # the shuffle of store paths in the database; any fixed number


class WorldError(NixldError):
    exit_code = ExitCode.FAILURE


# ------------------------------------------------------------ what the world holds


@dataclass(frozen=True)
class Foreign:
    """An unmodified binary taken from a Debian package."""

    name: str
    deb: str
    why: str
    small: bool = False  # part of the demo's small world


@dataclass(frozen=True)
class Provider:
    """A nixpkgs-like store path made from Debian library packages."""

    pname: str  # nixpkgs' pname; the version comes from the first deb
    attr: str
    output: str  # "out" or "lib": a "lib" output's store name ends in -lib
    debs: tuple[str, ...]
    small: bool = False


FOREIGN: tuple[Foreign, ...] = (
    Foreign("bzip2", "bzip2", "a single missing library (libbz2.so.1.0)", small=True),
    Foreign("jq", "jq", "a chain: libjq.so.1 needs libonig.so.5, which its own "
            "RUNPATH does not cover", small=True),
    Foreign("curl", "curl", "a large closure: libcurl.so.4 pulls in 25+ libraries "
            "(openssl, krb5's four, gnutls, nettle, ldap, sasl, ...)"),
    Foreign("ninja", "ninja-build", "C++: libstdc++.so.6 (GLIBCXX versions), which "
            "needs libgcc_s.so.1"),
    Foreign("nano", "nano", "ncurses: libncursesw.so.6 and libtinfo.so.6"),
    Foreign("zstd", "zstd", "compression: libzstd is linked in, it needs libz, "
            "liblzma and liblz4"),
    Foreign("pigz", "pigz", "compression: libz.so.1 alone"),
)

PROVIDERS: tuple[Provider, ...] = (
    Provider("zlib", "zlib", "out", ("zlib1g",), small=True),
    Provider("bzip2", "bzip2", "out", ("libbz2-1.0",), small=True),
    Provider("xz", "xz", "out", ("liblzma5",)),
    Provider("lz4", "lz4", "out", ("liblz4-1",)),
    Provider("zstd", "zstd", "out", ("libzstd1",)),
    Provider("jq", "jq", "lib", ("libjq1",), small=True),
    Provider("oniguruma", "oniguruma", "lib", ("libonig5",), small=True),
    Provider("gcc", "gcc-unwrapped", "lib", ("libstdc++6", "libgcc-s1")),
    Provider("ncurses", "ncurses", "out", ("libncursesw6", "libtinfo6")),
    Provider("curl", "curl", "out", ("libcurl4",)),
    Provider("nghttp2", "nghttp2", "lib", ("libnghttp2-14",)),
    Provider("libidn2", "libidn2", "out", ("libidn2-0",)),
    Provider("rtmpdump", "rtmpdump", "out", ("librtmp1",)),
    Provider("libssh2", "libssh2", "out", ("libssh2-1",)),
    Provider("libpsl", "libpsl", "out", ("libpsl5",)),
    Provider("openssl", "openssl", "out", ("libssl3",)),
    Provider("krb5", "krb5", "lib",
             ("libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0")),
    Provider("e2fsprogs", "e2fsprogs", "out", ("libcom-err2",)),
    Provider("keyutils", "keyutils", "lib", ("libkeyutils1",)),
    Provider("openldap", "openldap", "out", ("libldap-2.5-0",)),
    Provider("cyrus-sasl", "cyrus_sasl", "out", ("libsasl2-2",)),
    Provider("brotli", "brotli", "lib", ("libbrotli1",)),
    Provider("gnutls", "gnutls", "out", ("libgnutls30",)),
    Provider("nettle", "nettle", "out", ("libnettle8", "libhogweed6")),
    Provider("gmp", "gmp", "out", ("libgmp10",)),
    Provider("p11-kit", "p11-kit", "out", ("libp11-kit0",)),
    Provider("libunistring", "libunistring", "out", ("libunistring2",)),
    Provider("libtasn1", "libtasn1", "out", ("libtasn1-6",)),
    Provider("libffi", "libffi", "out", ("libffi8",)),
)

# The traps of the real nixpkgs database (see `_trap_specs`): which provider
# libraries the FHS env copies (all but these), and what the bundling app ships.
FHS_LEAVES_OUT = ("libncursesw.so", "libkeyutils.so")  # name prefixes
BUNDLED_BY_APP = ("libz.so.1", "libssl.so.3", "libcrypto.so.3", "libstdc++.so.6")
# Only a non-top-level store path provides this soname (nothing else has it).
ONLY_NON_TOPLEVEL = "keyutils"


# ------------------------------------------------------------ the built world


@dataclass(frozen=True)
class StoreItem:
    """A store path the world made, as the database describes it."""

    store_path: str
    attr: str
    output: str
    toplevel: bool
    role: str  # provider, glibc, fhs, bundle, non-toplevel, old-version, fixture
    sonames: tuple[str, ...]  # the library names directly under lib/

    @property
    def lib_dir(self) -> str:
        return f"{self.store_path}/lib"


@dataclass(frozen=True)
class World:
    """A built world: its paths and the environment tests run in."""

    root: Path
    kind: str
    key: str
    ld_so: Path  # NIX_LD: the NixOS-like loader
    glibc: str  # its store path (kept valid and gc-rooted)
    loader_link: str  # the same-length symlink the patched ld.so searches
    cache_dir: Path  # the file:// binary cache holding every other store path
    database_dir: Path  # NIX_INDEX_DATABASE (the file `files` inside)
    empty_lib_dir: Path  # NIX_LD_LIBRARY_PATH: an empty directory
    binaries: Mapping[str, Path]  # unmodified foreign binaries, by name
    fixtures: Mapping[str, Path]  # compiled fixture binaries, by name
    no_interp: Mapping[str, Path]  # copies whose interpreter does not exist
    shimmed: Mapping[str, Path]  # copies whose interpreter is the shim (if built)
    shim: Path | None  # the world's copy of shim/build/nixld-shim
    items: tuple[StoreItem, ...]  # every store path in the database
    why: Mapping[str, str] = field(default_factory=dict)  # binary -> why it is here

    @property
    def database_file(self) -> Path:
        return self.database_dir / "files"

    @property
    def substituter(self) -> str:
        return f"file://{self.cache_dir}"

    @property
    def nix_config(self) -> str:
        return (f"substituters = {self.substituter}\nrequire-sigs = false\n"
                f"narinfo-cache-negative-ttl = 0\n{_build_users_setting()}")

    def item(self, store_name: str) -> StoreItem:
        """The store item whose name (after the hash) is `store_name`."""
        for item in self.items:
            if item.store_path.split("-", 1)[1] == store_name:
                return item
        raise KeyError(store_name)

    def providers_of(self, soname: str) -> list[StoreItem]:
        return [i for i in self.items if soname in i.sonames]

    @property
    def substitutable(self) -> list[str]:
        """Store paths that live only in the binary cache."""
        return [i.store_path for i in self.items if i.store_path != self.glibc]

    def env(self, home: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) with the world's settings and an isolated home."""
        env = dict(os.environ if base is None else base)
        for var in ("LD_LIBRARY_PATH", "LD_PRELOAD", "NIX_LD_x86_64_linux",
                    "NIX_LD_LIBRARY_PATH_x86_64_linux", "NIX_PATH"):
            env.pop(var, None)
        env.update({
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local/state"),
            "XDG_DATA_HOME": str(home / ".local/share"),
            "NIX_LD": str(self.ld_so),
            "NIX_LD_LIBRARY_PATH": str(self.empty_lib_dir),
            "NIX_CONFIG": self.nix_config,
            "NIX_INDEX_DATABASE": str(self.database_dir),
        })
        return env


# ------------------------------------------------------------ running things


def _build_users_setting() -> str:
    """Root's Nix builds as the `nixbld` group's users by default; Debian's
    nix-bin alone (without nix-setup-systemd) creates no such group, and every
    build (a profile generation too) then fails. The world builds only trivial
    things, so there it builds as root instead."""
    import grp

    try:
        grp.getgrnam("nixbld")
    except KeyError:
        return "build-users-group =\n"
    return ""


def _run(cmd: Sequence[str], *, cwd: Path | None = None,
         env: Mapping[str, str] | None = None, error: type[NixldError] = WorldError) -> str:
    """Run a build step; its failure becomes one line naming the command."""
    try:
        proc = subprocess.run(list(cmd), cwd=cwd, env=None if env is None else dict(env),
                              capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise error(f"`{cmd[0]}` is not installed (needed to build the test world)") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if "error" in ln.lower()]
        last = (errors or lines or [f"exit status {proc.returncode}"])[0]
        raise error(f"`{' '.join(cmd[:3])} ...` failed: {safe(last)}")
    return proc.stdout


def _nix_store_add(paths: Sequence[Path]) -> list[str]:
    return [nix.add_to_store(p) for p in paths]


def _nix_is_valid(store_path: str) -> bool:
    return nix.is_valid(store_path)


def _nix_delete(store_paths: Iterable[str]) -> list[str]:
    """Delete the valid ones from the store; return those still alive (rooted)."""
    paths = list(store_paths)
    invalid = set(nix.invalid_paths(paths))
    live = set(_run(["nix-store", "--gc", "--print-live"], error=NixError).split())
    alive = [p for p in paths if p not in invalid and p in live]
    dead = [p for p in paths if p not in invalid and p not in live]
    if dead:  # with the garbage that refers to them (old profile generations)
        dead = _run(["nix-store", "--query", "--referrers-closure", *dead],
                    error=NixError).split()
    try:
        nix.delete_paths(dead)
    except NixError:  # rooted meanwhile (another Nix process): one by one
        for path in dead:
            try:
                nix.delete_paths([path])
            except NixError:
                if path in paths:
                    alive.append(path)
    return alive


def _nix_copy_to_cache(store_paths: Sequence[str], cache_dir: Path) -> None:
    """Like nix.copy_to_cache, but zstd-compressed: Nix's default (xz) takes
    the world's build from 3 s to 30 s on this machine."""
    nix.check_store_paths(store_paths)
    _run(["nix", *nix.NIX_COMMAND, "copy", "--to", f"file://{cache_dir}?compression=zstd",
          *store_paths], error=NixError)


def _nix_add_root(store_path: str, root: Path) -> None:
    """An indirect gc root at `root` (the glibc store path stays while the world does)."""
    _run(["nix-store", "--realise", "--add-root", str(root), store_path], error=NixError)


# ------------------------------------------------------------ Debian packages


def world_home() -> Path:
    """Where worlds and the .deb download cache live (kept between runs)."""
    env = os.environ.get("NIXLD_WORLD_HOME")
    if env:
        return Path(env)
    from xdg_base_dirs import xdg_cache_home

    return xdg_cache_home() / "nixld-world"


def _cached_deb(debs_dir: Path, package: str) -> Path | None:
    found = sorted(debs_dir.glob(f"{package}_*_amd64.deb"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def fetch_debs(packages: Iterable[str], debs_dir: Path) -> dict[str, Path]:
    """The .deb of each package: from the cache, else `apt-get download`."""
    debs_dir.mkdir(parents=True, exist_ok=True)
    wanted = sorted(set(packages))
    missing = [p for p in wanted if _cached_deb(debs_dir, p) is None]
    if missing:
        try:
            _run(["apt-get", "download", *missing], cwd=debs_dir)
        except WorldError as err:
            raise WorldError(f"{err} (is `apt-get update` done?)") from None
    found = {p: _cached_deb(debs_dir, p) for p in wanted}
    lost = [p for p, deb in found.items() if deb is None]
    if lost:
        raise WorldError(f"apt-get download gave no .deb for: {', '.join(lost)}")
    return {p: deb for p, deb in found.items() if deb is not None}


def deb_version(deb: Path) -> str:
    """The upstream version in a .deb's file name: 1:1.2.13.dfsg-1 -> 1.2.13."""
    version = deb.name.split("_")[1].replace("%3a", ":")
    version = version.split(":")[-1].rsplit("-", 1)[0]
    for cut in ("+dfsg", ".dfsg", "~", "+"):
        version = version.split(cut)[0]
    return version


def extract_deb(deb: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    _run(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


def multiarch_libs(tree: Path) -> list[Path]:
    """The .so files and symlinks directly in a package's multiarch lib dir(s)."""
    found = []
    for sub in (f"lib/{MULTIARCH}", f"usr/lib/{MULTIARCH}"):
        libdir = tree / sub
        if libdir.is_dir():
            found += [p for p in sorted(libdir.iterdir())
                      if ".so" in p.name and (p.is_symlink() or p.is_file())]
    return found


def copy_lib(src: Path, lib_dir: Path) -> None:
    """Copy a library file, or re-make a symlink as a relative one inside lib/."""
    dest = lib_dir / src.name
    if src.is_symlink():
        dest.symlink_to(os.path.basename(os.readlink(src)))
    else:
        shutil.copyfile(src, dest)
        dest.chmod(0o555 if os.access(src, os.X_OK) else 0o444)


# ------------------------------------------------------------ the NixOS-like loader

# glibc's compiled-in search directories and its cache file, in ld.so's rodata.
LD_SO_SYSTEM_DIRS = (f"/lib/{MULTIARCH}/", f"/usr/lib/{MULTIARCH}/", "/lib/", "/usr/lib/")
LD_SO_CACHE = "/etc/ld.so.cache"
LOADER_LINK_PREFIX = "/tmp/nixld-ld-"  # + 7 chars = len("/lib/x86_64-linux-gnu")


def _nowhere(length: int) -> bytes:
    """A directory name of exactly `length` bytes (ending in /) that does not exist."""
    return (("/.nixld-no-such-dir" + "-" * length)[:length - 1] + "/").encode()


def loader_link_for(ld_so: bytes) -> str:
    """The symlink the patched ld.so searches first. Named from the unpatched
    ld.so's content: the store path's hash cannot be used (it depends on the
    patched ld.so, which contains this name)."""
    name = LOADER_LINK_PREFIX + hashlib.sha256(ld_so).hexdigest()[:7]
    assert len(name) == len(LD_SO_SYSTEM_DIRS[0]) - 1
    return name


def _replace_all(data: bytes, old: bytes, new: bytes, *, nul_before: bool) -> tuple[bytes, int]:
    """Replace every occurrence of `old` by `new` (same length); with
    `nul_before`, only where `old` starts a C string."""
    assert len(old) == len(new)
    out, count, start = bytearray(data), 0, 0
    while (at := data.find(old, start)) >= 0:
        if not nul_before or at == 0 or data[at - 1] == 0:
            out[at:at + len(old)] = new
            count += 1
        start = at + 1
    return bytes(out), count


def patch_ld_so(data: bytes, link: str) -> bytes:
    """Debian's ld.so made NixOS-like: it searches only `link`/ (-> the store
    path's lib/), and has no /etc/ld.so.cache. glibc keeps the system
    directories as one block of C strings with a table of their lengths beside
    it; every string keeps its length, so the table stays right."""
    rest = LD_SO_SYSTEM_DIRS[1:]
    old_dirs = b"".join(d.encode() + b"\0" for d in LD_SO_SYSTEM_DIRS)
    new_dirs = (link + "/").encode() + b"\0" + b"".join(
        _nowhere(len(d)) + b"\0" for d in rest)
    data, count = _replace_all(data, old_dirs, new_dirs, nul_before=False)
    if count == 0:
        raise WorldError("ld.so has no system directories to patch (not Debian's glibc?)")
    cache = LD_SO_CACHE.encode() + b"\0"
    data, count = _replace_all(data, cache, _nowhere(len(LD_SO_CACHE))[:-1] + b"c\0",
                               nul_before=True)
    if count == 0:
        raise WorldError(f"ld.so has no {LD_SO_CACHE} to patch (not Debian's glibc?)")
    return data


def ensure_loader_link(link: str, glibc: str) -> None:
    """(Re)create the same-length symlink; /tmp may have been cleaned."""
    target = f"{glibc}/lib"
    with contextlib.suppress(OSError):
        if os.readlink(link) == target:
            return
    tmp = f"{link}.{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def build_glibc(libc6: Path, staging: Path) -> tuple[Path, str]:
    """Stage glibc-VERSION/lib from libc6 with a patched ld.so; return (dir, link)."""
    tree = extract_deb(libc6, staging / "deb-libc6")
    store_dir = staging / f"glibc-{deb_version(libc6)}"
    lib = store_dir / "lib"
    lib.mkdir(parents=True)
    for src in multiarch_libs(tree):
        copy_lib(src, lib)
    ld_so = lib / "ld-linux-x86-64.so.2"
    original = ld_so.read_bytes()
    link = loader_link_for(original)
    ld_so.chmod(0o755)
    ld_so.write_bytes(patch_ld_so(original, link))
    ld_so.chmod(0o555)
    return store_dir, link


# ------------------------------------------------------------ ELF facts (pyelftools)


def needed_of(path: Path) -> list[str]:
    """DT_NEEDED of an ELF file (read, never run)."""
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        for section in elf.iter_sections():
            if isinstance(section, DynamicSection):
                return [str(t.needed) for t in section.iter_tags()  # type: ignore[attr-defined]
                        if t.entry.d_tag == "DT_NEEDED"]
    return []


def uncovered(binary: Path, libs: Mapping[str, Path]) -> list[str]:
    """The sonames in `binary`'s closure that no library in `libs` provides."""
    seen: set[str] = set()
    missing: list[str] = []
    todo = needed_of(binary)
    while todo:
        soname = todo.pop()
        if soname in seen:
            continue
        seen.add(soname)
        if soname in libs:
            todo += needed_of(libs[soname])
        else:
            missing.append(soname)
    return sorted(missing)


# ------------------------------------------------------------ C fixtures

FIXTURE_SOURCES: dict[str, str] = {
    "foo.c": """
int foo_old(void) { return 1; }
int foo_mid(void) { return 2; }
#ifdef FOO_NEW
int foo_new(void) { return 3; }
#endif
""",
    "foo-1.1.map": ("FOO_1.0 { global: foo_old; local: *; };\n"
                    "FOO_1.1 { global: foo_mid; } FOO_1.0;\n"),
    "foo-1.2.map": ("FOO_1.0 { global: foo_old; local: *; };\n"
                    "FOO_1.1 { global: foo_mid; } FOO_1.0;\n"
                    "FOO_1.2 { global: foo_new; } FOO_1.1;\n"),
    "bar.c": "int bar(void) { return 7; }\n",
    "foo-tool.c": """
#include <stdio.h>
int foo_new(void); int bar(void);
int main(void) { printf("foo-tool: ok %d\\n", foo_new() + bar()); return 0; }
""",
    "bar-tool.c": """
#include <stdio.h>
int bar(void);
int main(void) { printf("bar-tool: ok %d\\n", bar()); return 0; }
""",
    "dlopen-tool.c": """
#include <dlfcn.h>
#include <stdio.h>
#define NOTE_JSON "[{\\"feature\\":\\"compression\\",\\"description\\":\\"gzip support\\"," \\
    "\\"priority\\":\\"recommended\\",\\"soname\\":[\\"libz.so.1\\"]}]"
/* The ELF dlopen metadata note (systemd's spec): owner FDO, type 0x407c0c0a. */
__attribute__((used, section(".note.dlopen"), aligned(4)))
static const struct { unsigned n_namesz, n_descsz, n_type; char name[4];
    char desc[(sizeof(NOTE_JSON) + 3) & ~3]; } note = {4, sizeof(NOTE_JSON), 0x407c0c0a,
    "FDO", NOTE_JSON};
int main(void) {
    void *z = dlopen("libz.so.1", RTLD_NOW);
    if (!z) { fprintf(stderr, "dlopen-tool: %s\\n", dlerror()); return 127; }
    const char *(*version)(void) = (const char *(*)(void))dlsym(z, "zlibVersion");
    printf("dlopen-tool: ok zlib %s\\n", version ? version() : "?");
    return 0;
}
""",
}

# name -> (what it shows, how it is linked)
FIXTURE_WHY: dict[str, str] = {
    "foo-tool": "needs foo_new@FOO_1.2 from libfoo.so.1 and libbar.so.1: the top-ranked-"
                "looking libfoo-1.1 (attr libfoo, also has libbar) lacks FOO_1.2",
    "origin-tool": "DT_RUNPATH $ORIGIN/../lib bundles libbar.so.1; libfoo.so.1 is missing",
    "rpath-tool": "DT_RPATH $ORIGIN/../decoy holds an aarch64 libbar.so.1 (skipped as "
                  "ld.so does); libbar.so.1 is missing",
    "runpath-tool": "DT_RUNPATH $ORIGIN/../decoy (same decoy, RUNPATH instead of RPATH)",
    "dlopen-tool": "needs only libc; dlopens libz.so.1 (declared in .note.dlopen)",
}


def _gcc(args: Sequence[str], cwd: Path) -> None:
    _run(["gcc", "-O1", *args], cwd=cwd)


def build_fixture_libs(src: Path, out: Path) -> dict[str, Path]:
    """libfoo 1.1 (old), libfoo 1.2 (new), libbar; each in its own lib/ dir."""
    libs = {}
    for name, args in (
        ("libfoo-1.1", ["foo.c", "-Wl,--version-script=foo-1.1.map", "-Wl,-soname,libfoo.so.1"]),
        ("libfoo-1.2", ["-DFOO_NEW", "foo.c", "-Wl,--version-script=foo-1.2.map",
                        "-Wl,-soname,libfoo.so.1"]),
        ("libbar-1.0", ["bar.c", "-Wl,-soname,libbar.so.1"]),
    ):
        soname = "libbar.so.1" if name.startswith("libbar") else "libfoo.so.1"
        lib = out / name / "lib"
        lib.mkdir(parents=True)
        _gcc(["-shared", "-fPIC", "-o", str(lib / soname), *args], src)
        libs[name] = lib
    return libs


def build_fixtures(src: Path, libs: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    """Compile the fixture binaries into dest/{bin,lib,decoy}."""
    for d in ("bin", "lib", "decoy"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(libs["libbar-1.0"] / "libbar.so.1", dest / "lib/libbar.so.1")
    # Linked by file name: NEEDED comes from each library's SONAME.
    new, bar = str(libs["libfoo-1.2"] / "libfoo.so.1"), str(libs["libbar-1.0"] / "libbar.so.1")
    out = {}

    def link(name: str, source: str, *args: str) -> None:
        _gcc(["-o", str(dest / "bin" / name), source, *args], src)
        out[name] = dest / "bin" / name

    link("foo-tool", "foo-tool.c", new, bar)
    link("origin-tool", "bar-tool.c", "-Wl,--no-as-needed", bar, new,
         "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../lib")
    link("rpath-tool", "bar-tool.c", bar,
         "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../decoy")
    link("runpath-tool", "bar-tool.c", bar,
         "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../decoy")
    link("dlopen-tool", "dlopen-tool.c")
    cross = shutil.which("aarch64-linux-gnu-gcc")
    if cross:  # the wrong-architecture decoy; without it the decoy dir stays empty
        _run([cross, "-shared", "-fPIC", "-o", str(dest / "decoy/libbar.so.1"), "bar.c",
              "-Wl,-soname,libbar.so.1"], cwd=src)
    return out


# ------------------------------------------------------------ store paths and the database


def file_entries(root: Path) -> list[tuple[bytes, str, int | None, bytes | None]]:
    """(path, kind, size, target) of a tree, in nix-index's order: pre-order,
    children in descending name order, the root first with the empty path."""
    entries: list[tuple[bytes, str, int | None, bytes | None]] = []

    def visit(path: Path, rel: bytes) -> None:
        st = path.lstat()
        if path.is_symlink():
            entries.append((rel, "s", None, os.fsencode(os.readlink(path))))
        elif path.is_dir():
            children = sorted(path.iterdir(), key=lambda p: os.fsencode(p.name), reverse=True)
            entries.append((rel, "d", len(children), None))
            for child in children:
                visit(child, rel + b"/" + os.fsencode(child.name))
        else:
            entries.append((rel, "x" if st.st_mode & 0o111 else "r", st.st_size, None))

    visit(root, b"")
    return entries


def lib_sonames(store_dir: Path) -> tuple[str, ...]:
    lib = store_dir / "lib"
    return tuple(sorted(p.name for p in lib.iterdir() if ".so" in p.name)) if lib.is_dir() else ()


@dataclass(frozen=True)
class Staged:
    """A tree waiting to become a store path, and how the database names it."""

    dir: Path
    attr: str
    output: str
    toplevel: bool
    role: str


def write_world_database(file: Path, items: Sequence[tuple[StoreItem, Path]],
                         seed: int = DATABASE_SEED) -> None:
    """The world's nix-index database, store paths in a shuffled order."""
    from nixld.database import FileEntry, Origin, StorePath, write_database

    order = list(items)
    random.Random(seed).shuffle(order)

    def blocks() -> Iterator[tuple[StorePath, list[FileEntry]]]:
        for item, tree in order:
            base = item.store_path.rsplit("/", 1)[1]
            digest, name = base.split("-", 1)
            store_path = StorePath(STORE_DIR, digest, name,
                                   Origin(item.attr, item.output, item.toplevel, SYSTEM))
            yield store_path, [FileEntry(p, k, s, t)  # type: ignore[arg-type]
                               for p, k, s, t in file_entries(tree)]

    file.parent.mkdir(parents=True, exist_ok=True)
    write_database(file, blocks())


# ------------------------------------------------------------ building a world


def _store_name(provider: Provider, version: str) -> str:
    base = f"{provider.pname}-{version}"
    return base if provider.output == "out" else f"{base}-{provider.output}"


def _world_key(kind: str, debs: Mapping[str, Path]) -> str:
    h = hashlib.sha256(f"{WORLD_VERSION}\0{kind}\0".encode())
    for pkg in sorted(debs):
        h.update(f"{pkg}={debs[pkg].name}\0".encode())
    h.update(Path(__file__).read_bytes())  # any change to this builder rebuilds
    return h.hexdigest()[:12]


def _selected(kind: Kind) -> tuple[list[Foreign], list[Provider]]:
    small = kind == "small"
    return ([f for f in FOREIGN if f.small or not small],
            [p for p in PROVIDERS if p.small or not small])


def _stage_providers(providers: Sequence[Provider], debs: Mapping[str, Path],
                     staging: Path) -> tuple[list[Staged], dict[str, Path]]:
    """One staged tree per provider; also every library by soname (for checks)."""
    staged: list[Staged] = []
    libs: dict[str, Path] = {}
    for provider in providers:
        store_dir = staging / "store" / _store_name(provider, deb_version(debs[provider.debs[0]]))
        lib = store_dir / "lib"
        lib.mkdir(parents=True)
        for pkg in provider.debs:
            tree = extract_deb(debs[pkg], staging / "deb" / pkg)
            for src in multiarch_libs(tree):
                copy_lib(src, lib)
        for so in lib.iterdir():
            libs.setdefault(so.name, so)
        toplevel = provider.pname != ONLY_NON_TOPLEVEL
        staged.append(Staged(store_dir, provider.attr, provider.output, toplevel, "provider"))
    return staged, libs


def _stage_traps(providers: Sequence[Staged], libs: Mapping[str, Path],
                 fixture_libs: Mapping[str, Path], staging: Path) -> list[Staged]:
    """The phenomena of the real database (see the module docstring)."""
    out: list[Staged] = []
    store = staging / "traps"  # apart from the providers: the zlib copy has their name

    def tree(name: str) -> Path:
        lib = store / name / "lib"
        lib.mkdir(parents=True)
        return lib

    # A top-level FHS environment whose lib/ holds copies of almost everything.
    fhs = tree("steam-run-fhs")
    for provider in providers:
        for src in sorted((provider.dir / "lib").iterdir()):
            if not src.name.startswith(FHS_LEAVES_OUT) and not (fhs / src.name).exists():
                copy_lib(src, fhs)
    out.append(Staged(fhs.parent, "steam-run", "out", True, "fhs"))
    # An application bundling copies of a few common libraries next to its own.
    app = tree("zoom-5.16.10.668")
    for soname in BUNDLED_BY_APP:
        if soname in libs:
            shutil.copyfile(libs[soname].resolve(), app / soname)
    (app.parent / "bin").mkdir()
    (app.parent / "bin/zoom").write_text("#!/bin/sh\necho zoom\n")
    (app.parent / "bin/zoom").chmod(0o555)
    out.append(Staged(app.parent, "zoom-us", "out", True, "bundle"))
    # A non-top-level copy of a library a top-level package also provides.
    zlib = next((p.dir.name for p in providers if p.attr == "zlib"), None)
    if zlib and "libz.so.1" in libs:
        dup = tree(zlib)
        shutil.copyfile(libs["libz.so.1"].resolve(), dup / "libz.so.1")
        (dup.parent / "nix-support").mkdir()
        (dup.parent / "nix-support/propagated-build-inputs").write_text("\n")
        out.append(Staged(dup.parent, "zlib", "out", False, "non-toplevel"))
    # libfoo: the old release (lacks FOO_1.2; also holds libbar, so it covers more),
    # the new one, and libbar alone.
    if fixture_libs:
        old = tree("libfoo-1.1")
        shutil.copyfile(fixture_libs["libfoo-1.1"] / "libfoo.so.1", old / "libfoo.so.1")
        shutil.copyfile(fixture_libs["libbar-1.0"] / "libbar.so.1", old / "libbar.so.1")
        out.append(Staged(old.parent, "libfoo", "out", True, "old-version"))
        for name, attr in (("libfoo-1.2", "libfoo_1_2"), ("libbar-1.0", "libbar")):
            shutil.copytree(fixture_libs[name], tree(name), dirs_exist_ok=True)
            out.append(Staged(store / name, attr, "out", True, "fixture"))
    return out


def _item(staged: Staged, store_path: str) -> StoreItem:
    return StoreItem(store_path, staged.attr, staged.output, staged.toplevel, staged.role,
                     lib_sonames(staged.dir))


def _prepare_foreign(foreign: Sequence[Foreign], debs: Mapping[str, Path],
                     staging: Path, bin_dir: Path) -> dict[str, Path]:
    bin_dir.mkdir(parents=True)
    out = {}
    for f in foreign:
        tree = extract_deb(debs[f.deb], staging / "deb" / f.deb)
        src = next((tree / d / f.name for d in ("usr/bin", "bin")
                    if (tree / d / f.name).is_file()), None)
        if src is None:
            raise WorldError(f"package {f.deb} has no bin/{f.name}")
        shutil.copy2(src, bin_dir / f.name)
        out[f.name] = bin_dir / f.name
    return out


def _no_interp_copies(binaries: Mapping[str, Path], dest: Path) -> dict[str, Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, path in binaries.items():
        copy = dest / name
        shutil.copy2(path, copy)
        _run(["patchelf", "--set-interpreter", MISSING_INTERPRETER, str(copy)])
        out[name] = copy
    return out


def _shim_copies(binaries: Mapping[str, Path], shim: Path, dest: Path) -> dict[str, Path]:
    """Copies whose interpreter is the world's copy of the shim (rebuilt if it changed)."""
    dest.mkdir(parents=True, exist_ok=True)
    own = dest / "nixld-shim"
    if not own.exists() or own.read_bytes() != shim.read_bytes():
        tmp = dest / ".nixld-shim.tmp"
        shutil.copyfile(shim, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, own)
    out = {}
    for name, path in binaries.items():
        copy = dest / name
        if not copy.exists() or copy.stat().st_mtime < own.stat().st_mtime:
            tmp = dest / f".{name}.tmp"
            shutil.copy2(path, tmp)
            _run(["patchelf", "--set-interpreter", str(own), str(tmp)])
            os.replace(tmp, copy)
        out[name] = copy
    return out


Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def build_world(kind: Kind, root: Path, debs: Mapping[str, Path],
                progress: Progress = _quiet) -> dict[str, Any]:
    """Build a world into `root` (a fresh directory); return its manifest."""
    foreign, providers = _selected(kind)
    staging = root / "staging"
    progress("making the NixOS-like loader (glibc from Debian's libc6, ld.so patched)")
    glibc_dir, link = build_glibc(debs["libc6"], staging)
    [glibc] = _nix_store_add([glibc_dir])
    _nix_add_root(glibc, root / "gcroots" / "glibc")
    ensure_loader_link(link, glibc)

    progress(f"staging {len(providers)} nixpkgs-like providers from Debian packages")
    staged, libs = _stage_providers(providers, debs, staging)
    fixture_libs: dict[str, Path] = {}
    fixtures: dict[str, Path] = {}
    if kind == "full":
        progress("compiling the C fixtures")
        src = staging / "src"
        src.mkdir()
        for name, text in FIXTURE_SOURCES.items():
            (src / name).write_text(text)
        fixture_libs = build_fixture_libs(src, staging / "fixture-libs")
        fixtures = build_fixtures(src, fixture_libs, root / "fixtures")
    staged += _stage_traps(staged, libs, fixture_libs, staging)

    progress("checking that the providers cover every foreign binary's closure")
    binaries = _prepare_foreign(foreign, debs, staging, root / "bin")
    all_libs = dict(libs)
    for so in (glibc_dir / "lib").iterdir():
        all_libs.setdefault(so.name, so)
    for name, path in binaries.items():
        lacking = uncovered(path, all_libs)
        if lacking:
            raise WorldError(f"no provider for {', '.join(lacking)} (needed by {name})")

    progress(f"adding {len(staged)} store paths, copying them to the binary cache")
    store_paths = _nix_store_add([s.dir for s in staged])
    cache = root / "cache"
    _nix_copy_to_cache(store_paths, cache)
    # Deleted again by ensure_world; one a gc root holds (a profile of an
    # earlier run, which has the same path) simply stays valid.
    _nix_delete(store_paths)

    items = [(_item(s, p), s.dir) for s, p in zip(staged, store_paths, strict=True)]
    glibc_item = StoreItem(glibc, "glibc", "out", True, "glibc", lib_sonames(glibc_dir))
    items.append((glibc_item, glibc_dir))
    progress("writing the nix-index database")
    write_world_database(root / "database" / "files", items)

    no_interp = (_no_interp_copies({**binaries, **fixtures}, root / "no-interp")
                 if shutil.which("patchelf") else {})
    (root / "empty-lib").mkdir()
    shutil.rmtree(staging)
    return {
        "version": WORLD_VERSION, "kind": kind, "glibc": glibc, "loader_link": link,
        "binaries": {n: str(p) for n, p in binaries.items()},
        "fixtures": {n: str(p) for n, p in fixtures.items()},
        "no_interp": {n: str(p) for n, p in no_interp.items()},
        "why": {**{f.name: f.why for f in foreign}, **{n: FIXTURE_WHY[n] for n in fixtures}},
        "items": [vars(i) | {"sonames": list(i.sonames)} for i, _ in items],
    }


def _load(root: Path, manifest: Mapping[str, Any], shim: Path | None) -> World:
    binaries = {n: Path(p) for n, p in manifest["binaries"].items()}
    fixtures = {n: Path(p) for n, p in manifest["fixtures"].items()}
    shimmed = _shim_copies({**binaries, **fixtures}, shim, root / "shimmed") if shim else {}
    return World(
        root=root, kind=manifest["kind"], key=root.name.split("-", 1)[1],
        ld_so=Path(manifest["glibc"]) / "lib/ld-linux-x86-64.so.2",
        glibc=manifest["glibc"], loader_link=manifest["loader_link"],
        cache_dir=root / "cache", database_dir=root / "database",
        empty_lib_dir=root / "empty-lib", binaries=binaries, fixtures=fixtures,
        no_interp={n: Path(p) for n, p in manifest["no_interp"].items()},
        shimmed=shimmed, shim=(root / "shimmed/nixld-shim") if shim else None,
        items=tuple(StoreItem(**(i | {"sonames": tuple(i["sonames"])}))
                    for i in manifest["items"]),
        why=dict(manifest["why"]),
    )


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """One builder at a time (two test sessions, or a test and the demo)."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _usable(root: Path) -> dict[str, Any] | None:
    try:
        manifest: dict[str, Any] = json.loads((root / "world.json").read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("version") != WORLD_VERSION or not _nix_is_valid(manifest["glibc"]):
        return None
    return manifest


def required_packages(kind: Kind) -> list[str]:
    foreign, providers = _selected(kind)
    return sorted({"libc6", *(f.deb for f in foreign),
                   *(d for p in providers for d in p.debs)})


def check_tools(kind: Kind) -> None:
    """Say plainly which tool the world needs and how to get it."""
    tools = [("nix-store", "nix-bin"), ("nix", "nix-bin"), ("dpkg-deb", "dpkg"),
             ("apt-get", "apt")]
    if kind == "full":  # the C fixtures and the no-interpreter copies
        tools += [("gcc", "gcc"), ("patchelf", "patchelf")]
    for tool, package in tools:
        if shutil.which(tool) is None:
            error = NixError if package == "nix-bin" else WorldError
            raise error(f"`{tool}` is not installed: the test world needs it "
                        f"(apt-get install {package})")


def ensure_world(kind: Kind = "full", *, home: Path | None = None, shim: Path | None = None,
                 rebuild: bool = False, progress: Progress = _quiet) -> World:
    """Build the world of this kind, or reuse the one built before.

    Every substitutable store path is deleted from the store again (where no
    gc root holds it), so realisations are real substitutions. `shim`: the
    built shim (shim/build/nixld-shim), for the shimmed copies.
    """
    check_tools(kind)
    home = world_home() if home is None else home
    try:
        return _ensure(kind, home, shim, rebuild, progress)
    except OSError as err:
        raise WorldError(f"cannot build the test world in {safe(home)}: "
                         f"{safe(err.strerror or str(err))}") from None


def _ensure(kind: Kind, home: Path, shim: Path | None, rebuild: bool,
            progress: Progress) -> World:
    with _locked(home):
        debs = fetch_debs(required_packages(kind), home / "debs")
        root = home / f"{kind}-{_world_key(kind, debs)}"
        manifest = None if rebuild else _usable(root)
        if manifest is None:
            progress(f"building the {kind} test world in {safe(root)}")
            for old in home.glob(f"{kind}-*"):
                shutil.rmtree(old, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-", dir=home))
            try:
                manifest = _relocated(build_world(kind, tmp, debs, progress), tmp, root)
                os.replace(tmp, root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            # The gc root names the directory it is in: make it again after the move.
            _nix_add_root(manifest["glibc"], root / "gcroots" / "glibc")
            # Written last: a world.json means a complete world.
            (root / ".world.json.tmp").write_text(json.dumps(manifest, indent=1))
            os.replace(root / ".world.json.tmp", root / "world.json")
        world = _load(root, manifest, shim)
        ensure_loader_link(world.loader_link, world.glibc)
        reset_store(world)
        return world


def reset_store(world: World) -> list[str]:
    """Delete the world's substitutable paths from the store again, so the next
    realisation is a real substitution; return those a gc root still holds."""
    return _nix_delete(world.substitutable)


def _relocated(manifest: dict[str, Any], old: Path, new: Path) -> dict[str, Any]:
    text = json.dumps(manifest).replace(json.dumps(str(old))[1:-1], json.dumps(str(new))[1:-1])
    relocated: dict[str, Any] = json.loads(text)
    return relocated
