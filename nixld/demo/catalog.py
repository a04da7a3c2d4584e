"""What the demo world holds: the foreign binaries, the nixpkgs-like
providers made from Debian packages, and the traps of the real database."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["full", "small"]
STORE_DIR = "/nix/store"
SYSTEM = "x86_64-linux"
MULTIARCH = "x86_64-linux-gnu"


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

# The traps of the real nixpkgs database (see nixld.demo.providers): which
# provider libraries the FHS env copies (all but these), and what the bundling
# app ships.
FHS_LEAVES_OUT = ("libncursesw.so", "libkeyutils.so")  # name prefixes
BUNDLED_BY_APP = ("libz.so.1", "libssl.so.3", "libcrypto.so.3", "libstdc++.so.6")
# Only a non-top-level store path provides this soname (nothing else has it).
ONLY_NON_TOPLEVEL = "keyutils"
# More traps of the ranking (issue 11): applications and a `-bin` package each
# shipping 3 to 10 copies of the providers' libraries (drawn with TRAP_SEED),
# alias attributes (the provider's store path listed again under each),
# non-top-level copies of providers, and a `dev` output with pkg-config files
# for some providers (none for the others).
TRAP_SEED = 11
BUNDLING_APPS = ("slack-4.41.97", "discord-0.0.76", "obsidian-1.7.7", "firefox-bin-133.0")
ALIASES = {"openssl": ("openssl_3",), "ncurses": ("ncurses6",),
           "gcc-unwrapped": ("stdenv.cc.cc",), "zstd": ("zstd_1_5",)}
NON_TOPLEVEL_COPIES = ("openssl", "zstd")
DEV_OUTPUTS = {"openssl": ("openssl", "libssl", "libcrypto"), "curl": ("libcurl",),
               "ncurses": ("ncursesw", "formw", "menuw"), "libidn2": ("libidn2",)}


def selected(kind: Kind) -> tuple[list[Foreign], list[Provider]]:
    """The binaries and providers of a world of this kind."""
    small = kind == "small"
    return ([f for f in FOREIGN if f.small or not small],
            [p for p in PROVIDERS if p.small or not small])


def required_packages(kind: Kind) -> list[str]:
    """Every Debian package a world of this kind is made from."""
    foreign, providers = selected(kind)
    return sorted({"libc6", *(f.deb for f in foreign),
                   *(d for p in providers for d in p.debs)})
