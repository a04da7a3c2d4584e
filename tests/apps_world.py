"""Real third-party programs on top of the NixOS-like test world.

What it adds to a built `World`, all real and downloaded once:

- manylinux wheels from PyPI (`pip download`, kept in `$NIXLD_WORLD_HOME/wheels`):
  PySide6-Essentials (Qt's `designer`, its `Qt/lib` and `Qt/plugins` tree),
  opencv-python (`cv2`, whose bundled libraries need the system's libGL) and
  numpy;
- Debian's python3.11 (binary and standard library from its .debs) laid out
  as a foreign prefix, and a venv whose site-packages holds cv2 and numpy;
- the providers Qt's xcb platform plugin, libGL and Python's modules need,
  made from Debian library packages like the world's own, in a file:// cache
  of their own, and a nix-index database holding the world's store paths and
  these.

The binaries' interpreter is the world's shim, so they start as they would on
NixOS with the shim as /lib64's loader.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nixld import demo as w
from nixld.demo import debian, providers, store
from nixld.demo.catalog import STORE_DIR, SYSTEM
from nixld.demo.tools import run_tool
from nixld.demo.world import locked

APPS_VERSION = 2

WHEELS = ("PySide6-Essentials==6.9.3", "shiboken6==6.9.3", "opencv-python==5.0.0.93",
          "numpy==2.3.5")
PYTHON_DEBS = ("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")

# nixpkgs' names for the libraries Qt's xcb plugin, libGL and Python's modules need.
APP_PROVIDERS: tuple[w.Provider, ...] = (
    w.Provider("libX11", "xorg.libX11", "out", ("libx11-6", "libx11-xcb1")),
    w.Provider("libXau", "xorg.libXau", "out", ("libxau6",)),
    w.Provider("libXdmcp", "xorg.libXdmcp", "out", ("libxdmcp6",)),
    w.Provider("libbsd", "libbsd", "out", ("libbsd0",)),
    w.Provider("libmd", "libmd", "out", ("libmd0",)),
    w.Provider("libxcb", "xorg.libxcb", "out",
               ("libxcb1", "libxcb-randr0", "libxcb-render0", "libxcb-shm0", "libxcb-sync1",
                "libxcb-xfixes0", "libxcb-shape0", "libxcb-xkb1", "libxcb-glx0")),
    w.Provider("xcb-util", "xorg.xcbutil", "out", ("libxcb-util1",)),
    w.Provider("xcb-util-cursor", "xcb-util-cursor", "out", ("libxcb-cursor0",)),
    w.Provider("xcb-util-wm", "xorg.xcbutilwm", "out", ("libxcb-icccm4",)),
    w.Provider("xcb-util-image", "xorg.xcbutilimage", "out", ("libxcb-image0",)),
    w.Provider("xcb-util-keysyms", "xorg.xcbutilkeysyms", "out", ("libxcb-keysyms1",)),
    w.Provider("xcb-util-renderutil", "xorg.xcbutilrenderutil", "out",
               ("libxcb-render-util0",)),
    w.Provider("libxkbcommon", "libxkbcommon", "out", ("libxkbcommon0", "libxkbcommon-x11-0")),
    w.Provider("libXext", "xorg.libXext", "out", ("libxext6",)),
    w.Provider("libICE", "xorg.libICE", "out", ("libice6",)),
    w.Provider("libSM", "xorg.libSM", "out", ("libsm6",)),
    w.Provider("util-linux", "util-linux", "lib", ("libuuid1", "libmount1", "libblkid1")),
    w.Provider("libglvnd", "libglvnd", "out",
               ("libgl1", "libglx0", "libglvnd0", "libegl1", "libopengl0")),
    w.Provider("fontconfig", "fontconfig", "lib", ("libfontconfig1",)),
    w.Provider("freetype", "freetype", "out", ("libfreetype6",)),
    w.Provider("libpng", "libpng", "out", ("libpng16-16",)),
    w.Provider("expat", "expat", "out", ("libexpat1",)),
    w.Provider("glib", "glib", "out", ("libglib2.0-0",)),
    w.Provider("pcre2", "pcre2", "out", ("libpcre2-8-0",)),
    w.Provider("libselinux", "libselinux", "out", ("libselinux1",)),
    w.Provider("dbus", "dbus", "lib", ("libdbus-1-3",)),
    w.Provider("systemd", "systemd", "out", ("libsystemd0",)),
    w.Provider("libcap", "libcap", "lib", ("libcap2",)),
    w.Provider("libgcrypt", "libgcrypt", "lib", ("libgcrypt20",)),
    w.Provider("libgpg-error", "libgpg-error", "out", ("libgpg-error0",)),
    w.Provider("sqlite", "sqlite", "out", ("libsqlite3-0",)),
)


@dataclass(frozen=True)
class Apps:
    root: Path
    designer: Path  # PySide6's designer, interpreter = the world's shim
    qt_tree: Path  # the PySide6 package directory (designer, Qt/lib, Qt/plugins)
    python: Path  # Debian's python3.11, interpreter = the world's shim
    venv: Path  # a venv of that python with cv2 and numpy in its site-packages
    cache_dir: Path  # file:// cache of the app providers
    database_dir: Path  # the world's store paths and the app providers
    store_paths: tuple[str, ...]  # the app providers

    @property
    def site_packages(self) -> Path:
        return self.venv / "lib/python3.11/site-packages"

    def env(self, world: w.World, home: Path,
            base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The world's environment with both caches and the combined database."""
        env = world.env(home, base)
        keys = f"{store.cache_public_key(world.cache_dir)} {store.cache_public_key(self.cache_dir)}"
        env["NIX_CONFIG"] = (f"substituters = {world.substituter} file://{self.cache_dir}\n"
                             f"trusted-public-keys = {keys}\n"
                             "narinfo-cache-negative-ttl = 0\n")
        env["NIX_INDEX_DATABASE"] = str(self.database_dir)
        return env


def fetch_wheels(home: Path) -> list[Path]:
    """The pinned wheels, downloaded once with pip."""
    wheels = home / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    names = [spec.split("==")[0].lower().replace("-", "_") + "-" + spec.split("==")[1]
             for spec in WHEELS]
    found = [next(iter(sorted(wheels.glob(f"{n}-*.whl"))), None) for n in names]
    if any(f is None for f in found):
        run_tool(["python3", "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:",
                "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                "--implementation", "cp", "-d", str(wheels), *WHEELS])
        found = [next(iter(sorted(wheels.glob(f"{n}-*.whl"))), None) for n in names]
    lost = [spec for spec, f in zip(WHEELS, found, strict=True) if f is None]
    if lost:
        raise w.WorldError(f"pip download gave no wheel for {', '.join(lost)}")
    return [f for f in found if f is not None]


def unpack_wheel(wheel: Path, dest: Path) -> None:
    """A wheel is a zip; the executable bits are in its external attributes."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            out = dest / info.filename
            if info.is_dir():
                out.mkdir(parents=True, exist_ok=True)
                continue
            out.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            out.chmod(mode or 0o644)


def _set_interpreter(binary: Path, interpreter: Path) -> None:
    run_tool(["patchelf", "--set-interpreter", str(interpreter), str(binary)])


def _python_prefix(debs: Mapping[str, Path], staging: Path, prefix: Path) -> Path:
    """Debian's python3.11 as a prefix of its own: bin/python3.11, lib/python3.11."""
    for pkg in PYTHON_DEBS:
        debian.extract_deb(debs[pkg], staging / "py")
    (prefix / "bin").mkdir(parents=True)
    shutil.copy2(staging / "py/usr/bin/python3.11", prefix / "bin/python3.11")
    shutil.copytree(staging / "py/usr/lib/python3.11", prefix / "lib/python3.11", symlinks=True)
    return prefix / "bin/python3.11"


def _venv(python: Path, venv: Path, wheels: Sequence[Path]) -> None:
    """What `python -m venv --without-pip` makes, with cv2 and numpy installed."""
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text(
        f"home = {python.parent}\ninclude-system-site-packages = false\nversion = 3.11.2\n")
    (venv / "bin/python").symlink_to(python)
    (venv / "bin/python3").symlink_to("python")
    site = venv / "lib/python3.11/site-packages"
    site.mkdir(parents=True)
    for wheel in wheels:
        if wheel.name.startswith(("opencv", "numpy")):
            unpack_wheel(wheel, site)


def _combined_database(world: w.World, items: Sequence[tuple[w.StoreItem, Path]],
                       file: Path) -> None:
    from nixld.database import FileEntry, Origin, StorePath, read_database, write_database

    def blocks() -> Iterator[tuple[StorePath, list[FileEntry]]]:
        yield from read_database(world.database_file)
        for item, tree in items:
            digest, name = item.store_path.rsplit("/", 1)[1].split("-", 1)
            yield (StorePath(STORE_DIR, digest, name,
                             Origin(item.attr, item.output, True, SYSTEM)),
                   [FileEntry(p, k, s, t)  # type: ignore[arg-type]
                    for p, k, s, t in store.file_entries(tree)])

    file.parent.mkdir(parents=True, exist_ok=True)
    write_database(file, blocks())


def _check_covered(binaries: Sequence[Path], libs: Mapping[str, Path]) -> None:
    for binary in binaries:
        lacking = providers.uncovered(binary, libs)
        if lacking:
            raise w.WorldError(f"no provider for {', '.join(lacking)} "
                               f"(needed by {binary.name})")


def build_apps(world: w.World, root: Path, debs: Mapping[str, Path],
               wheels: Sequence[Path]) -> dict[str, object]:
    assert world.shim is not None
    staging = root / "staging"
    staged, libs = providers.stage_providers(APP_PROVIDERS, debs, staging)
    # For the coverage check only: the world's own providers and glibc again.
    check = (*w.PROVIDERS, w.Provider("glibc", "glibc", "out", ("libc6",)))
    _, check_libs = providers.stage_providers(check, debs, staging / "check")
    libs.update({k: v for k, v in check_libs.items() if k not in libs})
    qt = root / "qt"
    for wheel in wheels:
        if wheel.name.startswith(("pyside6", "shiboken6")):
            unpack_wheel(wheel, qt)
    designer = qt / "PySide6/designer"
    python = _python_prefix(debs, staging, root / "python")
    _venv(python, root / "venv", wheels)
    site = root / "venv/lib/python3.11/site-packages"
    for bundled in (qt / "PySide6/Qt/lib", site / "opencv_python.libs", site / "numpy.libs"):
        libs.update({p.name: p for p in bundled.iterdir() if ".so" in p.name})
    _check_covered([designer, qt / "PySide6/Qt/plugins/platforms/libqxcb.so", python,
                    site / "cv2/cv2.abi3.so"], libs)
    _set_interpreter(designer, world.shim)
    _set_interpreter(python, world.shim)
    store_paths = store.add_all([s.dir for s in staged])
    store.copy_to_cache(store_paths, root / "cache")
    store.delete_unrooted(store_paths)
    items = [(store.item_of(s, p), s.dir) for s, p in zip(staged, store_paths, strict=True)]
    _combined_database(world, items, root / "database/files")
    shutil.rmtree(staging)
    return {"version": APPS_VERSION, "store_paths": store_paths}


def _apps_key(world: w.World, debs: Mapping[str, Path], wheels: Sequence[Path]) -> str:
    h = hashlib.sha256(f"{APPS_VERSION}\0{world.key}\0{world.shim}\0".encode())
    for name in sorted([*(d.name for d in debs.values()), *(p.name for p in wheels)]):
        h.update(name.encode() + b"\0")
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def _load(root: Path, manifest: Mapping[str, object]) -> Apps:
    store_paths = manifest["store_paths"]
    assert isinstance(store_paths, list)
    return Apps(root=root, designer=root / "qt/PySide6/designer", qt_tree=root / "qt/PySide6",
                python=root / "python/bin/python3.11", venv=root / "venv",
                cache_dir=root / "cache", database_dir=root / "database",
                store_paths=tuple(store_paths))


def ensure_apps(world: w.World, home: Path) -> Apps:
    """Build the apps on top of `world` once (under `home`), then reuse them."""
    if world.shim is None:
        raise w.WorldError("the apps need the built shim (make -C shim)")
    with locked(home):
        debs = debian.fetch_debs([*PYTHON_DEBS, "libc6",
                             *(d for p in (*APP_PROVIDERS, *w.PROVIDERS) for d in p.debs)],
                            home / "debs")
        wheels = fetch_wheels(home)
        root = home / f"apps-{_apps_key(world, debs, wheels)}"
        try:
            manifest = json.loads((root / "apps.json").read_text())
        except (OSError, ValueError):
            manifest = None
        if manifest is None:
            for old in home.glob("apps-*"):
                shutil.rmtree(old, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=".apps-", dir=home))
            try:
                manifest = build_apps(world, tmp, debs, wheels)
                _fix_paths(tmp, root)
                os.replace(tmp, root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            (root / "apps.json").write_text(json.dumps(manifest))
        apps = _load(root, manifest)
        store.delete_unrooted(apps.store_paths)
        return apps


def _fix_paths(tmp: Path, root: Path) -> None:
    """The venv names its interpreter by absolute path: point it at the final place."""
    cfg = tmp / "venv/pyvenv.cfg"
    cfg.write_text(cfg.read_text().replace(str(tmp), str(root)))
    link = tmp / "venv/bin/python"
    link.unlink()
    link.symlink_to(root / "python/bin/python3.11")


def xvfb_display() -> Iterator[str]:
    """Start Xvfb on a free display; yield its name; stop it."""
    proc = subprocess.Popen(["Xvfb", "-displayfd", "1", "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        number = proc.stdout.readline().strip()
        if not number:
            raise w.WorldError("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def xwd_to_png(xwd: Path, png: Path) -> Path:
    """An X window dump (ZPixmap, 24 or 32 bits per pixel, as Xvfb's root at
    depth 24 gives) as a PNG, with zlib alone: the test keeps a screenshot anyone can open."""
    import struct
    import zlib

    data = xwd.read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    byte_order, bits_per_pixel, bytes_per_line, ncolors = (
        fields[7], fields[11], fields[12], fields[19])
    step = bits_per_pixel // 8
    if step not in (3, 4):
        raise w.WorldError(f"{xwd.name}: {bits_per_pixel} bits per pixel, not 24 or 32")
    pixels = data[header_size + 12 * ncolors:]
    rows = []
    for y in range(height):
        line = pixels[y * bytes_per_line:y * bytes_per_line + step * width]
        lo, mid, hi = line[0::step], line[1::step], line[2::step]
        r, g, b = (hi, mid, lo) if byte_order == 0 else (lo, mid, hi) if step == 3 \
            else (line[1::step], line[2::step], line[3::step])
        rgb = bytearray(3 * width)
        rgb[0::3], rgb[1::3], rgb[2::3] = r, g, b
        rows.append(b"\0" + bytes(rgb))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    png.write_bytes(b"\x89PNG\r\n\x1a\n"
                    + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                    + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b""))
    return png
