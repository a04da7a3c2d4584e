"""Run-time roots (nixld/runtime.py) on compiled fixtures in the test world: a
program with a .note.dlopen and a plugin directory, resolved as a directory;
--with followed into the library's own needs; the candidate check judged
against the whole process."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pexpect
import pytest

from nixld import demo as w
from tests.cmd.test_explain import SCHEMA
from tests.conftest import need_tool, run_cli
from tests.fixtures import schema_check

NOTE_JSON = (
    '[{"feature":"bzip2","priority":"required","soname":["libbz2.so.1.0"]},'
    '{"feature":"either","soname":["libnothere.so.7","libz.so.1"]},'
    '{"priority":"suggested","soname":["libncursesw.so.6"]}]')
APP_C = r"""
#include <stdio.h>
#define NOTE_JSON "@NOTE@"
__attribute__((used, section(".note.dlopen"), aligned(4)))
static const struct { unsigned n_namesz, n_descsz, n_type; char name[4];
    char desc[(sizeof(NOTE_JSON) + 3) & ~3]; } note = {4, sizeof(NOTE_JSON), 0x407c0c0a,
    "FDO", NOTE_JSON};
int py_thing(void) { return 7; }
int main(void) { puts("app: ok"); return 0; }
""".replace("@NOTE@", NOTE_JSON.replace('"', '\\"'))


def gcc(*args: str) -> None:
    subprocess.run(["gcc", *args], check=True, capture_output=True)


def stub(dir_: Path, soname: str, symbol: str) -> Path:
    """A library to link against only (never shipped): the soname is what counts."""
    src = dir_ / f"{symbol}.c"
    src.write_text(f"int {symbol}(void) {{ return 1; }}\n")
    out = dir_ / soname
    gcc("-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(out), str(src))
    return out


@pytest.fixture
def app_tree(tmp_path: Path) -> Path:
    """app/app (the note), app/plugins/platforms/libqxcb.so (needs libz.so.1: a
    platform plugin the program must load), app/plugins/sqldrivers/libqsqlmysql.so
    (needs libonig.so.5: optional)."""
    need_tool("gcc")
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    z = stub(stubs, "libz.so.1", "zlibVersion")
    onig = stub(stubs, "libonig.so.5", "onig_new")
    app = tmp_path / "app"
    (app / "plugins/platforms").mkdir(parents=True)
    (app / "plugins/sqldrivers").mkdir(parents=True)
    (tmp_path / "app.c").write_text(APP_C)
    gcc("-rdynamic", "-o", str(app / "app"), str(tmp_path / "app.c"))
    (tmp_path / "p.c").write_text("int zlibVersion(void);\n"
                                  "int plugin(void) { return zlibVersion(); }\n")
    gcc("-shared", "-fPIC", "-o", str(app / "plugins/platforms/libqxcb.so"),
        str(tmp_path / "p.c"), str(z))
    (tmp_path / "q.c").write_text("int onig_new(void);\nint q(void) { return onig_new(); }\n")
    gcc("-shared", "-fPIC", "-o", str(app / "plugins/sqldrivers/libqsqlmysql.so"),
        str(tmp_path / "q.c"), str(onig))
    return app


def entry_texts(env: dict[str, str]) -> dict[str, str]:
    out = {}
    for entry in (Path(env["XDG_STATE_HOME"]) / "nixld/entries").glob("*.entry"):
        text = entry.read_text()
        path = next(ln[5:] for ln in text.splitlines() if ln.startswith("path "))
        out[path] = text
    return out


def test_explain_shows_the_note_and_the_plugins(world: w.World, world_env: dict[str, str],
                                                app_tree: Path) -> None:
    r = run_cli("explain", "--json", str(app_tree / "app"), env=world_env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert schema_check.errors(doc, SCHEMA) == []
    by = {(x["path"] and os.path.relpath(x["path"], app_tree)) or x["sonames"][0]: x
          for x in doc["runtime"]}
    assert by["libbz2.so.1.0"]["priority"] == "required"
    assert by["libbz2.so.1.0"]["missing"][0]["soname"] == "libbz2.so.1.0"
    assert by["libnothere.so.7"]["priority"] == "recommended"  # no priority: recommended
    assert by["libncursesw.so.6"]["priority"] == "suggested"
    qxcb = by["plugins/platforms/libqxcb.so"]
    assert (qxcb["source"], qxcb["priority"], qxcb["installed_by_default"]) == (
        "plugin", "required", True)
    assert [m["soname"] for m in qxcb["missing"]] == ["libz.so.1"]
    sql = by["plugins/sqldrivers/libqsqlmysql.so"]
    assert (sql["priority"], sql["installed_by_default"]) == ("recommended", False)
    assert [m["soname"] for m in sql["missing"]] == ["libonig.so.5"]
    # The required roots' needs are in `missing` (with their root) and in the plan.
    roots = {m["soname"]: m.get("root") for m in doc["missing"]}
    assert roots == {"libbz2.so.1.0": "libbz2.so.1.0",
                     "libz.so.1": str(app_tree / "plugins/platforms/libqxcb.so")}
    assert {p["attr"] for p in doc["plan"]} == {"bzip2", "zlib"}
    assert doc["complete"] is False
    text = run_cli("explain", str(app_tree / "app"), env=world_env).stdout
    assert "loaded at run time: 5 objects found" in text
    assert "libqsqlmysql.so: lacks libonig.so.5" in text and "recommended, offered" in text


def test_resolve_dir_writes_one_entry_with_what_its_tree_needs(
        world: w.World, world_env: dict[str, str], app_tree: Path) -> None:
    r = run_cli("resolve", "--yes", str(app_tree), env=world_env, timeout=300)
    assert r.returncode == 0, r.stderr
    entries = entry_texts(world_env)
    assert list(entries) == [str(app_tree / "app")]  # no entry for a plugin
    text = entries[str(app_tree / "app")]
    assert "-bzip2-" in text and "-zlib-" in text
    assert "oniguruma" not in text  # an optional plugin's need: not taken by --yes
    done = json.loads(run_cli("explain", "--json", str(app_tree / "app"), env=world_env).stdout)
    assert done["complete"] is True
    # A note's alternatives: libz.so.1, now in the entry (for the platform
    # plugin), is enough for ["libnothere.so.7", "libz.so.1"].
    either = next(r for r in done["runtime"] if r["feature"] == "either")
    assert (either["satisfied_by"], either["missing"]) == ("libz.so.1", [])


def test_with_is_followed_into_the_librarys_own_needs(
        world: w.World, world_env: dict[str, str], tmp_path: Path) -> None:
    need_tool("gcc")
    (tmp_path / "plain.c").write_text("int main(void) { return 0; }\n")
    plain = tmp_path / "bin" / "plain"
    plain.parent.mkdir()
    gcc("-o", str(plain), str(tmp_path / "plain.c"))
    r = run_cli("resolve", "--yes", "--with", "libjq.so.1", str(plain), env=world_env,
                timeout=300)
    assert r.returncode == 0, r.stderr
    text = entry_texts(world_env)[str(plain)]
    # libjq.so.1 needs libonig.so.5, which its RUNPATH does not cover.
    assert "-jq-" in text and "oniguruma" in text


def test_candidate_symbols_are_judged_against_the_whole_process(
        world: w.World, world_env: dict[str, str], app_tree: Path, tmp_path: Path) -> None:
    """An extension module's undefined symbols that the executable exports
    (Py* from the interpreter) are no requirement on its missing library."""
    from nixld.candidate import merged_symbols, required_symbols
    from nixld.elf import read_binary
    from nixld.loader import resolve_closure
    from nixld.search import Search

    (tmp_path / "ext.c").write_text("int py_thing(void); int zlibVersion(void);\n"
                                    "int ext(void) { return py_thing() + zlibVersion(); }\n")
    ext = tmp_path / "ext.so"
    gcc("-shared", "-fPIC", "-o", str(ext), str(tmp_path / "ext.c"),
        str(tmp_path / "stubs/libz.so.1"))
    env = Search.from_environ(world_env)
    exe = read_binary(app_tree / "app")
    mod = read_binary(ext)
    assert not isinstance(exe, type(None)) and hasattr(mod, "undefined_symbols")
    exe_closure = resolve_closure(exe, env)  # type: ignore[arg-type]
    ext_closure = resolve_closure(mod, env)  # type: ignore[arg-type]
    alone = required_symbols(ext_closure)
    assert "py_thing" in alone["libz.so.1"]  # the old, wrong judgement
    process = merged_symbols([exe_closure, ext_closure])
    assert "py_thing" not in process.get("libz.so.1", [])
    assert "zlibVersion" in process["libz.so.1"]


def test_the_prompt_offers_an_optional_plugins_needs(
        world: w.World, world_env: dict[str, str], app_tree: Path) -> None:
    from tests.test_resolve import QUESTION, spawn

    child = spawn(["resolve", str(app_tree / "app")], world_env)
    child.expect(QUESTION)
    plan = " ".join(child.before.split())  # the plan as shown, lines joined
    assert "it may also load at run time:" in plan
    assert "libonig.so.5 (for libqsqlmysql.so)" in plan
    assert "libnothere.so.7" in plan  # a note without priority: recommended, offered
    child.send("n\r")
    child.expect("nothing installed")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert "libncursesw" not in plan  # a suggested note: explain lists it, the prompt does not
