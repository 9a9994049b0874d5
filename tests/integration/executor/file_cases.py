"""The files contract: data files in, files out, as cases of the shared contract suite
(test_contract.py runs them in zygote and fresh mode, test_parity.py on Lambda too)."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any


def entry(name: str, data: bytes) -> dict[str, str]:
    """A file as the protocol carries it."""
    return {"name": name, "data": base64.b64encode(data).decode("ascii")}


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG that claims width x height pixels (no pixel data follows)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + crc


def jpeg_header(width: int, height: int) -> bytes:
    """The start of a baseline JPEG that claims width x height pixels, its frame header after
    a long EXIF segment (no scan follows)."""
    exif = b"\xff\xe1" + struct.pack(">H", 20_002) + b"Exif\0\0" + bytes(19_994)
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\1\x11\0"
    return b"\xff\xd8" + exif + frame


CSV = b"a,b\n1,2\n3,4\n"
BOMB = png_header(100_000, 100_000)
JPEG_BOMB = jpeg_header(65_535, 65_535)

# (code, expected response fields, changes to the request); the files expected are exact
FILE_CASES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "a_data_file_is_placed_read_only_beside_the_code": (
        "import os\nprint(open('data.csv').read(), sorted(os.listdir('.')),"
        " oct(os.stat('data.csv').st_mode & 0o777))\n",
        {"stdout": "a,b\n1,2\n3,4\n ['data.csv', 'job.py', 'out'] 0o444\n", "files": []},
        {"files": [entry("data.csv", CSV)]},
    ),
    "files_written_under_out_come_back_sorted_by_name": (
        "open('out/b.bin', 'wb').write(bytes(range(256)))\nopen('out/a.txt', 'w').write('A')\n",
        {
            "outcome": "ok",
            "files": [entry("a.txt", b"A"), entry("b.bin", bytes(range(256)))],
            "files_note": None,
        },
        {},
    ),
    "names_of_files_out_are_made_plain_and_printable": (
        "open('out/\\x1b[31mred\\n.txt', 'w').write('r')\n"
        "open('out/..hidden', 'w').write('h')\n"
        "open('out/\\u202eevil.txt', 'w').write('e')\n",
        # in the order of the names as written
        {"files": [entry("_[31mred_.txt", b"r"), entry("hidden", b"h"), entry("_evil.txt", b"e")]},
        {},
    ),
    "links_and_special_files_in_out_are_left_out": (
        "import os\nos.symlink('/etc/passwd', 'out/pw')\n"
        "open('out/x', 'w').write('x')\nos.link('out/x', 'out/y')\nos.mkfifo('out/z')\n"
        "os.mkdir('out/sub')\n",
        {
            "outcome": "ok",
            "files": [],
            "files_note": "left out: pw (a symbolic link); "
            "left out: sub (a directory: only files directly in out/ are kept); "
            "left out: x (a hard link); left out: y (a hard link); "
            "left out: z (not a regular file)",
        },
        {},
    ),
    "at_most_max_files_out_are_kept": (
        "for i in range(13):\n    open(f'out/{i:02}.txt', 'w').write(str(i))\n",
        {
            "files": [entry(f"{i:02}.txt", str(i).encode()) for i in range(10)],
            "files_note": "3 more files left out: at most 10 files are kept",
        },
        {},
    ),
    "files_out_over_the_byte_limit_are_left_out": (
        "open('out/a.txt', 'w').write('a' * 600)\nopen('out/b.txt', 'w').write('b' * 600)\n",
        {
            "files": [entry("a.txt", b"a" * 600)],
            "files_note": "left out: b.txt (600 bytes: over the limit of 1,000 bytes for all"
            " files together)",
        },
        {"max_files_out_bytes": 1000},
    ),
    "an_image_claiming_too_many_pixels_is_left_out": (
        f"open('out/bomb.png', 'wb').write({BOMB!r})\n",
        {
            "files": [],
            "files_note": "left out: bomb.png (an image of 10,000,000,000 pixels"
            " (limit 50,000,000))",
        },
        {},
    ),
    "a_jpeg_claiming_too_many_pixels_is_left_out_whatever_its_name": (
        f"open('out/photo.dat', 'wb').write({JPEG_BOMB!r})\nopen('out/ok.txt', 'w').write('ok')\n",
        {
            "files": [entry("ok.txt", b"ok")],
            "files_note": "left out: photo.dat (an image of 4,294,836,225 pixels"
            " (limit 50,000,000))",
        },
        {},
    ),
    "out_replaced_by_a_file_gives_no_files_and_says_so": (
        "import os\nos.rmdir('out')\nopen('out', 'w').write('x')\n",
        {"files": [], "files_note": "out is not a directory, so no file was kept"},
        {},
    ),
    # a result must fit Lambda's 6 MB response, locally too: base64 makes these 4.1 MB of
    # files 5.5 MB, with the output (and the stdout result, the same again) over the limit
    "files_out_that_with_the_output_would_not_fit_one_result_are_left_out_largest_first": (
        "print('x' * 1_000_000)\nopen('out/a.bin', 'wb').write(bytes(2_000_000))\n"
        "open('out/b.bin', 'wb').write(bytes(2_100_000))\n",
        {
            "outcome": "ok",
            "files": [entry("a.bin", bytes(2_000_000))],
            "files_note": "left out: b.bin (with the job's output, over the 6 MB a job's result"
            " may hold)",
        },
        {},
    ),
    "files_out_are_kept_when_the_job_fails": (
        "open('out/partial.txt', 'w').write('so far')\nraise RuntimeError('later')\n",
        {"outcome": "error", "files": [entry("partial.txt", b"so far")]},
        {},
    ),
}
