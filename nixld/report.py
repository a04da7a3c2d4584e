"""Turn an `Analysis` into the `--json` document or the human report.

The JSON shape is defined by `nixld/schema/explain.schema.json` (tests check
the output against it). The human report is a dependency tree (what needs
what, found where, missing) and aligned candidate columns; colour only on a
terminal and never with NO_COLOR. Every name from the binary is passed
through `safe()` before it reaches the terminal.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nixld import runtime
from nixld.text import safe

if TYPE_CHECKING:
    from nixld.analysis import Analysis
    from nixld.elf import ElfInfo
    from nixld.loader import Closure, Needed, VersionProblem
    from nixld.pkgsi686 import I686Choice
    from nixld.rank import Candidate, Choice, Ranking
    from nixld.runtime import RootNeeds
    from nixld.search import AppliedEntry

SCHEMA_VERSION = 2
# How many candidates the human report lists per soname (JSON has them all).
SHOWN_CANDIDATES = 5


# ---------------------------------------------------------------- JSON


def to_json(analysis: Analysis) -> dict[str, Any]:
    from nixld.elf import ScriptInfo

    info = analysis.info
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "binary": analysis.path,
        "warnings": list(analysis.warnings),
        "needed": [],
        "missing": [],
        "plan": [],
        "dlopen_hints": [],
        "runtime": [],
        "interpreter": None,
        "complete": True,
        "database": str(analysis.database) if analysis.database else None,
    }
    if isinstance(info, ScriptInfo):
        doc["kind"] = "script"
        doc["script"] = {"interpreter": info.interpreter, "argument": info.argument,
                         "exists": info.interpreter_exists}
        doc["complete"] = info.interpreter_exists
        return doc
    from nixld.elf import host_compat

    doc["kind"] = "static" if info.is_static else "dynamic"
    doc["elf"] = _elf_json(info)
    doc["host_compat"] = host_compat(info)
    doc["dlopen_hints"] = [
        {"sonames": list(h.sonames), "feature": h.feature, "description": h.description,
         "priority": h.priority}
        for h in info.dlopen
    ]
    if info.interpreter:
        doc["interpreter"] = {"path": info.interpreter,
                              "exists": os.path.exists(info.interpreter)}
    closure = analysis.closure
    if closure is None:
        return doc
    search = closure.search
    doc["loader"] = _loader_json(closure)
    doc["search_path"] = {
        "entry": list(search.entry_dirs),
        "LD_LIBRARY_PATH": list(search.ld_library_path),
        "NIX_LD_LIBRARY_PATH": list(search.nix_ld_library_path),
    }
    doc["entries"] = [_entry_json(a) for a in search.applied]
    doc["needed"] = [_needed_json(n) for n in closure.needed]
    doc["glibc_problems"] = [_problem_json(p) for p in closure.glibc_problems]
    choices = analysis.ranking.choices if analysis.ranking else {}
    missing = []
    for need in closure.missing:
        choice = choices.get(need.soname)
        cands = [c for c in choice.candidates if not c.dropped] if choice else []
        missing.append({
            "soname": need.soname,
            "needed_by": list(need.needed_by),
            "reason": "not-found" if need.path is None else "missing-version",
            "candidates": [c.to_json() for c in cands],
            "chosen": choice.chosen.to_json() if choice and choice.chosen else None,
        })
        if analysis.i686 is not None and need.soname in analysis.i686:
            missing[-1]["i686"] = analysis.i686[need.soname].to_json()
    missing += _runtime_missing_json(analysis, choices)
    doc["missing"] = missing
    doc["runtime"] = [_runtime_json(n) for n in analysis.runtime]
    if analysis.i686 is not None:
        doc["plan"] = [p.to_json() for p in analysis.plan32]
    elif analysis.ranking:
        doc["plan"] = [p.to_json() for p in analysis.ranking.plan]
    doc["complete"] = closure.complete and not any(
        n.missing for n in analysis.runtime if n.root.priority == "required")
    return doc


def _runtime_json(needs: RootNeeds) -> dict[str, Any]:
    return {**needs.root.to_json(), "satisfied_by": needs.satisfied_by, "error": needs.error,
            "missing": [{"soname": n.soname, "needed_by": list(n.needed_by)}
                        for n in needs.missing],
            "installed_by_default": needs.root.priority == "required"}


def _runtime_missing_json(analysis: Analysis,
                          choices: Mapping[str, Choice]) -> list[dict[str, Any]]:
    """The required roots' needs the closure does not already list."""
    seen = {n.soname for n in analysis.closure.missing} if analysis.closure else set()
    out = []
    for needs in analysis.runtime:
        if needs.root.priority != "required":
            continue
        for need in needs.missing:
            if need.soname in seen:
                continue
            seen.add(need.soname)
            choice = choices.get(need.soname)
            cands = [c for c in choice.candidates if not c.dropped] if choice else []
            out.append({
                "soname": need.soname, "needed_by": list(need.needed_by),
                "reason": "not-found" if need.path is None else "missing-version",
                "candidates": [c.to_json() for c in cands],
                "chosen": choice.chosen.to_json() if choice and choice.chosen else None,
                "root": needs.root.label,
            })
    return out


def _loader_json(closure: Closure) -> dict[str, Any]:
    loader = closure.search.loader
    return {"path": loader.path, "source": loader.source, "exists": closure.real_loader_exists,
            "glibc": closure.real_loader_glibc,
            "tried": [{"source": t.source, "path": t.path or None, "problem": t.problem}
                      for t in loader.tried]}


def _entry_json(applied: AppliedEntry) -> dict[str, Any]:
    return {"scope": applied.scope, "file": str(applied.file), "status": applied.state,
            "dirs": list(applied.entry.dirs), "build_id": applied.entry.build_id}


def _elf_json(info: ElfInfo) -> dict[str, Any]:
    return {
        "class": info.elf_class,
        "machine": info.machine,
        "arch": info.describe_arch(),
        "osabi": info.osabi,
        "type": info.type,
        "interpreter": info.interpreter,
        "needed": list(info.needed),
        "rpath": list(info.rpath),
        "runpath": list(info.runpath),
        "soname": info.soname,
        "version_needs": [{"library": v.library, "versions": list(v.versions)}
                          for v in info.version_needs],
        "undefined_symbols": list(info.undefined_symbols),
        "static": info.is_static,
        "pie": info.is_pie,
    }


def _needed_json(need: Needed) -> dict[str, Any]:
    return {
        "soname": need.soname,
        "needed_by": list(need.needed_by),
        "path": need.path,
        "via": need.via,
        "version_problems": [_problem_json(p) for p in need.version_problems],
    }


def _problem_json(problem: VersionProblem) -> dict[str, Any]:
    return {"soname": problem.soname, "version": problem.version,
            "required_by": problem.required_by, "kind": problem.kind}


# ---------------------------------------------------------------- text


@dataclass(frozen=True)
class Style:
    """ANSI styles, or none at all."""

    on: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on else text

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def render_text(analysis: Analysis, *, colour: bool = False) -> str:
    from nixld.elf import ScriptInfo

    st = Style(colour)
    info = analysis.info
    lines: list[str] = []
    name = safe(analysis.path)
    if isinstance(info, ScriptInfo):
        interp = safe(info.interpreter)
        state = st.green("exists") if info.interpreter_exists else st.red("does not exist")
        lines.append(f"{st.bold(name)}: script, interpreter {interp} ({state})")
        if not info.interpreter_exists:
            lines.append(f"  the #! interpreter {interp} is not on this system: change the first "
                         "line to `#!/usr/bin/env NAME`, or install a package providing it")
        lines.extend(f"warning: {safe(w)}" for w in analysis.warnings)
        return "\n".join(lines) + "\n"

    lines.append(f"{st.bold(name)}: {_describe(info)}")
    from nixld.elf import host_compat

    compat = host_compat(info)
    if compat:
        lines.append(f"  {st.yellow('note')}: {safe(compat)}")
    if info.is_static:
        lines.append("  static: needs no loader and no shared libraries")
        return "\n".join(lines) + "\n"
    if info.interpreter:
        exists = os.path.exists(info.interpreter)
        state = st.green("exists") if exists else st.red("missing on this system")
        lines.append(f"  interpreter: {safe(info.interpreter)} ({state})")
    closure = analysis.closure
    if closure is not None:
        lines.extend(_loader_lines(closure, st))
        lines.extend(_entry_lines(closure, st))
        lines.append("")
        lines.extend(_tree_lines(analysis.path, closure, st))
        lines.extend(_problem_lines(closure, st))
        lines.extend(_missing_lines(analysis, closure, st))
    lines.extend(_runtime_lines(analysis, st))
    if analysis.warnings:
        lines.append("")
        lines.extend(f"warning: {safe(w)}" for w in analysis.warnings)
    return "\n".join(lines) + "\n"


RUNTIME_SOURCES = {"note": ".note.dlopen", "plugin": "plugin of its own tree",
                   "library": "library of its own tree", "extension": "extension module",
                   "with": "--with", "trace": "seen by trace"}


def _runtime_lines(analysis: Analysis, st: Style) -> list[str]:
    """What the process loads at run time, grouped: installed by resolve, offered, fine."""
    if not analysis.runtime:
        return []
    lacking = [n for n in analysis.runtime if n.missing or n.error]
    lines = ["", f"loaded at run time: {len(analysis.runtime)} object"
                 f"{'s' if len(analysis.runtime) != 1 else ''} found "
                 f"({_runtime_counts(analysis.runtime)}), {len(lacking)} lacking something"]
    for needs in lacking[:MAX_RUNTIME_LINES]:
        how = {"required": st.red("resolve installs"),
               "recommended": st.yellow("recommended, offered; not taken by --yes"),
               "suggested": st.dim("suggested, listed")}[needs.root.priority]
        lines.append(f"  {runtime.describe(needs)} [{RUNTIME_SOURCES[needs.root.source]}; "
                     f"{how}]")
    if len(lacking) > MAX_RUNTIME_LINES:
        lines.append(f"  ... and {len(lacking) - MAX_RUNTIME_LINES} more (--json lists all)")
    for needs in analysis.runtime:
        if needs.root.source in ("note", "trace", "with") and not (needs.missing or needs.error):
            lines.append(f"  {runtime.describe(needs)} [{RUNTIME_SOURCES[needs.root.source]}]")
    return lines


MAX_RUNTIME_LINES = 20


def _runtime_counts(found: Iterable[RootNeeds]) -> str:
    counts: dict[str, int] = {}
    for needs in found:
        counts[needs.root.source] = counts.get(needs.root.source, 0) + 1
    return ", ".join(f"{n} {RUNTIME_SOURCES[s]}" for s, n in counts.items())


def _describe(info: ElfInfo) -> str:
    kind = {"ET_EXEC": "executable", "ET_DYN": "shared object", "ET_REL": "object file",
            "ET_CORE": "core file"}.get(info.type, info.type)
    if info.type == "ET_DYN" and info.interpreter:
        kind = "executable (PIE)"
    link = "static" if info.is_static else "dynamic"
    osabi = info.osabi.removeprefix("ELFOSABI_")
    return f"ELF {info.describe_arch()} {kind}, {link}, OS ABI {osabi}"


def _loader_lines(closure: Closure, st: Style) -> list[str]:
    loader = closure.search.loader
    where = loader.describe_source()
    problem = closure.real_loader_problem
    if closure.real_loader_exists and problem:  # already escaped by the loader module
        return [f"  real loader: {safe(loader.path)} ({where}) {st.red('unusable')}: {problem}"]
    if closure.real_loader_exists:
        glibc = f", glibc {closure.real_loader_glibc}" if closure.real_loader_glibc else ""
        return [f"  real loader: {safe(loader.path)} ({where}{glibc})"]
    if closure.binary.machine == "EM_386" and closure.binary.elf_class == 32:
        fix = ("set NIX_LD_i686_linux to a 32-bit glibc ld.so (the NixOS module does), or let "
               "`nixld-hook resolve` build pkgsi686Linux.glibc")
    else:
        fix = "set NIX_LD to a glibc ld.so, or enable the shim on NixOS (programs.nixld.enable)"
    return [f"  real loader: {safe(loader.path)} ({where}) {st.red('does not exist')}: {fix}"]


def _entry_lines(closure: Closure, st: Style) -> list[str]:
    """The entries that apply, in the order their dirs are searched."""
    out = []
    for applied in closure.search.applied:
        scope = "per-user" if applied.scope == "user" else "system-wide"
        state = "" if applied.valid else " " + st.red(
            f"stale ({applied.state}; ignored: run nixld-hook resolve again)")
        out.append(f"  {scope} entry: {safe(applied.file)}{state}")
    return out


def _tree_lines(root: str, closure: Closure, st: Style) -> list[str]:
    """Dependency tree: each object's needs, each soname expanded once."""
    by_parent: dict[str, list[Needed]] = {}
    for need in closure.needed:
        for parent in need.needed_by:
            by_parent.setdefault(parent, []).append(need)
    lines = [safe(root)]
    expanded: set[str] = set()

    def walk(obj: str, prefix: str) -> None:
        children = by_parent.get(obj, [])
        for i, need in enumerate(children):
            last = i == len(children) - 1
            branch = "└── " if last else "├── "
            lines.append(prefix + branch + _need_label(need, st, need.soname in expanded))
            if need.path and need.soname not in expanded:
                expanded.add(need.soname)
                walk(need.path, prefix + ("    " if last else "│   "))
            expanded.add(need.soname)

    walk(closure.binary.path, "")  # needed_by names the binary by its ELF path
    return lines


def _need_label(need: Needed, st: Style, seen: bool) -> str:
    from nixld.glibc import is_glibc_soname

    soname = safe(need.soname)
    if need.path is None and is_glibc_soname(need.soname):
        return f"{soname} => {st.yellow('not found: part of glibc, comes with the real loader')}"
    if need.path is None:
        error = f" ({need.error})" if need.error else ""  # already escaped by the loader
        return f"{st.bold(soname)} => {st.red('MISSING')}{error}"
    where = safe(need.path)
    via = f" ({need.via})" if need.via else ""
    label = f"{soname} => {st.dim(where + via)}" if seen else f"{soname} => {where}{st.dim(via)}"
    problems = need.version_problems
    if problems:
        versions = ", ".join(safe(p.version) for p in problems)
        label += " " + st.red(f"lacks {versions}")
    return label


def _problem_lines(closure: Closure, st: Style) -> list[str]:
    problems = closure.glibc_problems
    if not problems:
        return []
    glibc = closure.real_loader_glibc or "unknown"
    needed = sorted({p.version for p in problems})
    return [
        "",
        st.red(f"needs {', '.join(needed)}, newer than the real loader's glibc {glibc}:")
        + " adding libraries cannot fix this; use a newer NixOS (or a glibc loader of that "
        "version as NIX_LD), or a build of the program for an older glibc",
    ]


def _missing_lines(analysis: Analysis, closure: Closure, st: Style) -> list[str]:
    missing = closure.missing
    lines: list[str] = [""]
    if not missing and not closure.glibc_problems:
        if closure.real_loader_exists and closure.real_loader_problem:
            lines.append("every library outside glibc resolves; the real loader cannot load "
                         "this binary (see above), and glibc comes with a loader that can")
        elif closure.real_loader_exists:
            lines.append(st.green("every library resolves: nothing is missing"))
        else:
            lines.append("every library outside glibc resolves; glibc comes with the real loader")
        return lines
    if not missing:
        return lines
    lines.append(st.bold(f"missing ({len(missing)}):"))
    for need in missing:
        lines.extend(_missing_need_lines(analysis, need, st))
    lines.append("")
    if analysis.i686 is not None:
        return lines + _plan32_lines(analysis, st)
    return lines + _plan_lines(analysis, st)


def _missing_need_lines(analysis: Analysis, need: Needed, st: Style) -> list[str]:
    """One missing soname: who needs it, its ranked providers, the dropped ones."""
    by = ", ".join(safe(_short(p)) for p in need.needed_by)
    why = "not found" if need.path is None else "found, but lacks a required version"
    lines = [f"  {st.bold(safe(need.soname))}  {why}; needed by {by}"]
    if analysis.database_error:
        return lines
    choice = analysis.ranking.choices.get(need.soname) if analysis.ranking else None
    cands = [c for c in choice.candidates if not c.dropped] if choice else []
    dropped = [c for c in choice.candidates if c.dropped] if choice else []
    if not cands:
        lines.append("    " + st.red("every package that has it was dropped" if dropped
                                      else "no package in the database provides it"))
    else:
        lines.extend(_candidate_table(cands, choice.chosen if choice else None, st))
    for cand in dropped:
        lines.append(st.dim(f"    dropped {safe(cand.attr)} ({safe(cand.store_path)}): "
                            f"{safe(cand.reasons[-1])}"))
    if analysis.i686 is not None and need.soname in analysis.i686:
        lines.extend(_i686_lines(analysis.i686[need.soname], st))
    return lines


def _plan_lines(analysis: Analysis, st: Style) -> list[str]:
    lines: list[str] = []
    plan = analysis.ranking.plan if analysis.ranking else []
    if plan:
        count = f"{len(plan)} package{'s' if len(plan) != 1 else ''}"
        lines.append(st.bold(f"plan: install {count}"))
        width = max(len(safe(p.attr)) + len(p.output) + 3 for p in plan)
        for item in plan:
            label = f"{safe(item.attr)} ({item.output})"
            sonames = ", ".join(safe(s) for s in item.sonames)
            lines.append(f"  {label:<{width}}  {safe(item.store_path)}  [{sonames}]")
        lines.append(f"run `nixld-hook resolve {safe(analysis.path)}` to install it")
    return lines


def _i686_lines(choice: I686Choice, st: Style) -> list[str]:
    """The 64-bit owners above, as the 32-bit packages tried in turn."""
    if not choice.tries:
        return ["    " + st.red("no 32-bit package: no owner above has a pkgsi686Linux "
                                "counterpart")]
    out = []
    for n, mapped in enumerate(choice.tries):
        label = "32-bit:" if n == 0 else "else:  "
        out.append(f"    {st.bold(label) if n == 0 else label} {safe(mapped.attr)} "
                   f"({mapped.output}), from {safe(mapped.owner_attr)} ({mapped.output}): "
                   f"{safe(mapped.why)}")
    out.extend(st.dim(f"    not mapped: {safe(u.owner_attr)}: {safe(u.why)}")
               for u in choice.unmapped)
    return out


def _plan32_lines(analysis: Analysis, st: Style) -> list[str]:
    plan = analysis.plan32
    if not plan:
        return []
    count = f"{len(plan)} package{'s' if len(plan) != 1 else ''}"
    lines = [st.bold(f"plan: build {count} for 32-bit x86 from your nixpkgs "
                     "(and pkgsi686Linux.glibc, the 32-bit loader, if NIX_LD_i686_linux is unset)")]
    width = max(len(safe(p.attr)) + len(p.output) + 3 for p in plan)
    for item in plan:
        label = f"{safe(item.attr)} ({item.output})"
        lines.append(f"  {label:<{width}}  [{', '.join(safe(s) for s in item.sonames)}]")
    lines.append(f"run `nixld-hook resolve {safe(analysis.path)}` to build and install it")
    return lines


def _candidate_table(cands: list[Candidate], chosen: Candidate | None, st: Style) -> list[str]:
    shown = cands[:SHOWN_CANDIDATES]
    rows = [("", "ATTRIBUTE", "OUTPUT", "SCORE", "STORE PATH", "WHY")]
    for cand in shown:
        mark = "*" if chosen is not None and cand.store_path == chosen.store_path else " "
        why = [*cand.reasons, *((f"lost: {cand.lost}",) if cand.lost else ())]
        rows.append((mark, safe(cand.attr), cand.output, str(cand.score),
                     safe(cand.store_path), "; ".join(safe(r) for r in why)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = []
    for i, row in enumerate(rows):
        text = "    " + "  ".join(cell.ljust(widths[j]) for j, cell in enumerate(row[:5]))
        text += "  " + row[5]
        out.append(st.dim(text.rstrip()) if i == 0 else text.rstrip())
    if len(cands) > SHOWN_CANDIDATES:
        out.append(st.dim(f"    ... and {len(cands) - SHOWN_CANDIDATES} more (see --json)"))
    return out


def _short(path: str) -> str:
    return os.path.basename(path) if path.startswith("/nix/store/") else path


def summary_line(sonames: Iterable[str]) -> str:
    names = [safe(s) for s in sonames]
    if not names:
        return "nothing is missing"
    if len(names) == 1:
        return f"lacks {names[0]}"
    return f"lacks {names[0]} (and {len(names) - 1} more)"


def _merged_plan(docs: list[dict[str, Any]]) -> list[Any]:
    """The 32-bit plans of several binaries, each package once."""
    merged: list[Any] = []
    for doc in docs:
        merged += [item for item in doc["plan"] if item not in merged]
    return merged


def to_json_many(label: str, analyses: list[Analysis], ranking: Ranking | None) -> dict[str, Any]:
    """One document for several binaries (resolve DIR --dry-run): the union."""
    if len(analyses) == 1:
        return to_json(analyses[0])
    docs = [to_json(a) for a in analyses]
    merged: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "binary": label, "kind": "dynamic",
        "interpreter": None, "needed": [], "missing": [], "dlopen_hints": [],
        "runtime": [r for d in docs for r in d.get("runtime", [])],
        "plan": _merged_plan(docs) if any(a.i686 is not None for a in analyses)
        else [p.to_json() for p in ranking.plan] if ranking else [],
        "complete": all(d["complete"] for d in docs),
        "warnings": sorted({w for d in docs for w in d["warnings"]}),
        "database": docs[0]["database"] if docs else None,
    }
    for key in ("needed", "missing"):
        by_soname: dict[str, dict[str, Any]] = {}
        for doc in docs:
            for item in doc[key]:
                have = by_soname.get(item["soname"])
                if have is None:
                    by_soname[item["soname"]] = dict(item, needed_by=list(item["needed_by"]))
                else:
                    have["needed_by"] += [n for n in item["needed_by"]
                                          if n not in have["needed_by"]]
        merged[key] = list(by_soname.values())
    for doc in docs:
        merged["dlopen_hints"] += [h for h in doc["dlopen_hints"]
                                   if h not in merged["dlopen_hints"]]
    return merged


def render_plan_text(label: str, analyses: list[Analysis], ranking: Ranking | None, *,
                     colour: bool = False) -> str:
    """`resolve --dry-run`: the plan, per binary what it lacks."""
    st = Style(colour)
    lines = []
    for analysis in analyses:
        missing = analysis.missing_sonames
        state = st.green("complete") if not missing else st.red(summary_line(missing))
        lines.append(f"{safe(analysis.path)}: {state}")
    if any(a.i686 is not None for a in analyses):
        return "\n".join(lines + [line for a in analyses for line in _plan32_lines(a, st)]) + "\n"
    plan = ranking.plan if ranking else []
    if plan:
        lines.append(st.bold(f"would install {len(plan)} package{'s' if len(plan) != 1 else ''}:"))
        for item in plan:
            lines.append(f"  {safe(item.attr)} ({item.output})  {safe(item.store_path)}  "
                         f"[{', '.join(safe(s) for s in item.sonames)}]")
        unprovided = [s for s, c in ranking.choices.items() if c.chosen is None] if ranking else []
        if unprovided:
            lines.append(st.red("no provider for: " + ", ".join(safe(s) for s in unprovided)))
    else:
        lines.append("nothing to install")
    return "\n".join(lines) + "\n"
