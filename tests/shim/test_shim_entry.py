"""The shim's entry code (shim/entry.c) against shim/FORMAT.md, through a
small harness compiled from the same source, and fuzzed with libFuzzer."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, need, need_tool
from tests.fixtures.shim.harness import FIXTURES, SHIM_DIR, fnv1a64

FORMAT = (SHIM_DIR / "FORMAT.md").read_text()
EXAMPLE_DEV, EXAMPLE_INO, EXAMPLE_SIZE = 66305, 1234567, 845120


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_tool("gcc")
    out = tmp_path_factory.mktemp("harness") / "entry_check"
    subprocess.run(["gcc", "-O1", "-g", "-fsanitize=address,undefined", "-Wall", "-Werror",
                    f"-I{SHIM_DIR}", "-o", str(out), str(FIXTURES / "entry_check.c"),
                    str(SHIM_DIR / "entry.c")], check=True)
    return out


def shim_hash(harness: Path, text: str) -> str:
    return subprocess.run([str(harness), "hash", text], capture_output=True, text=True,
                          check=True).stdout.strip()


def parse(harness: Path, tmp_path: Path, data: bytes) -> list[str]:
    f = tmp_path / "e.entry"
    f.write_bytes(data)
    r = subprocess.run([str(harness), "parse", str(f)], capture_output=True, text=True,
                       check=False)
    assert r.returncode in (0, 1) and r.stderr == "", r.stderr
    return r.stdout.splitlines()


def format_examples() -> list[bytes]:
    """The indented example entries in FORMAT.md, from `nixld-entry 1` to `end`."""
    out = []
    for m in re.finditer(r"^    (nixld-entry 1\n(?:    .*\n)*?)    end\n", FORMAT, re.M):
        body = "".join(line.removeprefix("    ") + "\n" for line in m.group(1).splitlines())
        out.append((body + "end\n").encode())
    return out


def format_example_entry() -> bytes:
    """FORMAT.md's example path entry (the first)."""
    examples = format_examples()
    assert examples, "FORMAT.md lost its example entry"
    return examples[0]


def format_build_id_example() -> bytes:
    examples = [e for e in format_examples() if b"\nbuild_id " in e]
    assert len(examples) == 1, "FORMAT.md lost its example build-id entry"
    return examples[0]


def test_format_hash_examples(harness: Path) -> None:
    m = re.search(r"`P = (/\S+)` -> `([0-9a-f]{16})\.entry`", FORMAT)
    assert m, "FORMAT.md lost its hash example"
    assert m.groups() == ("/usr/bin/true", "a7d497c60831a2bb")
    assert shim_hash(harness, m.group(1)) == m.group(2)
    empty = re.search(r'`P = ""` hashes to `([0-9a-f]{16})`', FORMAT)
    assert empty and shim_hash(harness, "") == empty.group(1) == "cbf29ce484222325"
    for text in ("/home/alice/bin/tool", "/nix/store/x y", "/ü"):
        assert shim_hash(harness, text) == f"{fnv1a64(text.encode()):016x}"


def test_format_example_entry_parses(harness: Path, tmp_path: Path) -> None:
    assert parse(harness, tmp_path, format_example_entry()) == [
        "valid",
        "path /home/alice/bin/tool",
        f"identity {EXAMPLE_DEV} {EXAMPLE_INO} {EXAMPLE_SIZE} 1764061234 123456789",
        "dir /nix/store/0c0jkbs3b0sh0a5x8yb2kzmfmxrm0n1p-zlib-1.3.1/lib",
        "dir /nix/store/a5sq8q1g9bq8vqgbl8jxbmym0kcm1ycz-openssl-3.0.14/lib",
    ]


def test_format_build_id_example_parses(harness: Path, tmp_path: Path) -> None:
    assert parse(harness, tmp_path, format_build_id_example()) == [
        "valid",
        "path /home/alice/bin/tool",
        f"build_id 27357f878ced56239e928e765c5b65594f7b22ec size {EXAMPLE_SIZE}",
        "dir /nix/store/0c0jkbs3b0sh0a5x8yb2kzmfmxrm0n1p-zlib-1.3.1/lib",
    ]
    # The file name example: the descriptor's bytes in order, as hex.
    m = re.search(r"^    desc ((?:[0-9a-f]{2} ?)+)\n    -> ([0-9a-f]+)\.build-id$", FORMAT, re.M)
    assert m and m.group(1).replace(" ", "") == m.group(2)
    assert m.group(2) == "27357f878ced56239e928e765c5b65594f7b22ec"


@pytest.mark.parametrize("lines", [
    b"build_id ab\n",  # no size
    b"build_id ab\nsize 1\ndev 1\n",  # a build-id entry has no dev/ino/mtime
    b"build_id ab\nsize 1\ndev 1\nino 2\nmtime 3 4\n",
    b"build_id abc\nsize 1\n",  # odd number of digits
    b"build_id AB\nsize 1\n",  # lowercase only
    b"build_id \nsize 1\n",
    b"build_id a\nsize 1\n",
    b"build_id " + b"ab" * 65 + b"\nsize 1\n",  # more than 64 bytes
    b"build_id ab\nbuild_id ab\nsize 1\n",
    b"build_id ab\nsize 1\nsize 1\n",
    b"build_id xy\nsize 1\n",
])
def test_invalid_build_id_entries(harness: Path, tmp_path: Path, lines: bytes) -> None:
    assert parse(harness, tmp_path, b"nixld-entry 1\npath /p\n" + lines + b"end\n") == [
        "invalid"]


def test_build_id_limits(harness: Path, tmp_path: Path) -> None:
    longest = b"ab" * 64
    out = parse(harness, tmp_path, b"nixld-entry 1\npath /p\nbuild_id " + longest +
                b"\nsize 18446744073709551615\nend\n")
    assert out == ["valid", "path /p", f"build_id {longest.decode()} size 18446744073709551615"]


def test_system_entry_without_identity(harness: Path, tmp_path: Path) -> None:
    data = b"nixld-entry 1\npath /opt/x\ndir /a\nsoname libz.so.1\nend\n"
    assert parse(harness, tmp_path, data) == ["valid", "path /opt/x", "dir /a"]


def test_limits(harness: Path, tmp_path: Path) -> None:
    head = b"nixld-entry 1\npath /p\n"
    dirs64 = b"".join(b"dir /d%d\n" % i for i in range(64))
    assert parse(harness, tmp_path, head + dirs64 + b"end\n")[0] == "valid"
    assert parse(harness, tmp_path, head + dirs64 + b"dir /x\nend\n") == ["invalid"]
    long_dir = b"/" + b"d" * 4094
    assert parse(harness, tmp_path, head + b"dir " + long_dir + b"\nend\n")[0] == "valid"
    assert parse(harness, tmp_path, head + b"dir " + long_dir + b"d\nend\n") == ["invalid"]
    pad = 65536 - len(head) - len(b"end\n") - len(b"x \n")
    exact = head + b"x " + b"0" * pad + b"\nend\n"
    assert len(exact) == 65536 and parse(harness, tmp_path, exact)[0] == "valid"
    assert parse(harness, tmp_path, exact.replace(b"x 0", b"x 00")) == ["invalid"]
    u64 = b"dev 18446744073709551615\nino 0\nsize 0\nmtime -1 999999999\n"
    assert parse(harness, tmp_path, head + u64 + b"end\n")[2] == \
        "identity 18446744073709551615 0 0 -1 999999999"
    for bad in (b"dev 18446744073709551616\n", b"dev \n", b"dev 1x\n",
                b"mtime 1 1000000000\n", b"mtime 1\n", b"mtime  1 2\n"):
        assert parse(harness, tmp_path, head + bad + b"end\n") == ["invalid"], bad


@pytest.mark.parametrize("data", [
    b"", b"nixld-entry 1\n", b"nixld-entry 1\nend\n", b"nixld-entry 1\npath /p\nend",
    b"nixld-entry 1\npath /p\nend\n\n", b"nixld-entry 1\npath /p\nend\nend\n",
    b" nixld-entry 1\npath /p\nend\n", b"nixld-entry 1\npath\nend\n",
    b"nixld-entry 1\npath \nend\n", b"nixld-entry 1\nPath /p\nend\n",
    b"nixld-entry 1\npath /p\nsha-256 x\nend\n", b"nixld-entry 1\npath /p\r\nend\n",
    b"nixld-entry 1\npath /p\npath /p\nend\n", b"nixld-entry 1\r\npath /p\nend\n",
    b"nixld-entry 1\npath /p\ndir\nend\n", b"nixld-entry 1\npath /p\ndir /a:\nend\n",
    b"nixld-entry 1\npath /p\nino 1\nend\n", b"nixld-entry 1\npath /\0p\nend\n",
])
def test_invalid_entries(harness: Path, tmp_path: Path, data: bytes) -> None:
    assert parse(harness, tmp_path, data) == ["invalid"]


def dict_escape(word: str) -> str:
    """A libFuzzer dictionary string: printable ASCII as is, the rest as \\xNN."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\x{ord(c):02x}"
                   for c in word)


def test_fuzz_entry_parser(tmp_path: Path) -> None:
    """libFuzzer over the parser for a bounded time (20 s in CI, 5 s here)."""
    need_tool("clang")
    fuzzer = tmp_path / "entry_fuzz"
    build = subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined", f"-I{SHIM_DIR}",
         "-o", str(fuzzer), str(FIXTURES / "entry_fuzz.c"), str(SHIM_DIR / "entry.c")],
        capture_output=True, text=True, check=False)
    need(build.returncode == 0, f"clang cannot build a libFuzzer target: {build.stderr}")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "format-example").write_bytes(format_example_entry())
    (corpus / "small").write_bytes(b"nixld-entry 1\npath /p\ndir /a\nend\n")
    (corpus / "build-id").write_bytes(format_build_id_example())
    words = ["nixld-entry 1\n", "path /", "dev ", "ino ", "size ", "mtime ", "dir /",
             "end\n", "build_id ", "0123456789abcdef", "sha256 ", ":", "\r", " ", "\n",
             "\x00", "18446744073709551615"]
    dictionary = tmp_path / "entry.dict"
    dictionary.write_text("".join(f'"{dict_escape(w)}"\n' for w in words))
    seconds = 20 if IN_CI else 5
    r = subprocess.run([str(fuzzer), f"-max_total_time={seconds}", "-max_len=70000",
                        f"-dict={dictionary}", str(corpus)],
                       capture_output=True, text=True, check=False, timeout=seconds + 120,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    done = re.search(r"Done (\d+) runs", r.stderr)
    assert done and int(done.group(1)) > 10_000, r.stderr[-500:]
