"""The pixels an image claims, read from its header whatever its name, never decoded: every
image a chat shows inline (PNG, GIF, JPEG) and WebP."""

from __future__ import annotations

import struct

from bot.sandbox.files import MAX_PIXELS, image_pixels


def jpeg(width: int, height: int, *, frame: int = 0xC0, exif: int = 0) -> bytes:
    """SOI, an APP0 and an APP1 of `exif` bytes before the frame header, then a scan."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0" + bytes(9)
    app1 = b"\xff\xe1" + struct.pack(">H", exif + 2) + bytes(exif) if exif else b""
    sof = b"\xff" + bytes([frame]) + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\1\x11\0"
    return b"\xff\xd8" + app0 + app1 + sof + b"\xff\xda\0\x08\1\1\0\0\x3f\0" + b"\0" * 16


def test_a_jpeg_claims_the_size_of_its_frame_header_after_long_app_segments() -> None:
    assert image_pixels(jpeg(640, 480)) == 640 * 480
    assert image_pixels(jpeg(65535, 65535, exif=60_000)) == 65535 * 65535 > MAX_PIXELS


def test_a_progressive_or_hierarchical_jpeg_claims_its_frame_header_too() -> None:
    assert image_pixels(jpeg(30_000, 20_000, frame=0xC2)) == 600_000_000
    assert image_pixels(jpeg(30_000, 20_000, frame=0xDE)) == 600_000_000


def test_a_jpeg_without_a_frame_header_before_its_scan_claims_nothing() -> None:
    assert image_pixels(b"\xff\xd8\xff\xe0\x00\x10JFIF\0" + bytes(9) + b"\xff\xda\0\x02") is None
    assert image_pixels(b"\xff\xd8\xff\xe0\xff\xff") is None  # a length past the end


def test_webp_claims_its_canvas_or_its_frame() -> None:
    vp8x = b"RIFF\0\0\0\0WEBPVP8X" + bytes(8) + (29_999).to_bytes(3, "little") * 2
    bits = (16_383) | (16_383 << 14)
    vp8l = b"RIFF\0\0\0\0WEBPVP8L" + bytes(4) + b"\x2f" + bits.to_bytes(4, "little")
    vp8 = b"RIFF\0\0\0\0WEBPVP8 " + bytes(7) + b"\x9d\x01\x2a" + struct.pack("<HH", 800, 600)

    assert image_pixels(vp8x) == 900_000_000
    assert image_pixels(vp8l) == 16_384 * 16_384
    assert image_pixels(vp8) == 800 * 600


def test_png_and_gif_claims_and_other_files() -> None:
    png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + struct.pack(">II", 100_000, 100_000)
    assert image_pixels(png) == 10_000_000_000
    assert image_pixels(b"GIF89a" + struct.pack("<HH", 300, 200)) == 60_000
    assert image_pixels(b"a,b\n1,2\n") is None
