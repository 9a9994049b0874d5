"""The job environment's pins and installed versions, read without importing anything, and
the choice of template for a job's code."""

from __future__ import annotations

from pathlib import Path

from bot.executors.jobenv import JobPackages, Pin, canonical, installed, job_packages, read_pins
from bot.executors.local.zygote_client import package_pattern

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_list_offers_and_preloads_numpy_pandas_and_matplotlib() -> None:
    pins = read_pins(REPO / "requirements-jobs.txt")
    offered = [pin for pin in pins if pin.offered]
    assert [pin.name for pin in offered] == ["numpy", "pandas", "matplotlib"]
    assert [m for pin in offered for m in pin.preload] == ["numpy", "pandas", "matplotlib.pyplot"]
    assert all(not pin.offered and not pin.preload for pin in pins if pin not in offered)
    assert len({canonical(pin.name) for pin in pins}) == len(pins) > len(offered)


def test_every_line_of_the_shipped_list_is_an_exact_pin() -> None:
    lines = (REPO / "requirements-jobs.txt").read_text().splitlines()
    requirements = [line for line in lines if line.strip() and not line.startswith("#")]
    assert len(requirements) == len(read_pins(REPO / "requirements-jobs.txt"))


def fake_venv(root: Path, dists: dict[str, str]) -> str:
    (root / "bin").mkdir(parents=True)
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    site = root / "lib" / "python3.12" / "site-packages"
    for name, version in dists.items():
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return str(root / "bin" / "python")


def test_installed_versions_come_from_the_metadata_files(tmp_path: Path) -> None:
    python = fake_venv(tmp_path / "venv", {"numpy": "2.4.6", "Pillow": "13.0.0"})
    assert installed(python) == {"numpy": "2.4.6", "pillow": "13.0.0"}
    assert installed(str(tmp_path / "plain" / "bin" / "python")) == {}  # not a virtualenv


def test_offered_packages_show_installed_versions_and_stale_pins_are_named(
    tmp_path: Path,
) -> None:
    requirements = tmp_path / "requirements-jobs.txt"
    requirements.write_text(
        "# comment\nnumpy==2.4.6  # offered; preload: numpy\n"
        "matplotlib==3.11.2  # offered; preload: matplotlib.pyplot\npillow==13.0.0\n"
    )
    python = fake_venv(tmp_path / "venv", {"numpy": "2.4.6", "matplotlib": "3.10.0"})
    packages = job_packages(requirements, python)
    assert packages.offered == ["numpy 2.4.6", "matplotlib 3.10.0"]
    assert packages.preload == ["numpy", "matplotlib.pyplot"]
    assert packages.out_of_date == [
        "matplotlib 3.11.2 (installed: 3.10.0)",
        "pillow 13.0.0 (installed: none)",
    ]


def test_without_a_local_environment_the_pins_speak_for_themselves() -> None:
    packages = JobPackages((Pin("numpy", "2.4.6", offered=True),))
    assert packages.offered == ["numpy 2.4.6"]


def test_code_naming_a_preloaded_package_goes_to_the_package_template() -> None:
    pattern = package_pattern(["numpy", "pandas", "matplotlib.pyplot"])
    assert pattern is not None
    for code in ("import pandas as pd", "from matplotlib import pyplot", "import numpy.linalg"):
        assert pattern.search(code), code
    for code in ("print(1)", "import pandasx", "mynumpy = 1", "x = 'pan' + 'das'"):
        assert not pattern.search(code), code
    assert package_pattern([]) is None
