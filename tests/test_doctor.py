"""`nixld-hook doctor`: each check against the real thing it looks at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from nixld import doctor, shell
from tests.conftest import REPO, need, need_tool, run_cli


@pytest.fixture(scope="module")
def built_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real shim, built from shim/ into a temporary directory."""
    need_tool("make")
    need_tool("gcc")
    out = tmp_path_factory.mktemp("shim") / "nixld-shim"
    subprocess.run(["make", "-s", "-C", str(REPO / "shim"), f"OUT={out}"], check=True)
    return out


@pytest.mark.unit
def test_hook_check_follows_install(xdg: Path) -> None:
    env = dict(os.environ)
    check = doctor.check_hook(env)
    assert not check.ok and check.fix and "nixld-hook install" in check.fix
    shell.install("zsh", "/x/nixld-hook")
    shell.install("fish", "/x/nixld-hook")
    check = doctor.check_hook(env)
    assert check.ok and check.detail == "installed for zsh, fish"


@pytest.mark.unit
def test_hook_check_sees_module_and_eval_lines(xdg: Path, tmp_path: Path) -> None:
    env = dict(os.environ)
    etc_bashrc = tmp_path / "bashrc"
    etc_bashrc.write_text(". /nix/store/x-nixld-hook/lib/python3/nixld/hooks/nixld.bash\n")
    files = {"bash": (str(etc_bashrc),)}
    assert doctor.check_hook(env, files).detail == "installed for bash"
    fish_config = xdg / ".config" / "fish" / "config.fish"
    fish_config.parent.mkdir(parents=True)
    fish_config.write_text("nixld-hook init fish | source\n")
    assert doctor.check_hook(env, files).detail == "installed for bash, fish"
    assert doctor.check_hook(env, {}).detail == "installed for fish"


@pytest.mark.unit
def test_shim_missing_says_how_to_enable(tmp_path: Path) -> None:
    check = doctor.check_shim(str(tmp_path / "ld-linux-x86-64.so.2"))
    assert not check.ok
    assert "does not exist" in check.detail
    assert check.fix and "programs.nixld.enable = true;" in check.fix


def test_plain_glibc_loader_is_not_the_shim() -> None:
    need(os.path.exists(doctor.SYSTEM_INTERPRETER), "needs an x86-64 glibc loader")
    check = doctor.check_shim(doctor.SYSTEM_INTERPRETER)
    assert not check.ok and "plain glibc loader" in check.detail


def test_real_shim_is_recognised(built_shim: Path, tmp_path: Path) -> None:
    link = tmp_path / "ld-linux-x86-64.so.2"
    link.symlink_to(built_shim)
    check = doctor.check_shim(str(link))
    assert check.ok, check
    assert f"-> {built_shim}" in check.detail


@pytest.mark.unit
def test_real_loader_from_nix_ld(tmp_path: Path) -> None:
    need(os.path.exists("/lib64/ld-linux-x86-64.so.2"), "needs Debian's x86-64 ld.so")
    loader = tmp_path / "ld.so"
    shutil.copy("/lib64/ld-linux-x86-64.so.2", loader)
    assert doctor.check_real_loader({"NIX_LD": str(loader)}).ok
    empty = tmp_path / "empty"
    empty.write_bytes(b"")  # exists, but is no glibc ld.so: read, never trusted by name
    check = doctor.check_real_loader({"NIX_LD": str(empty)})
    assert not check.ok and "empty file" in check.detail and check.fix
    check = doctor.check_real_loader({"NIX_LD": str(tmp_path / "gone")})
    assert not check.ok and "NIX_LD=" in check.detail and check.fix
    # NIX_LD_<system> wins, as in nix-ld and the shim.
    check = doctor.check_real_loader({"NIX_LD": str(loader),
                                      "NIX_LD_x86_64_linux": str(tmp_path / "gone")})
    assert not check.ok and "NIX_LD_x86_64_linux" in check.detail


@pytest.mark.unit
def test_database_present_old_missing(tmp_path: Path, xdg: Path) -> None:
    db = tmp_path / "db"
    db.mkdir()
    env = {"NIX_INDEX_DATABASE": str(db)}
    check = doctor.check_database(env)
    assert not check.ok and check.fix and "nix-index" in check.fix
    files = db / "files"
    files.write_bytes(b"NIXI")
    check = doctor.check_database(env)
    assert check.ok and check.detail.endswith("0 days old")
    old = time.time() - 40 * 86400
    os.utime(files, (old, old))
    check = doctor.check_database(env)
    assert not check.ok and "40 days old" in check.detail and check.fix
    # Without the variable: $XDG_CACHE_HOME/nix-index/files.
    assert str(xdg / ".cache" / "nix-index" / "files") in doctor.check_database({}).detail


def test_database_in_the_nix_store_has_no_age(tmp_path: Path) -> None:
    need_tool("nix-store")
    src = tmp_path / "nix-index-database"
    src.mkdir()
    (src / "files").write_bytes(b"NIXI")
    store_path = subprocess.run(["nix-store", "--add", str(src)], capture_output=True,
                                text=True, check=True).stdout.strip()
    assert os.stat(Path(store_path) / "files").st_mtime == 1  # as every store file
    check = doctor.check_database({"NIX_INDEX_DATABASE": store_path})
    assert check.ok and "in the Nix store" in check.detail


def test_nix_found_with_version() -> None:
    need_tool("nix-store")
    check = doctor.check_nix(dict(os.environ))
    assert check.ok and "nix-store (Nix)" in check.detail


@pytest.mark.unit
def test_nix_missing(tmp_path: Path) -> None:
    check = doctor.check_nix({"PATH": str(tmp_path)})
    assert not check.ok and check.detail == "nix-store is not on PATH" and check.fix


def test_cli_json_and_exit_code(xdg: Path, tmp_path: Path) -> None:
    env = dict(os.environ, NIX_INDEX_DATABASE=str(tmp_path / "none"))
    result = run_cli("doctor", "--json", env=env)
    assert result.returncode == 1  # at least the hook and the database are missing
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["ok"] is False
    names = [c["name"] for c in data["checks"]]
    assert names == ["hook", "shim", "real loader", "database", "nix", "nix store", "32-bit"]
    for check in data["checks"]:
        assert set(check) == {"name", "ok", "detail", "fix"}
        assert check["ok"] or check["fix"]


def test_cli_human_output_has_fixes(xdg: Path) -> None:
    result = run_cli("doctor", env=dict(os.environ, NO_COLOR="1"))
    assert "FIX hook" in result.stdout
    assert "fix: nixld-hook install" in result.stdout
    assert "\x1b" not in result.stdout
    assert shutil.which("nix-store") is None or "ok  nix" in result.stdout



@pytest.mark.parametrize("shim_there", [False, True])
def test_32_bit_check_names_what_is_missing(tmp_path: Path, built_shim32: Path,
                                            shim_there: bool) -> None:
    """The i686 shim and a 32-bit loader (a copy of libc6-i386's), for real files."""
    interp = tmp_path / "ld-linux.so.2"
    if shim_there:
        shutil.copy2(built_shim32, interp)
    check = doctor.check_32bit({}, str(interp), machine="x86_64")
    assert check is not None and not check.ok and check.fix and "enable32Bit" in check.fix
    assert ("is the nixld i686 shim" if shim_there else "does not exist") in check.detail
    assert "default /run/current-system/sw/share/nix-ld32/lib/ld.so does not exist" in check.detail
    wrong = doctor.check_32bit({"NIX_LD_i686_linux": "/lib64/ld-linux-x86-64.so.2"},
                               str(interp), machine="x86_64")
    assert wrong is not None and "is x86-64, 64-bit, not a 32-bit x86 loader" in wrong.detail
    loader = tmp_path / "ld32.so"
    shutil.copy2("/lib/ld-linux.so.2", loader)
    good = doctor.check_32bit({"NIX_LD_i686_linux": str(loader)}, str(interp), machine="x86_64")
    assert good is not None and good.ok is shim_there
    if shim_there:
        assert good.detail.startswith("32-bit programs can start:")
    assert doctor.check_32bit({}, str(interp), machine="aarch64") is None


@pytest.fixture(scope="module")
def built_shim32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tool("make")
    need_tool("gcc")
    out = tmp_path_factory.mktemp("shim32") / "nixld-shim"
    subprocess.run(["make", "-s", "-C", str(REPO / "shim"), "ARCH=i686", f"OUT={out}"],
                   check=True)
    return out


def test_stub_ld_at_the_system_interpreter_path_is_no_shim(tmp_path: Path) -> None:
    from tests.fixtures.build import build_stub_ld

    need_tool("gcc")
    check = doctor.check_shim(str(build_stub_ld(tmp_path)))
    assert not check.ok
    assert "is no loader (NixOS's stub-ld: no shim is enabled)" in check.detail
    assert check.fix == doctor.SHIM_FIX


def test_root_with_its_own_store_is_single_user() -> None:
    from tests.conftest import need_root

    need_root()
    need_tool("nix-store")
    env = {k: v for k, v in os.environ.items() if k != "NIX_REMOTE"}
    checks = doctor.check_store(env)
    assert [(c.name, c.ok) for c in checks] == [("nix store", True)]
    assert checks[0].detail.startswith("single-user")
