"""The NixOS-like test world: its loader finds nothing outside the store, each
of its binaries fails there before resolution and runs once its providers are
substituted from the world's binary cache, and its database holds the traps."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from nixld import demo as w
from nixld import nix
from nixld.database import read_database
from nixld.demo import providers
from nixld.demo.catalog import ALIASES, BUNDLING_APPS, DEV_OUTPUTS, NON_TOPLEVEL_COPIES

FOREIGN = [f.name for f in w.FOREIGN]
FIXTURES = list(w.FIXTURE_WHY)
# What each binary lacks first, as ld.so names it (dlopen-tool lacks it at run time).
FIRST_MISSING = {
    "bzip2": "libbz2.so.1.0", "jq": "libjq.so.1", "curl": "libcurl.so.4",
    "ninja": "libstdc++.so.6", "nano": "libncursesw.so.6", "zstd": "libz.so.1",
    "pigz": "libz.so.1", "foo-tool": "libfoo.so.1", "origin-tool": "libfoo.so.1",
    "rpath-tool": "libbar.so.1", "runpath-tool": "libbar.so.1", "dlopen-tool": "libz.so.1",
}


def run(cmd: list[str | Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


def binary(world: w.World, name: str) -> Path:
    return world.binaries.get(name) or world.fixtures[name]


# ------------------------------------------------------------ the loader


def test_loader_finds_nothing_outside_the_store(world: w.World,
                                                world_env: dict[str, str]) -> None:
    host_libz = Path("/lib/x86_64-linux-gnu/libz.so.1")
    assert host_libz.exists() or Path("/usr/lib/x86_64-linux-gnu/libz.so.1").exists()
    pigz = world.binaries["pigz"]
    proc = run([world.ld_so, pigz, "--version"], world_env)
    assert proc.returncode == 127
    assert "libz.so.1: cannot open shared object file" in proc.stderr
    # ... while its own lib/ is searched: libc.so.6 comes from the glibc store path.
    listing = run([world.ld_so, "--list", "/usr/bin/true"], world_env)
    assert listing.returncode == 0, listing.stderr
    assert f"libc.so.6 => {world.loader_link}/libc.so.6" in listing.stdout
    assert os.path.realpath(world.loader_link) == f"{world.glibc}/lib"
    assert b"/etc/ld.so.cache\0" not in world.ld_so.read_bytes()


def test_loader_link_is_recreated_when_tmp_was_cleaned(world: w.World) -> None:
    os.unlink(world.loader_link)
    again = w.ensure_world("full", home=world.root.parent)
    assert again.root == world.root
    assert os.readlink(world.loader_link) == f"{world.glibc}/lib"


# ------------------------------------------------------------ the binaries


@pytest.mark.parametrize("name", FOREIGN + FIXTURES)
def test_each_binary_fails_through_the_loader(world: w.World, world_env: dict[str, str],
                                              name: str) -> None:
    proc = run([world.ld_so, binary(world, name)], world_env)
    assert proc.returncode == 127, proc.stdout + proc.stderr
    assert f"{FIRST_MISSING[name]}: cannot open shared object file" in proc.stderr


@pytest.mark.parametrize("name", FOREIGN + FIXTURES)
def test_each_binary_has_a_copy_whose_interpreter_is_missing(world: w.World, name: str) -> None:
    copy = world.no_interp[name]
    assert not Path(w.MISSING_INTERPRETER).exists()
    with pytest.raises(FileNotFoundError):
        subprocess.run([copy], capture_output=True, check=False)


@pytest.mark.parametrize("name", ["jq", "curl", "foo-tool"])
def test_shimmed_copies_fail_for_their_libraries(world: w.World, world_env: dict[str, str],
                                                 name: str) -> None:
    from tests.conftest import need

    need(world.shimmed, "the shim is not built (make -C shim)")
    assert world.shim is not None
    proc = run([world.shimmed[name]], world_env)
    assert proc.returncode == 127, proc.stderr
    assert FIRST_MISSING[name] in proc.stderr


def test_foreign_binaries_are_unmodified_debian_files(world: w.World) -> None:
    for name in FOREIGN:
        data = world.binaries[name].read_bytes()
        assert data[:4] == b"\x7fELF"
        assert b"/lib64/ld-linux-x86-64.so.2\0" in data
        assert len(world.why[name]) > 10


def test_binaries_need_what_they_were_chosen_for(world: w.World) -> None:
    assert "libcurl.so.4" in providers.needed_of(world.binaries["curl"])
    assert providers.needed_of(world.binaries["jq"]) == ["libjq.so.1", "libc.so.6"]
    assert "libstdc++.so.6" in providers.needed_of(world.binaries["ninja"])


# ------------------------------------------------------------ the binary cache


def realise(paths: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run(["nix-store", "--realise", *paths], env)


def test_cache_is_a_real_substitution_source(world: w.World,
                                             world_env: dict[str, str]) -> None:
    zlib = world.item(f"zlib-{zlib_version(world)}")
    assert zlib.toplevel
    assert not nix.is_valid(zlib.store_path)
    proc = realise([zlib.store_path], world_env)
    assert proc.returncode == 0, proc.stderr
    assert f"from '{world.substituter}" in proc.stderr
    assert (Path(zlib.store_path) / "lib/libz.so.1").exists()
    # Without the world's NIX_CONFIG there is nothing to substitute from.
    w.reset_store(world)
    bare = dict(world_env, NIX_CONFIG="substituters = \n")
    assert realise([zlib.store_path], bare).returncode != 0


def zlib_version(world: w.World) -> str:
    return next(i.store_path.rsplit("-", 1)[1] for i in world.items
                if i.attr == "zlib" and i.toplevel)


def test_every_binary_runs_once_its_providers_are_substituted(
        world: w.World, world_env: dict[str, str]) -> None:
    providers = [i for i in world.items if i.role in ("provider", "fixture")]
    proc = realise([i.store_path for i in providers], world_env)
    assert proc.returncode == 0, proc.stderr
    library_path = ":".join(i.lib_dir for i in providers)
    for name in FOREIGN + FIXTURES:
        args = [] if name in FIXTURES else ["--version"]
        done = run([world.ld_so, "--library-path", library_path, binary(world, name), *args],
                   world_env)
        assert done.returncode == 0, f"{name}: {done.stderr}"
    # The curl closure is large: count what ld.so loaded.
    listing = run([world.ld_so, "--library-path", library_path, "--list",
                   world.binaries["curl"]], world_env)
    assert listing.stdout.count("/nix/store/") >= 20, listing.stdout


def test_old_libfoo_first_in_the_path_breaks_foo_tool(world: w.World,
                                                      world_env: dict[str, str]) -> None:
    old, new = world.item("libfoo-1.1"), world.item("libfoo-1.2")
    assert realise([old.store_path, new.store_path], world_env).returncode == 0
    proc = run([world.ld_so, "--library-path", f"{old.lib_dir}:{new.lib_dir}",
                world.fixtures["foo-tool"]], world_env)
    # ld.so exits 1 (not 127) for a version it cannot find.
    assert proc.returncode == 1
    assert "version `FOO_1.2' not found" in proc.stderr


# ------------------------------------------------------------ the database


def test_database_describes_the_real_store_paths(world: w.World,
                                                 world_env: dict[str, str]) -> None:
    blocks = list(read_database(world.database_file))
    by_path = {sp.path: (sp, entries) for sp, entries in blocks}
    assert set(by_path) == {i.store_path for i in world.items}
    items = {i.store_path: i for i in world.items}
    for sp, _ in blocks:  # a provider's path once per attribute (its aliases)
        item = items[sp.path]
        assert sp.origin is not None
        assert sp.origin.attr in (item.attr, *ALIASES.get(item.attr, ()))
        assert (sp.origin.output, sp.origin.toplevel) == (item.output, item.toplevel)
    # Every entry of a substituted path is there, with its size or target.
    bzip2 = next(i for i in world.items if i.attr == "bzip2")
    assert realise([bzip2.store_path], world_env).returncode == 0
    for entry in by_path[bzip2.store_path][1]:
        real = Path(bzip2.store_path + os.fsdecode(entry.path))
        if entry.kind == "s":
            assert os.fsencode(os.readlink(real)) == entry.target
        elif entry.kind in ("r", "x"):
            assert real.stat().st_size == entry.size


def test_database_order_is_arbitrary(world: w.World) -> None:
    order = [sp.path for sp, _ in read_database(world.database_file)]
    assert order != sorted(order)
    assert order != [i.store_path for i in world.items]


def test_database_holds_the_traps(world: w.World) -> None:
    items = {i.role: i for i in world.items}
    providers = [i for i in world.items if i.role == "provider"]
    every = {s for i in providers for s in i.sonames}
    # A top-level FHS env with copies of almost every library.
    fhs = items["fhs"]
    assert fhs.toplevel
    assert len(set(fhs.sonames) & every) >= 0.9 * len(every)
    assert "libncursesw.so.6" not in fhs.sonames
    # An application bundling a few common libraries.
    bundle = world.item("zoom-5.16.10.668")
    assert {"libz.so.1", "libssl.so.3", "libcrypto.so.3"} <= set(bundle.sonames)
    # More applications (one a -bin package) with 3 to 10 copies of providers'.
    apps = [world.item(name) for name in BUNDLING_APPS]
    assert all(a.role == "bundle" and a.toplevel for a in apps)
    assert all(3 <= len(set(a.sonames) & every) <= 10 for a in apps)
    # Aliases: the same store path listed under several attributes.
    listed: dict[str, set[str]] = {}
    for sp, _ in read_database(world.database_file):
        assert sp.origin is not None
        listed.setdefault(sp.path, set()).add(sp.origin.attr)
    openssl = next(i for i in providers if i.attr == "openssl")
    assert listed[openssl.store_path] == {"openssl", *ALIASES["openssl"]}
    # Non-top-level copies of providers, and dev outputs for some providers only.
    copies = {i.attr for i in world.items if i.role == "non-toplevel"}
    assert set(NON_TOPLEVEL_COPIES) <= copies
    devs = {i.attr for i in world.items if i.role == "dev"}
    assert devs == set(DEV_OUTPUTS) and devs < {i.attr for i in providers}
    # Non-top-level copies: one beside a top-level provider, one alone.
    assert [i.toplevel for i in world.providers_of("libz.so.1")
            if i.attr == "zlib"].count(False) == 1
    assert [i.toplevel for i in world.providers_of("libkeyutils.so.1")] == [False]
    # The older release that lacks the symbol version foo-tool needs, and which
    # (also holding libbar) looks like the better single provider.
    old, new = world.item("libfoo-1.1"), world.item("libfoo-1.2")
    assert {"libfoo.so.1", "libbar.so.1"} <= set(old.sonames)
    assert old.attr == "libfoo"
    assert "libfoo.so.1" in new.sonames


def test_the_version_trap_is_real_elf(world: w.World, world_env: dict[str, str]) -> None:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.gnuversions import GNUVerDefSection, GNUVerNeedSection

    def defined(path: str) -> set[str]:
        with open(path, "rb") as f:
            sec = next(s for s in ELFFile(f).iter_sections() if isinstance(s, GNUVerDefSection))
            return {aux.name for _, auxes in sec.iter_versions() for aux in auxes}

    old, new = world.item("libfoo-1.1"), world.item("libfoo-1.2")
    assert realise([old.store_path, new.store_path], world_env).returncode == 0
    assert "FOO_1.2" not in defined(f"{old.lib_dir}/libfoo.so.1")
    assert "FOO_1.2" in defined(f"{new.lib_dir}/libfoo.so.1")
    with open(world.fixtures["foo-tool"], "rb") as f:
        need = next(s for s in ELFFile(f).iter_sections() if isinstance(s, GNUVerNeedSection))
        wanted = {aux.name for _, auxes in need.iter_versions() for aux in auxes}
    assert "FOO_1.2" in wanted


def test_decoy_is_the_wrong_architecture(world: w.World) -> None:
    decoy = world.fixtures["rpath-tool"].parent.parent / "decoy/libbar.so.1"
    from tests.conftest import need

    need(decoy.exists(), "needs aarch64-linux-gnu-gcc for the wrong-architecture decoy")
    assert decoy.read_bytes()[18:20] == (183).to_bytes(2, "little")  # EM_AARCH64


# ------------------------------------------------------------ reuse


def test_world_is_reused(world: w.World) -> None:
    import time

    start = time.monotonic()
    again = w.ensure_world("full", home=world.root.parent)
    assert again.root == world.root
    assert again.glibc == world.glibc
    assert time.monotonic() - start < 10


# ------------------------------------------------------------ after resolution


@pytest.mark.parametrize("name", FOREIGN)
def test_each_binary_runs_after_resolve(world: w.World, world_env: dict[str, str],
                                        name: str) -> None:
    from tests.conftest import run_cli

    path = str(world.binaries[name])
    resolved = run_cli("resolve", "--yes", "--quiet", path, env=world_env, timeout=300)
    assert resolved.returncode == 0, resolved.stderr
    done = run_cli("run", path, "--version", env=world_env)
    assert done.returncode == 0, done.stderr
    assert "error while loading" not in done.stderr


def test_shimmed_binary_runs_by_itself_after_resolve(world: w.World,
                                                     world_env: dict[str, str]) -> None:
    from tests.conftest import need, run_cli

    need(world.shimmed, "the shim is not built (make -C shim)")
    jq = world.shimmed["jq"]
    assert run([jq, "--version"], world_env).returncode == 127
    resolved = run_cli("resolve", "--yes", "--quiet", str(jq), env=world_env, timeout=300)
    assert resolved.returncode == 0, resolved.stderr
    done = run([jq, "--version"], world_env)
    assert (done.returncode, done.stdout.strip()) == (0, "jq-1.6"), done.stderr


def test_a_resolved_binary_copied_elsewhere_starts_with_no_new_resolve(
        world: w.World, world_env: dict[str, str], tmp_path: Path) -> None:
    """The build-id entry `resolve` writes beside the path entry: a copy in a
    new directory (a launcher's update) starts through the shim, and `run`
    and `explain` apply it too, without a prompt or a new resolve."""
    from tests.conftest import need, run_cli

    need(world.shimmed, "the shim is not built (make -C shim)")
    jq = world.shimmed["jq"]
    resolved = run_cli("resolve", "--yes", "--quiet", str(jq), env=world_env, timeout=300)
    assert resolved.returncode == 0, resolved.stderr
    copy = tmp_path / "v2" / "bin" / "jq"
    copy.parent.mkdir(parents=True)
    shutil.copy2(jq, copy)
    done = run([copy, "--version"], world_env)
    assert (done.returncode, done.stdout.strip()) == (0, "jq-1.6"), done.stderr
    ran = run_cli("run", str(copy), "--version", env=world_env)
    assert (ran.returncode, ran.stdout.strip()) == (0, "jq-1.6"), ran.stderr
    explained = run_cli("explain", "--json", str(copy), env=world_env)
    assert explained.returncode == 0 and '"complete": true' in explained.stdout
    with copy.open("ab") as f:
        f.write(b"\0")  # the same build-id, another size: no longer that file
    assert run([copy, "--version"], world_env).returncode == 127


def test_version_trap_resolves_to_the_newer_libfoo(world: w.World,
                                                   world_env: dict[str, str]) -> None:
    from tests.conftest import run_cli

    tool = str(world.fixtures["foo-tool"])
    resolved = run_cli("resolve", "--yes", "--quiet", tool, env=world_env, timeout=300)
    assert resolved.returncode == 0, resolved.stderr
    done = run_cli("run", tool, env=world_env)
    assert (done.returncode, done.stdout.strip()) == (0, "foo-tool: ok 10"), done.stderr


def test_dlopen_tool_runs_after_resolve_with(world: w.World,
                                             world_env: dict[str, str]) -> None:
    from tests.conftest import run_cli

    tool = str(world.fixtures["dlopen-tool"])
    resolved = run_cli("resolve", "--yes", "--quiet", "--with", "libz.so.1", tool,
                       env=world_env, timeout=300)
    assert resolved.returncode == 0, resolved.stderr
    done = run_cli("run", tool, env=world_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("dlopen-tool: ok zlib")
