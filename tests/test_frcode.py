"""frcode: nix-index's prefix-sharing line encoding (src/frcode.rs)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nixld import frcode

pytestmark = pytest.mark.unit


def test_encodes_the_example_from_nix_index_docs() -> None:
    # The example in nix-index's frcode.rs module documentation, byte for byte.
    enc = frcode.Encoder()
    data = b"".join(enc.line(meta, path) for meta, path in [
        (b"directory", b"/"), (b"directory", b"/foo"), (b"directory", b"/foo/bar"),
        (b"file", b"/foo/bar/test.txt"), (b"file", b"/foo/bar/text.txt"),
        (b"directory", b"/foo/baz"),
    ])
    assert data == (b"directory\0\x00/\n" b"directory\0\x01foo\n" b"directory\0\x03/bar\n"
                    b"file\0\x04/test.txt\n" b"file\0\x03xt.txt\n" b"directory\0\xfcz\n")


def test_large_changes_use_0x80_and_a_big_endian_i16() -> None:
    enc = frcode.Encoder()
    long = b"/" + b"a" * 299
    enc.line(b"1r", long)
    second = enc.line(b"1r", long + b"/b")
    assert second == b"1r\0\x80\x01\x2c/b\n"  # +300
    footer = enc.footer(b"p", b"{}")
    assert footer == b"p\0\x80\xfe\xd4{}\n"  # -300


def test_plus_minus_127_take_three_bytes_as_in_nix_index() -> None:
    assert frcode.encode_diff(126) == b"\x7e"
    assert frcode.encode_diff(-126) == b"\x82"
    assert frcode.encode_diff(127) == b"\x80\x00\x7f"
    assert frcode.encode_diff(-127) == b"\x80\xff\x81"


def test_decoder_accepts_minus_127_in_one_byte() -> None:
    # 0x81 is -127: not what nix-index writes, but a valid signed byte.
    prev = b"/" + b"x" * 127
    data = b"1r\0\x00" + prev + b"\n" + b"1r\0\x7f" + prev[:127] + b"y\n" + b"1r\0\x81z\n"
    assert frcode.decode(data)[-1] == (b"1r", b"z")


def test_footer_resets_the_prefix_for_the_next_block() -> None:
    enc = frcode.Encoder()
    data = (enc.line(b"1d", b"") + enc.line(b"3r", b"/lib") + enc.footer(b"p", b"{\"a\":1}")
            + enc.line(b"2d", b"") + enc.line(b"4r", b"/lib"))
    assert data.endswith(b"2d\0\x00\n4r\0\x00/lib\n")
    assert frcode.decode(data) == [(b"1d", b""), (b"3r", b"/lib"), (b"p", b"{\"a\":1}"),
                                   (b"2d", b""), (b"4r", b"/lib")]


def test_diff_bytes_may_be_nul_or_newline() -> None:
    enc = frcode.Encoder()
    lines = [(b"m", b"/123456789"), (b"m", b"/123456789/abcdefghij"), (b"m", b"/1")]
    data = b"".join(enc.line(m, p) for m, p in lines)
    assert b"\0\n" in data  # a +10 change is the byte 0x0a
    assert frcode.decode(data) == lines


def test_encoder_rejects_what_the_format_cannot_hold() -> None:
    enc = frcode.Encoder()
    with pytest.raises(ValueError, match="NUL or newline"):
        enc.line(b"1r", b"/a\nb")
    with pytest.raises(ValueError, match="must not contain NUL"):
        enc.line(b"1\0r", b"/a")


def test_shared_prefix_longer_than_previous_path_is_an_error() -> None:
    with pytest.raises(frcode.FrcodeError) as err:
        frcode.decode(b"1r\0\x00/ab\n1r\0\x05c\n")
    assert str(err.value) == ("line 2: shared prefix length 5 is outside the previous path "
                              "(length 3)")


def test_negative_shared_prefix_is_an_error() -> None:
    with pytest.raises(frcode.FrcodeError, match="line 1: shared prefix length -1"):
        frcode.decode(b"1r\0\xff/ab\n")


def test_incomplete_last_line_is_an_error() -> None:
    with pytest.raises(frcode.FrcodeError) as err:
        frcode.decode(b"1r\0\x00/ab\n1r\0\x00/c")
    assert str(err.value) == ("line 2: incomplete line at the end of the stream "
                              "(6 bytes without a final newline)")


def test_overlong_line_is_an_error_without_waiting_for_the_end() -> None:
    decoder = frcode.Decoder()
    with pytest.raises(frcode.FrcodeError, match="line 1: longer than 1048576 bytes"):
        for _ in range(20):
            decoder.feed(b"x" * 100_000)


metas = st.binary(max_size=12).filter(lambda b: b"\0" not in b)
paths = st.binary(max_size=300).filter(lambda b: b"\0" not in b and b"\n" not in b)
ops = st.lists(st.tuples(st.booleans(), metas, paths), max_size=40)


def _encode(items: list[tuple[bool, bytes, bytes]]) -> bytes:
    enc = frcode.Encoder()
    return b"".join(enc.footer(m, p) if is_footer else enc.line(m, p)
                    for is_footer, m, p in items)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_round_trip(items: list[tuple[bool, bytes, bytes]]) -> None:
    assert frcode.decode(_encode(items)) == [(m, p) for _, m, p in items]


@settings(max_examples=200, deadline=None)
@given(ops, st.lists(st.integers(min_value=0, max_value=5000), max_size=8))
def test_any_chunking_decodes_the_same(items: list[tuple[bool, bytes, bytes]],
                                        cuts: list[int]) -> None:
    data = _encode(items)
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    decoded = [line for block in frcode.decode_chunks(chunks) for line in block]
    assert decoded == [(m, p) for _, m, p in items]


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_decode_or_raise_frcode_error(data: bytes) -> None:
    try:
        lines = frcode.decode(data)
    except frcode.FrcodeError:
        return
    assert all(b"\0" not in meta for meta, _ in lines)
