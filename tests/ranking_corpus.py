"""The ranking corpus: real sonames, the nixpkgs package that owns each, and traps.

`PACKAGES` lists library packages as nixpkgs has them (attribute or attributes
naming the same store path, output, store path name, the sonames directly in
its `lib/`, the pkg-config files of its development files). `generate(seed)`
places every one of them among the traps of a real nix-index database, with a
seeded random generator:

- application bundles shipping 3 to 10 copies of owned libraries directly in
  their `lib/`, with `bin/` (and some with `opt/`, `share/applications/`),
  some of them `-bin` packages, some with a library of their own;
- an FHS environment (`steam-run`) holding a copy of every library;
- alias attributes: the same store path listed under several attributes (and
  for some owners only under a scoped one, as nix-index#321 shows);
- non-top-level copies of owners;
- development files: a `dev` output, or pkg-config files in the owner itself,
  or none at all, drawn per owner;
- the store paths in a shuffled order.

Grading is by store path: any alias of the owner counts. `binaries(seed)`
draws the missing-soname sets of binaries to explain: every soname alone, the
exact set of each bundle's copies (the case that tempts a set cover most), and
random mixtures.

    python3 -m tests.ranking_corpus [--seed N]   # accuracy of the current ranking
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace

from nixld.database import FileEntry, Origin, StorePath

SYSTEM = "x86_64-linux"


@dataclass(frozen=True)
class Package:
    """One owner store path. `attrs[0]` is the attribute nixpkgs users know it by."""

    attrs: tuple[str, ...]
    name: str  # store path name, e.g. "gcc-13.3.0-lib"
    sonames: tuple[str, ...]
    pc: tuple[str, ...] = ()  # pkg-config names its development files hold
    output: str = "out"
    # soname -> soname in the same store path it is a symlink to (ncurses' libtinfo)
    links: tuple[tuple[str, str], ...] = ()
    has_bin: bool = False


def P(attrs: str, name: str, sonames: str, pc: str = "", *,
      links: tuple[tuple[str, str], ...] = ()) -> Package:
    """A package; a store name ending in -lib is the `lib` output, as in nixpkgs."""
    output = "lib" if name.endswith("-lib") else "out"
    return Package(tuple(attrs.split()), name, tuple(sonames.split()), tuple(pc.split()),
                   output, links)


def with_bin(package: Package) -> Package:
    """The package has a bin/ too (an application as well as a library)."""
    return replace(package, has_bin=True)


PACKAGES: tuple[Package, ...] = (
    P("zlib", "zlib-1.3.1", "libz.so.1", "zlib"),
    P("openssl openssl_3", "openssl-3.0.14", "libssl.so.3 libcrypto.so.3",
      "openssl libssl libcrypto"),
    P("curl", "curl-8.9.1", "libcurl.so.4", "libcurl"),
    P("sqlite", "sqlite-3.46.0", "libsqlite3.so.0", "sqlite3"),
    P("libpng", "libpng-apng-1.6.43", "libpng16.so.16", "libpng16 libpng"),
    P("zstd", "zstd-1.5.6", "libzstd.so.1", "libzstd"),
    P("xz", "xz-5.6.2", "liblzma.so.5", "liblzma"),
    P("bzip2", "bzip2-1.0.8", "libbz2.so.1", "bzip2"),
    P("gcc-unwrapped stdenv.cc.cc", "gcc-13.3.0-lib",
      "libstdc++.so.6 libgcc_s.so.1 libgomp.so.1 libatomic.so.1 libquadmath.so.0"),
    with_bin(P("ncurses ncurses6", "ncurses-6.4",
               "libncursesw.so.6 libtinfo.so.6 libformw.so.6 "
               "libmenuw.so.6 libpanelw.so.6 libncurses.so.6", "ncursesw formw menuw panelw",
               links=(("libtinfo.so.6", "libncursesw.so.6"),
                      ("libncurses.so.6", "libncursesw.so.6")))),
    with_bin(P("systemd systemdLibs systemdMinimal", "systemd-256.2",
               "libsystemd.so.0 libudev.so.1", "libsystemd libudev")),
    P("util-linux", "util-linux-2.40.2-lib",
      "libuuid.so.1 libblkid.so.1 libmount.so.1 libfdisk.so.1 libsmartcols.so.1",
      "uuid blkid mount fdisk smartcols"),
    P("libGL libglvnd", "libglvnd-1.7.0",
      "libGL.so.1 libGLX.so.0 libEGL.so.1 libGLdispatch.so.0 libOpenGL.so.0 libGLESv2.so.2",
      "gl glx egl opengl libglvnd glesv2"),
    P("libxkbcommon", "libxkbcommon-1.7.0", "libxkbcommon.so.0 libxkbcommon-x11.so.0",
      "xkbcommon xkbcommon-x11"),
    P("xorg.libX11 libX11", "libX11-1.8.9", "libX11.so.6 libX11-xcb.so.1", "x11 x11-xcb"),
    P("xorg.libxcb libxcb", "libxcb-1.17.0",
      "libxcb.so.1 libxcb-shm.so.0 libxcb-render.so.0 libxcb-randr.so.0 libxcb-xfixes.so.0 "
      "libxcb-shape.so.0 libxcb-sync.so.1 libxcb-xkb.so.1 libxcb-glx.so.0",
      "xcb xcb-shm xcb-render xcb-randr xcb-xfixes xcb-shape xcb-sync xcb-xkb xcb-glx"),
    P("xcb-util-cursor xorg.xcbutilcursor", "xcb-util-cursor-0.1.5", "libxcb-cursor.so.0",
      "xcb-cursor"),
    P("xorg.libXext", "libXext-1.3.6", "libXext.so.6", "xext"),
    P("xorg.libXrandr", "libXrandr-1.5.4", "libXrandr.so.2", "xrandr"),
    P("xorg.libXi", "libXi-1.8.1", "libXi.so.6", "xi"),
    P("xorg.libXcursor", "libXcursor-1.2.2", "libXcursor.so.1", "xcursor"),
    P("xorg.libXfixes", "libXfixes-6.0.1", "libXfixes.so.3", "xfixes"),
    P("xorg.libXrender", "libXrender-0.9.11", "libXrender.so.1", "xrender"),
    P("xorg.libXdamage", "libXdamage-1.1.6", "libXdamage.so.1", "xdamage"),
    P("xorg.libXcomposite", "libXcomposite-0.4.6", "libXcomposite.so.1", "xcomposite"),
    P("xorg.libXtst", "libXtst-1.2.4", "libXtst.so.6", "xtst"),
    P("xorg.libXau", "libXau-1.0.11", "libXau.so.6", "xau"),
    P("qt6.qtbase kdePackages.qtbase", "qtbase-6.7.2",
      "libQt6Core.so.6 libQt6Gui.so.6 libQt6Widgets.so.6 libQt6Network.so.6 libQt6DBus.so.6",
      "Qt6Core Qt6Gui Qt6Widgets Qt6Network Qt6DBus"),
    P("qt6.qtdeclarative kdePackages.qtdeclarative", "qtdeclarative-6.7.2",
      "libQt6Qml.so.6 libQt6Quick.so.6", "Qt6Qml Qt6Quick"),
    P("kdePackages.qtwayland qt6.qtwayland", "qtwayland-6.7.2", "libQt6WaylandClient.so.6",
      "Qt6WaylandClient"),
    P("kdePackages.kcoreaddons", "kcoreaddons-6.5.0", "libKF6CoreAddons.so.6",
      "KF6CoreAddons"),
    P("kdePackages.ki18n", "ki18n-6.5.0", "libKF6I18n.so.6", "KF6I18n"),
    P("icu72", "icu4c-72.1", "libicuuc.so.72 libicui18n.so.72 libicudata.so.72",
      "icu-uc icu-i18n"),
    P("icu icu74", "icu4c-74.2", "libicuuc.so.74 libicui18n.so.74 libicudata.so.74",
      "icu-uc icu-i18n"),
    P("lua5_4", "lua-5.4.6", "liblua.so.5.4", "lua"),
    P("luajit", "luajit-2.1.1713773202", "libluajit-5.1.so.2", "luajit"),
    P("glib", "glib-2.80.4",
      "libglib-2.0.so.0 libgobject-2.0.so.0 libgio-2.0.so.0 libgmodule-2.0.so.0",
      "glib-2.0 gobject-2.0 gio-2.0 gmodule-2.0"),
    P("gtk3", "gtk+3-3.24.43", "libgtk-3.so.0 libgdk-3.so.0 libgailutil-3.so.0",
      "gtk+-3.0 gdk-3.0 gail-3.0"),
    P("cairo", "cairo-1.18.0", "libcairo.so.2 libcairo-gobject.so.2", "cairo cairo-gobject"),
    P("pango", "pango-1.52.2", "libpango-1.0.so.0 libpangocairo-1.0.so.0 libpangoft2-1.0.so.0",
      "pango pangocairo pangoft2"),
    P("gdk-pixbuf", "gdk-pixbuf-2.42.12", "libgdk_pixbuf-2.0.so.0", "gdk-pixbuf-2.0"),
    P("at-spi2-core", "at-spi2-core-2.52.0",
      "libatk-1.0.so.0 libatk-bridge-2.0.so.0 libatspi.so.0", "atk atk-bridge-2.0 atspi-2"),
    P("fontconfig", "fontconfig-2.15.0-lib", "libfontconfig.so.1", "fontconfig"),
    P("freetype", "freetype-2.13.2", "libfreetype.so.6", "freetype2"),
    P("harfbuzz", "harfbuzz-9.0.0", "libharfbuzz.so.0 libharfbuzz-subset.so.0",
      "harfbuzz harfbuzz-subset"),
    P("libjpeg libjpeg_turbo", "libjpeg-turbo-3.0.3", "libjpeg.so.8 libturbojpeg.so.0",
      "libjpeg libturbojpeg"),
    P("libxml2", "libxml2-2.12.7", "libxml2.so.2", "libxml-2.0"),
    P("dbus", "dbus-1.14.10-lib", "libdbus-1.so.3", "dbus-1"),
    P("alsa-lib", "alsa-lib-1.2.12", "libasound.so.2", "alsa"),
    P("libpulseaudio", "pulseaudio-17.0", "libpulse.so.0 libpulse-simple.so.0",
      "libpulse libpulse-simple"),
    P("libdrm", "libdrm-2.4.122", "libdrm.so.2 libdrm_amdgpu.so.1", "libdrm libdrm_amdgpu"),
    P("mesa", "mesa-24.1.4", "libgbm.so.1 libglapi.so.0 libGLX_mesa.so.0 libEGL_mesa.so.0",
      "gbm dri"),
    P("nss", "nss-3.101", "libnss3.so libnssutil3.so libsmime3.so libssl3.so", "nss"),
    P("nspr", "nspr-4.35", "libnspr4.so libplc4.so libplds4.so", "nspr"),
    P("libffi", "libffi-3.4.6", "libffi.so.8", "libffi"),
    P("expat", "expat-2.6.2", "libexpat.so.1", "expat"),
    P("gnutls", "gnutls-3.8.6", "libgnutls.so.30", "gnutls"),
    P("nettle", "nettle-3.10", "libnettle.so.8 libhogweed.so.6", "nettle hogweed"),
    P("gmp", "gmp-6.3.0", "libgmp.so.10", "gmp"),
    P("libidn2", "libidn2-2.3.7", "libidn2.so.0", "libidn2"),
    P("krb5", "krb5-1.21.3-lib",
      "libkrb5.so.3 libgssapi_krb5.so.2 libk5crypto.so.3 libkrb5support.so.0 libcom_err.so.3",
      "krb5 krb5-gssapi mit-krb5"),
    P("libssh2", "libssh2-1.11.0", "libssh2.so.1", "libssh2"),
    P("libssh", "libssh-0.10.6", "libssh.so.4", "libssh"),
    P("nghttp2", "nghttp2-1.62.1-lib", "libnghttp2.so.14", "libnghttp2"),
    P("brotli", "brotli-1.1.0-lib", "libbrotlicommon.so.1 libbrotlidec.so.1 libbrotlienc.so.1",
      "libbrotlicommon libbrotlidec libbrotlienc"),
    P("libwebp", "libwebp-1.4.0", "libwebp.so.7 libsharpyuv.so.0", "libwebp libsharpyuv"),
    P("libtiff", "libtiff-4.6.0", "libtiff.so.6", "libtiff-4"),
    P("libuv", "libuv-1.48.0", "libuv.so.1", "libuv"),
    P("libevent", "libevent-2.1.12", "libevent-2.1.so.7", "libevent"),
    P("pcre2", "pcre2-10.44", "libpcre2-8.so.0", "libpcre2-8"),
    P("libselinux", "libselinux-3.6", "libselinux.so.1", "libselinux"),
    P("acl", "acl-2.3.2", "libacl.so.1", "libacl"),
    P("attr", "attr-2.5.2", "libattr.so.1", "libattr"),
    P("libcap", "libcap-2.70-lib", "libcap.so.2", "libcap"),
    P("libgcrypt", "libgcrypt-1.10.3-lib", "libgcrypt.so.20", "libgcrypt"),
    P("libgpg-error", "libgpg-error-1.50", "libgpg-error.so.0", "gpg-error"),
    with_bin(P("e2fsprogs", "e2fsprogs-1.47.1", "libcom_err.so.2 libext2fs.so.2 libe2p.so.2",
               "com_err ext2fs e2p")),
    P("wayland kdePackages.wayland", "wayland-1.23.0",
      "libwayland-client.so.0 libwayland-server.so.0 libwayland-cursor.so.0 "
      "libwayland-egl.so.1", "wayland-client wayland-server wayland-cursor wayland-egl"),
    P("vulkan-loader", "vulkan-loader-1.3.283.0", "libvulkan.so.1", "vulkan"),
    P("libsodium", "libsodium-1.0.20", "libsodium.so.26", "libsodium"),
    P("libxcrypt", "libxcrypt-4.4.36", "libcrypt.so.2", "libcrypt libxcrypt"),
    P("keyutils", "keyutils-1.6.3-lib", "libkeyutils.so.1", "libkeyutils"),
    P("libunistring", "libunistring-1.2", "libunistring.so.5"),
    P("libtasn1", "libtasn1-4.19.0", "libtasn1.so.6", "libtasn1"),
    P("p11-kit", "p11-kit-0.25.5", "libp11-kit.so.0", "p11-kit-1"),
    P("SDL2", "SDL2-2.30.5", "libSDL2-2.0.so.0", "sdl2"),
    P("ffmpeg", "ffmpeg-7.0.1-lib",
      "libavcodec.so.61 libavformat.so.61 libavutil.so.59 libswscale.so.8 libswresample.so.5",
      "libavcodec libavformat libavutil libswscale libswresample"),
    P("libva", "libva-2.22.0", "libva.so.2 libva-drm.so.2", "libva libva-drm"),
    P("libnotify", "libnotify-0.8.3", "libnotify.so.4", "libnotify"),
    P("libsecret", "libsecret-0.21.4", "libsecret-1.so.0", "libsecret-1"),
    P("libusb1", "libusb-1.0.27", "libusb-1.0.so.0", "libusb-1.0"),
    with_bin(P("python3 python312", "python3-3.12.4", "libpython3.12.so.1.0", "python-3.12")),
    P("libarchive", "libarchive-3.7.4-lib", "libarchive.so.13", "libarchive"),
    P("lz4", "lz4-1.9.4-lib", "liblz4.so.1", "liblz4"),
    P("libbsd", "libbsd-0.12.2", "libbsd.so.0", "libbsd"),
    P("readline", "readline-8.2p10", "libreadline.so.8 libhistory.so.8", "readline"),
    P("gdbm", "gdbm-1.24-lib", "libgdbm.so.6"),
)

# Applications that ship copies of libraries directly in their lib/.
APPS = ("zoom-us", "slack", "discord", "obsidian", "spotify", "jellyfin-media-player",
        "wasabiwallet", "vscode", "teams-for-linux", "signal-desktop", "element-desktop",
        "bitwarden", "postman", "mongodb-compass", "insomnia", "zotero", "davinci-resolve",
        "unityhub", "anydesk", "teamviewer", "sublime4", "typora", "logseq", "joplin-desktop")
BIN_APPS = ("firefox-bin", "thunderbird-bin", "vivaldi-bin", "tor-browser-bin",
            "google-chrome-bin", "drawio-bin")

NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"


def store_hash(*parts: str) -> str:
    value = int.from_bytes(hashlib.sha256("\0".join(parts).encode()).digest()[:20], "big")
    return "".join(NIX_BASE32[(value >> (5 * i)) & 31] for i in range(32))


def owner_of(soname: str) -> Package:
    return OWNERS[soname]


OWNERS: dict[str, Package] = {s: p for p in PACKAGES for s in p.sonames}
SONAMES: tuple[str, ...] = tuple(OWNERS)


def owner_path(package: Package) -> str:
    return f"/nix/store/{store_hash('owner', package.name)}-{package.name}"


# ---------------------------------------------------------------- entries


def _dirs_of(files: Sequence[bytes]) -> list[bytes]:
    dirs = {b""}
    for f in files:
        parts = f.split(b"/")
        dirs.update(b"/".join(parts[:i]) for i in range(2, len(parts)))
    return sorted(dirs)


def _tree(files: dict[bytes, FileEntry]) -> list[FileEntry]:
    """Files plus every directory, in nix-index's order (sizes filled in by the writer)."""
    dirs = [FileEntry(d, "d") for d in _dirs_of(list(files)) if d not in files]
    return sorted([*dirs, *files.values()], key=lambda e: e.path)


def _lib(name: str, size: int) -> tuple[bytes, FileEntry]:
    path = b"/lib/" + name.encode()
    return path, FileEntry(path, "r", size)


def _size(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") % 900_000 + 4096


def owner_entries(pkg: Package, dev: str) -> list[FileEntry]:
    files: dict[bytes, FileEntry] = {}
    links = dict(pkg.links)
    for soname in pkg.sonames:
        if soname in links:
            path = b"/lib/" + soname.encode()
            files[path] = FileEntry(path, "s", None, links[soname].encode())
            continue
        real = f"{soname}.0" if soname[-1].isdigit() else soname
        path, entry = _lib(real, _size(pkg.name, soname))
        files[path] = entry
        if real != soname:
            link = b"/lib/" + soname.encode()
            files[link] = FileEntry(link, "s", None, real.encode())
    if pkg.has_bin:
        files[b"/bin/" + pkg.attrs[0].encode()] = FileEntry(b"/bin/" + pkg.attrs[0].encode(),
                                                           "x", 9000)
    if dev == "in-out":
        files.update(_dev_files(pkg))
    files[b"/share/doc/README"] = FileEntry(b"/share/doc/README", "r", 100)
    return _tree(files)


def _dev_files(pkg: Package) -> dict[bytes, FileEntry]:
    files = {}
    for pc in pkg.pc:
        path = b"/lib/pkgconfig/" + pc.encode() + b".pc"
        files[path] = FileEntry(path, "r", 300)
    header = b"/include/" + pkg.name.split("-")[0].encode() + b".h"
    files[header] = FileEntry(header, "r", 2000)
    return files


# ---------------------------------------------------------------- the generator


Block = tuple[StorePath, list[FileEntry]]


@dataclass
class Corpus:
    blocks: list[Block]
    bundles: dict[str, tuple[str, ...]]  # trap store path -> the corpus sonames it copies
    dev: dict[str, str]  # owner name -> "dev-output", "in-out" or "none"

    def is_right(self, soname: str, store_path: str | None) -> bool:
        return store_path == owner_path(OWNERS[soname])


def _sp(name: str, attr: str, output: str, toplevel: bool, *salt: str) -> StorePath:
    return StorePath("/nix/store", store_hash(name, *salt), name,
                     Origin(attr, output, toplevel, SYSTEM))


def _owner_blocks(rng: random.Random, pkg: Package, dev: str) -> list[Block]:
    entries = owner_entries(pkg, dev)
    path = StorePath("/nix/store", store_hash("owner", pkg.name), pkg.name, None)
    # Every alias lists the same store path, except that for some owners nix-index
    # shows only one attribute of several (nix-index#321).
    attrs = list(pkg.attrs)
    if len(attrs) > 1 and rng.random() < 0.25:
        attrs = [rng.choice(attrs)]
    blocks = [(StorePath(path.store_dir, path.hash, path.name,
                         Origin(attr, pkg.output, True, SYSTEM)), entries) for attr in attrs]
    if dev == "dev-output":
        base = pkg.name.removesuffix("-lib")
        dev_sp = _sp(f"{base}-dev", pkg.attrs[0], "dev", True, "dev")
        blocks.append((dev_sp, _tree(_dev_files(pkg))))
    return blocks


def _copy_files(rng: random.Random, sonames: Sequence[str], salt: str) -> dict[bytes, FileEntry]:
    files = {}
    for soname in sonames:
        path, entry = _lib(soname, _size(salt, soname))
        files[path] = entry
    return files


def _app_block(rng: random.Random, attr: str, sonames: Sequence[str]) -> Block:
    files = _copy_files(rng, sonames, attr)
    files[b"/bin/" + attr.encode()] = FileEntry(b"/bin/" + attr.encode(), "x", 50_000)
    if rng.random() < 0.6:
        desktop = b"/share/applications/" + attr.encode() + b".desktop"
        files[desktop] = FileEntry(desktop, "r", 300)
    if rng.random() < 0.5:
        blob = b"/opt/" + attr.encode() + b"/resources.pak"
        files[blob] = FileEntry(blob, "r", 1_000_000)
    for own in range(rng.randint(0, 2)):
        name = f"lib{attr.replace('-', '')}{'-core' if own else ''}.so"
        path, entry = _lib(name, 70_000)
        files[path] = entry
    version = f"{rng.randint(1, 40)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
    return _sp(f"{attr}-{version}", attr, "out", True, "app"), _tree(files)


def _fhs_block() -> Block:
    files = _copy_files(random.Random(0), SONAMES, "steam-run")
    for extra in (b"/usr/bin/env", b"/etc/os-release", b"/bin/steam-run", b"/lib32/ld.so"):
        files[extra] = FileEntry(extra, "r", 100)
    lib64 = {b"/lib64/" + p[len(b"/lib/"):]: FileEntry(b"/lib64/" + p[len(b"/lib/"):], "r",
                                                       e.size)
             for p, e in list(files.items())[:20] if p.startswith(b"/lib/")}
    files.update(lib64)
    return _sp("steam-run-fhs", "steam-run", "out", True, "fhs"), _tree(files)


def generate(seed: int = 11) -> Corpus:
    rng = random.Random(seed)
    blocks: list[Block] = []
    dev: dict[str, str] = {}
    for pkg in PACKAGES:
        dev[pkg.name] = rng.choice(("dev-output", "in-out", "none"))
        blocks.extend(_owner_blocks(rng, pkg, dev[pkg.name]))
    bundles: dict[str, tuple[str, ...]] = {}
    for attr in (*APPS, *BIN_APPS):
        copies = tuple(rng.sample(SONAMES, rng.randint(3, 10)))
        block = _app_block(rng, attr, copies)
        blocks.append(block)
        bundles[block[0].path] = copies
        if rng.random() < 0.2:  # the same bundle under a second attribute
            sp = block[0]
            assert sp.origin is not None
            alias = Origin(f"{attr}-wrapped", "out", True, SYSTEM)
            blocks.append((StorePath(sp.store_dir, sp.hash, sp.name, alias), block[1]))
    fhs = _fhs_block()
    blocks.append(fhs)
    bundles[fhs[0].path] = SONAMES
    for pkg in PACKAGES:  # non-top-level copies, named like their owner
        if rng.random() < 0.5:
            copy = _sp(pkg.name, pkg.attrs[0], pkg.output, False, "inner", str(seed))
            blocks.append((copy, _tree(_copy_files(rng, pkg.sonames, "inner" + pkg.name))))
    rng.shuffle(blocks)
    return Corpus(blocks, bundles, dev)


def binaries(corpus: Corpus, seed: int = 11) -> Iterator[tuple[str, tuple[str, ...]]]:
    """(kind, missing sonames) to grade: each soname alone ("single"), each bundle's
    copies ("bundle"), and random mixtures of 5 to 40 sonames ("mixture")."""
    rng = random.Random(seed + 1)
    for soname in SONAMES:
        yield "single", (soname,)
    for path in sorted(corpus.bundles):
        if len(corpus.bundles[path]) < len(SONAMES):
            yield "bundle", corpus.bundles[path]
    for _ in range(40):
        yield "mixture", tuple(rng.sample(SONAMES, rng.randint(5, 40)))


@dataclass
class Grade:
    right: dict[str, int]
    total: dict[str, int]
    wrong: list[str]

    def ratio(self, kind: str | None = None) -> float:
        right = sum(self.right.values()) if kind is None else self.right.get(kind, 0)
        total = sum(self.total.values()) if kind is None else self.total.get(kind, 0)
        return right / total if total else 1.0

    def summary(self) -> str:
        parts = [f"{self.right.get(k, 0)}/{n} {k}" for k, n in self.total.items()]
        return (f"{sum(self.right.values())} of {sum(self.total.values())} "
                f"({100 * self.ratio():.1f}%; {', '.join(parts)})")


def grade(rank: Callable[[tuple[str, ...]], dict[str, str | None]],
          corpus: Corpus, seed: int = 11) -> Grade:
    """Grade `rank`, which maps a binary's missing sonames to the chosen store path
    of each, over `binaries`."""
    result = Grade({}, {}, [])
    for kind, missing in binaries(corpus, seed):
        chosen = rank(missing)
        for soname in missing:
            result.total[kind] = result.total.get(kind, 0) + 1
            if corpus.is_right(soname, chosen.get(soname)):
                result.right[kind] = result.right.get(kind, 0) + 1
            else:
                result.wrong.append(f"{soname} -> {chosen.get(soname)}")
    return result


def main() -> int:
    import argparse
    import tempfile
    from pathlib import Path

    from nixld.analysis import rank_sonames
    from nixld.database import write_database

    parser = argparse.ArgumentParser(description="grade the ranking on the corpus")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--show", type=int, default=20, help="wrong picks to list")
    args = parser.parse_args()
    import os

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CACHE_HOME"] = tmp
        db = Path(tmp) / "files"
        corpus = generate(args.seed)
        write_database(db, corpus.blocks)

        def rank(missing: tuple[str, ...]) -> dict[str, str | None]:
            ranking = rank_sonames(missing, {}, db)
            return {s: c.chosen.store_path if c.chosen else None
                    for s, c in ranking.choices.items()}

        result = grade(rank, corpus, args.seed)
    print(f"{len(PACKAGES)} owners, {len(SONAMES)} sonames, {len(corpus.blocks)} store path "
          f"blocks; seed {args.seed}")
    print(f"top choice is the owner: {result.summary()}")
    for line in sorted(set(result.wrong))[:args.show]:
        print(f"  wrong: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
