"""`lambda deploy`'s packages layer against moto served on loopback HTTP: built with the real
pip from wheels made here (no package index), published only when the pinned list changed,
attached, checked against Lambda's 250 MB limit, and sent through S3 above 50 MB."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.executors.aws_lambda import layer_build
from bot.executors.aws_lambda.deploy import run_lambda_command
from bot.executors.aws_lambda.layers import UNZIPPED_LIMIT, parse_description
from bot.executors.jobenv import read_pins
from testbed import jobenv
from testbed.lambda_setup import lambda_settings
from testbed.pythons import require_lambda_python
from tests.integration.lambda_executor.conftest import REGION
from tests.integration.lambda_executor.test_deploy import make_role
from tests.support.moto_lambda import REQUEST_LIMIT
from tests.support.wheels import make_wheel

pytestmark = pytest.mark.usefixtures("aws_env")

LAYER = "jobbot-runner-packages"
MIB = 1024 * 1024


@pytest.fixture
def wheels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory of wheels that pip installs from, and nothing else."""
    directory = tmp_path / "wheels"
    directory.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(directory))
    make_wheel(directory, "tinypkg", "1.0", {"tinypkg/__init__.py": b"ANSWER = 42\n"})
    make_wheel(directory, "tinypkg", "1.1", {"tinypkg/__init__.py": b"ANSWER = 43\n"})
    make_wheel(
        directory,
        "helper",
        "2.0",
        {
            "helper/__init__.py": b"",
            "helper/tests/__init__.py": b"",
            "helper/tests/test_big.py": b"x = 1\n" * 1000,
        },
    )
    return directory


def pinned(tmp_path: Path, *lines: str) -> Path:
    """A requirements-jobs.txt pinning `lines`."""
    path = tmp_path / "requirements-jobs.txt"
    path.write_text("# test pins\n" + "\n".join(lines) + "\n")
    return path


def deploy(requirements: Path, **values: str) -> tuple[int, str]:
    """`lambda deploy` with these settings and this pinned list; (exit code, output)."""
    out = io.StringIO()
    settings = lambda_settings(**values)
    code = run_lambda_command(
        settings, "deploy", out, requirements=requirements, sleep=lambda _: None
    )
    return code, out.getvalue()


def versions(lam: Any) -> list[dict[str, Any]]:
    """The published versions of the packages layer, oldest first."""
    try:
        found = lam.list_layer_versions(LayerName=LAYER)["LayerVersions"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return sorted(found, key=lambda v: v["Version"])


def attached(lam: Any) -> list[str]:
    """The layer ARNs of the function."""
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    return [layer["Arn"] for layer in config.get("Layers", [])]


def test_deploy_builds_the_layer_publishes_it_and_attaches_it(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    requirements = pinned(tmp_path, "tinypkg==1.0  # offered; preload: tinypkg", "helper==2.0")

    code, printed = deploy(requirements, JOBBOT_LAMBDA_ROLE_ARN=make_role(iam))

    assert code == 0, printed
    [version] = versions(lam)
    assert version["CompatibleArchitectures"] == ["arm64"]
    assert version["CompatibleRuntimes"] == ["python3.13"]
    described = parse_description(version["Description"])
    assert described is not None
    assert attached(lam) == [version["LayerVersionArn"]]
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["Architectures"] == ["arm64"]
    assert f"layer: published {version['LayerVersionArn']}" in printed
    assert "of Lambda's 250.0 MB limit" in printed


def test_the_layer_holds_the_packages_under_python_and_a_manifest(
    wheels: Path, tmp_path: Path
) -> None:
    requirements = pinned(tmp_path, "tinypkg==1.0  # offered; preload: tinypkg", "helper==2.0")
    workdir = tmp_path / "build"
    workdir.mkdir()

    built = layer_build.build(requirements, "x86_64", workdir, python=require_lambda_python())

    archive = zipfile.ZipFile(built.path)
    names = set(archive.namelist())
    assert "python/tinypkg/__init__.py" in names
    assert "python/helper/__init__.py" in names
    assert not any("/tests/" in name for name in names)  # test suites are pruned
    assert "python/tinypkg/__pycache__/__init__.cpython-313.pyc" in names  # bytecode
    manifest = json.loads(archive.read(layer_build.MANIFEST))
    assert manifest["offered"] == ["tinypkg 1.0"]
    assert manifest["preload"] == ["tinypkg"]
    assert manifest["architecture"] == "x86_64" and manifest["fingerprint"] == built.fingerprint
    assert built.unzipped_bytes == sum(info.file_size for info in archive.infolist())
    again = tmp_path / "again"
    again.mkdir()
    assert layer_build.build(requirements, "x86_64", again).fingerprint == built.fingerprint


def test_an_unchanged_list_publishes_nothing_and_a_changed_one_a_new_version(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    role = make_role(iam)
    deploy(pinned(tmp_path, "tinypkg==1.0"), JOBBOT_LAMBDA_ROLE_ARN=role)
    before = lam.get_function(FunctionName="jobbot-runner")["Configuration"]

    same, unchanged = deploy(pinned(tmp_path, "tinypkg==1.0"), JOBBOT_LAMBDA_ROLE_ARN=role)
    first = versions(lam)
    changed, updated = deploy(pinned(tmp_path, "tinypkg==1.1"), JOBBOT_LAMBDA_ROLE_ARN=role)

    assert same == 0 and "nothing changed" in unchanged, unchanged
    assert "layer: up to date" in unchanged and "building" not in unchanged
    assert len(first) == 1 and attached(lam) != [first[0]["LayerVersionArn"]]
    assert changed == 0, updated
    assert [v["Version"] for v in versions(lam)] == [1, 2]
    assert attached(lam) == [versions(lam)[1]["LayerVersionArn"]]
    assert "configuration: Layers" in updated
    assert before["Layers"][0]["Arn"] == first[0]["LayerVersionArn"]


def test_another_architecture_gets_its_own_layer_and_the_function_moves(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    role = make_role(iam)
    requirements = pinned(tmp_path, "tinypkg==1.0")
    deploy(requirements, JOBBOT_LAMBDA_ROLE_ARN=role)

    code, printed = deploy(
        requirements, JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_ARCHITECTURE="x86_64"
    )

    assert code == 0, printed
    newest = versions(lam)[-1]
    assert newest["CompatibleArchitectures"] == ["x86_64"]
    assert attached(lam) == [newest["LayerVersionArn"]]
    config = lam.get_function(FunctionName="jobbot-runner")["Configuration"]
    assert config["Architectures"] == ["x86_64"]
    assert "(architecture arm64 -> x86_64)" in printed


def big_wheel(directory: Path, size: int) -> None:
    """bigpkg 1.0, holding `size` bytes of incompressible data."""
    make_wheel(
        directory,
        "bigpkg",
        "1.0",
        {"bigpkg/__init__.py": b"", "bigpkg/blob.bin": os.urandom(size)},
        compression=zipfile.ZIP_STORED,
    )


@pytest.mark.slow
def test_a_layer_over_50_mb_goes_through_the_artifact_bucket(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="jobbot-artifacts")
    big_wheel(wheels, 52 * MIB)

    code, printed = deploy(
        pinned(tmp_path, "bigpkg==1.0"),
        JOBBOT_LAMBDA_ROLE_ARN=make_role(iam),
        JOBBOT_LAMBDA_ARTIFACT_BUCKET="jobbot-artifacts",
    )

    assert code == 0, printed
    assert (
        "over the direct upload limit: uploading to s3://jobbot-artifacts/jobbot/layers/" in printed
    )
    [version] = versions(lam)
    published = lam.get_layer_version(LayerName=LAYER, VersionNumber=version["Version"])
    assert published["Content"]["CodeSize"] > 52 * MIB
    assert attached(lam) == [version["LayerVersionArn"]]
    assert s3.list_objects_v2(Bucket="jobbot-artifacts").get("KeyCount") == 0  # cleaned up


@pytest.mark.slow
def test_a_layer_over_50_mb_without_a_bucket_is_refused_before_anything_changes(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    big_wheel(wheels, 52 * MIB)

    code, printed = deploy(pinned(tmp_path, "bigpkg==1.0"), JOBBOT_LAMBDA_ROLE_ARN=make_role(iam))

    assert code == 2, printed
    assert "must go through S3, and JOBBOT_LAMBDA_ARTIFACT_BUCKET is not set" in printed
    assert "Nothing was changed" in printed and "changed before the failure" not in printed
    assert versions(lam) == [] and lam.list_functions()["Functions"] == []


@pytest.mark.slow
def test_packages_over_250_mb_unzipped_are_refused_before_anything_changes(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws
    make_wheel(
        wheels,
        "hugepkg",
        "1.0",
        {"hugepkg/__init__.py": b"", "hugepkg/zeros.bin": bytes(UNZIPPED_LIMIT)},
    )

    code, printed = deploy(pinned(tmp_path, "hugepkg==1.0"), JOBBOT_LAMBDA_ROLE_ARN=make_role(iam))

    assert code == 2, printed
    assert "over Lambda's limit of 250.0 MB for a function and all its layers" in printed
    assert "Nothing was changed" in printed
    assert versions(lam) == [] and lam.list_functions()["Functions"] == []


def test_a_pin_pip_cannot_find_fails_the_deploy_before_anything_changes(
    aws: tuple[Any, Any], wheels: Path, tmp_path: Path
) -> None:
    lam, iam = aws

    code, printed = deploy(pinned(tmp_path, "tinypkg==9.9"), JOBBOT_LAMBDA_ROLE_ARN=make_role(iam))

    assert code == 1, printed
    assert "the layer could not be built: pip install" in printed and "tinypkg==9.9" in printed
    assert lam.list_functions()["Functions"] == []


def test_the_moto_server_is_as_strict_as_lambda_about_sizes(aws: tuple[Any, Any]) -> None:
    """Why the limits in tests/support/moto_lambda.py exist: Lambda's own answers."""
    lam, _ = aws
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("python/blob.bin", os.urandom(REQUEST_LIMIT * 3 // 4 + 1024))

    with pytest.raises(lam.exceptions.ClientError) as too_large:
        lam.publish_layer_version(LayerName="big", Content={"ZipFile": buffer.getvalue()})

    assert too_large.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert too_large.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_policy_grants_the_packages_layer_and_the_artifact_bucket_prefix_alone(
    aws: tuple[Any, Any],
) -> None:
    _, iam = aws
    role = make_role(iam)
    out = io.StringIO()
    settings = lambda_settings(
        JOBBOT_LAMBDA_ROLE_ARN=role, JOBBOT_LAMBDA_ARTIFACT_BUCKET="jobbot-artifacts"
    )

    code = run_lambda_command(settings, "policy", out)

    assert code == 0
    policy = json.loads(out.getvalue())["bot_role"]["policy"]
    statements = {s["Sid"]: s for s in policy["Statement"]}
    layer = "arn:aws:lambda:us-east-1:123456789012:layer:jobbot-runner-packages"
    assert statements["PackagesLayer"]["Resource"] == [layer, f"{layer}:*"]
    assert "lambda:PublishLayerVersion" in statements["PackagesLayer"]["Action"]
    uploads = statements["LayerUploadsOnly"]
    assert uploads["Resource"] == "arn:aws:s3:::jobbot-artifacts/jobbot/layers/*"
    assert "s3:ListBucket" not in uploads["Action"]
    iam.create_policy(PolicyName="jobbot-bot", PolicyDocument=json.dumps(policy))  # valid


def test_policy_without_a_bucket_grants_no_s3(aws: tuple[Any, Any]) -> None:
    _, iam = aws
    out = io.StringIO()

    run_lambda_command(lambda_settings(JOBBOT_LAMBDA_ROLE_ARN=make_role(iam)), "policy", out)

    assert '"s3:' not in out.getvalue()


def test_the_font_list_holds_matplotlibs_own_fonts_by_relative_path(tmp_path: Path) -> None:
    pins = read_pins(jobenv.REPO / "requirements-jobs.txt")

    made = layer_build.font_cache(jobenv.job_python(), pins, tmp_path)

    assert made
    [listed] = (tmp_path / layer_build.FONT_CACHE).iterdir()
    fonts = json.loads(listed.read_text())["ttflist"]
    assert fonts and all(f["fname"].startswith("fonts/") for f in fonts)  # no host font


def test_no_font_list_without_matplotlib_pinned(wheels: Path, tmp_path: Path) -> None:
    assert not layer_build.font_cache(
        jobenv.job_python(), read_pins(pinned(tmp_path, "tinypkg==1.0")), tmp_path
    )
    assert not (tmp_path / layer_build.FONT_CACHE).exists()
