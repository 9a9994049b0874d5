"""Deploy's layer step: find the published layer version of the job packages' fingerprint, or
build and publish one (through S3 when the zip is too large to upload directly), after
checking every limit, so that a refusal comes before anything changes."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.executors.aws_lambda import layer_build
from bot.executors.aws_lambda.layer_build import BuiltLayer, LayerBuildError
from bot.executors.jobenv import read_pins

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

MIB = 1024 * 1024
UNZIPPED_LIMIT = 250 * MIB  # 262,144,000 bytes: the function and all its layers, unzipped
# a zip in the request itself (base64 in JSON) may be 50 MB; keep clear of the envelope
DIRECT_UPLOAD_LIMIT = 50 * MIB - 64 * 1024
S3_PREFIX = "jobbot/layers"
_DESCRIPTION = re.compile(r"^jobbot job packages; fingerprint ([0-9a-f]{64}); unzipped (\d+) bytes")


def layer_name(function: str) -> str:
    """The layer's name: the function's own name (never an ARN's other parts) + -packages."""
    bare = function.rsplit(":function:", 1)[-1].split(":", 1)[0]
    return f"{bare}-packages"


def describe(fingerprint: str, unzipped: int) -> str:
    """The layer version's description: how deploy recognises what it holds."""
    return f"jobbot job packages; fingerprint {fingerprint}; unzipped {unzipped} bytes"


def parse_description(text: str) -> tuple[str, int] | None:
    """(fingerprint, unzipped bytes) of a description `describe` wrote; None for others."""
    match = _DESCRIPTION.match(text or "")
    return (match[1], int(match[2])) if match else None


def megabytes(size: int) -> str:
    """Bytes as MB (MiB, as Lambda's limits are), one decimal."""
    return f"{size / MIB:.1f} MB"


class LayerError(Exception):
    """The layer step cannot go on (`misconfigured`: a setting or the list must change)."""

    def __init__(self, message: str, *, misconfigured: bool = False) -> None:
        super().__init__(message)
        self.misconfigured = misconfigured


@dataclass
class LayerStep:
    """The job packages' layer for one function.

    Args:
        client: the deploy Lambda client.
        s3: makes an S3 client (only called when the zip goes through S3).
        function: JOBBOT_LAMBDA_FUNCTION.
        requirements: the pinned list (requirements-jobs.txt).
        architecture, runtime: the function's.
        bucket: JOBBOT_LAMBDA_ARTIFACT_BUCKET ("" when unset).
        say: prints a progress line.
        build: builds the zip in a directory, not zipping it above the size given
            (layer_build.build for the real thing).
    """

    client: LambdaClient
    s3: Callable[[], Any]
    function: str
    requirements: Path
    architecture: str
    runtime: str
    bucket: str
    say: Callable[[str], None]
    build: Callable[[Path, str, Path, int], BuiltLayer]
    arn: str | None = None  # the version to attach, once known
    unzipped: int = 0
    _built: BuiltLayer | None = None
    _workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def name(self) -> str:
        """The layer's name."""
        return layer_name(self.function)

    def fingerprint(self) -> str:
        """What the layer must hold, as layer_build.fingerprint."""
        pins = read_pins(self.requirements)
        return layer_build.fingerprint(pins, self.runtime, self.architecture)

    def wanted(self) -> bool:
        """False when the list pins nothing: the function then gets no layer."""
        return self.requirements.is_file() and bool(read_pins(self.requirements))

    def prepare(self, function_unzipped: int) -> None:
        """Find the published version of this fingerprint, or build the zip; then check
        Lambda's size limits and the upload path. Changes nothing in AWS."""
        fingerprint = self.fingerprint()
        found = self._published(fingerprint)
        if found is not None:
            self.arn, self.unzipped = found
            self.say(f"layer: up to date ({self.arn}, fingerprint {fingerprint[:12]})")
        else:
            self.say(
                f"layer: building {self.name} from {self.requirements.name} for "
                f"{self.runtime} on {self.architecture} (fingerprint {fingerprint[:12]})"
            )
            self._workdir = tempfile.TemporaryDirectory(prefix="jobbot-layer-")
            try:
                made = self.build(
                    self.requirements,
                    self.architecture,
                    Path(self._workdir.name),
                    UNZIPPED_LIMIT - function_unzipped,
                )
            except LayerBuildError as exc:
                raise LayerError(f"the layer could not be built: {exc}") from exc
            self._built, self.unzipped = made, made.unzipped_bytes
            bytecode = "with" if made.bytecode else "WITHOUT (no python3.13 here)"
            fonts = "with" if made.font_cache else "without"
            if made.zipped:
                self.say(
                    f"layer: built, {megabytes(made.zip_bytes)} zipped, {bytecode} bytecode "
                    f"for python3.13, {fonts} matplotlib's font list"
                )
        total = self.unzipped + function_unzipped
        self.say(
            f"layer: {megabytes(self.unzipped)} unzipped; with the function's code "
            f"{megabytes(total)} of Lambda's {megabytes(UNZIPPED_LIMIT)} limit"
        )
        if total > UNZIPPED_LIMIT:
            raise LayerError(
                f"the job packages take {megabytes(self.unzipped)} unzipped, so the function "
                f"and its layer would take {megabytes(total)}, over Lambda's limit of "
                f"{megabytes(UNZIPPED_LIMIT)} for a function and all its layers. Nothing was "
                f"changed. Pin fewer or smaller packages in {self.requirements.name}",
                misconfigured=True,
            )
        built = self._built
        if built is not None and built.zip_bytes > DIRECT_UPLOAD_LIMIT and not self.bucket:
            raise LayerError(
                f"the layer zip is {megabytes(built.zip_bytes)}, over the "
                f"{megabytes(50 * MIB)} Lambda accepts in a request, so it must go through "
                "S3, and JOBBOT_LAMBDA_ARTIFACT_BUCKET is not set. Nothing was changed. "
                "Set it to a bucket in the function's region that deploy may write "
                "(`python -m bot lambda policy` prints the permissions)",
                misconfigured=True,
            )

    def publish(self) -> list[str]:
        """Publish the built zip as a new version (nothing when one was found); the changes."""
        built = self._built
        if built is None:
            return []
        try:
            content = self._content(built)
            answer = self.client.publish_layer_version(
                LayerName=self.name,
                Description=describe(built.fingerprint, built.unzipped_bytes),
                Content=content,
                CompatibleRuntimes=[self.runtime],  # type: ignore[list-item]
                CompatibleArchitectures=[self.architecture],  # type: ignore[list-item]
            )
            if "S3Key" in content:  # Lambda has its copy: the upload is not needed any more
                self.s3().delete_object(Bucket=content["S3Bucket"], Key=content["S3Key"])
        finally:
            self.close()
        self.arn = answer["LayerVersionArn"]
        change = f"layer: published {self.arn}"
        self.say(change)
        return [change]

    def close(self) -> None:
        """Remove the build directory."""
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _content(self, built: BuiltLayer) -> Any:
        if built.zip_bytes <= DIRECT_UPLOAD_LIMIT:
            return {"ZipFile": built.path.read_bytes()}
        key = f"{S3_PREFIX}/{self.name}/{built.fingerprint}.zip"
        self.say(
            f"layer: {megabytes(built.zip_bytes)} zipped is over the direct upload limit: "
            f"uploading to s3://{self.bucket}/{key}"
        )
        self.s3().upload_file(str(built.path), self.bucket, key)
        return {"S3Bucket": self.bucket, "S3Key": key}

    def _published(self, fingerprint: str) -> tuple[str, int] | None:
        """(ARN, unzipped bytes) of the newest version holding `fingerprint`, if any."""
        best: tuple[int, str, int] | None = None
        paginator = self.client.get_paginator("list_layer_versions")
        try:
            pages = list(paginator.paginate(LayerName=self.name))
        except self.client.exceptions.ResourceNotFoundException:
            return None
        for page in pages:
            for version in page.get("LayerVersions", []):
                parsed = parse_description(version.get("Description", ""))
                architectures = version.get("CompatibleArchitectures") or []
                if parsed is None or parsed[0] != fingerprint:
                    continue
                if list(architectures) != [self.architecture]:
                    continue
                number = int(version["Version"])
                if best is None or number > best[0]:
                    best = (number, version["LayerVersionArn"], parsed[1])
        return None if best is None else (best[1], best[2])


def packages_row(
    found: object, job_sees_it: object, requirements: Path | None, architecture: str
) -> tuple[str, str, bool]:
    """Doctor's row on the packages layer: `found` is the manifest the runner read at /opt,
    `job_sees_it` whether the probe job had the layer on its path."""
    pins = read_pins(requirements) if requirements is not None and requirements.is_file() else []
    manifest = found if isinstance(found, dict) else {}
    if not manifest.get("fingerprint"):
        if not pins:
            return ("lambda packages", "none pinned: jobs import the standard library only", True)
        return (
            "lambda packages",
            "NONE: the function has no packages layer, so jobs import the standard library "
            "only: run `python -m bot lambda deploy`",
            False,
        )
    offered = ", ".join(str(name) for name in manifest.get("offered") or []) or "no packages"
    wanted = layer_build.fingerprint(pins, f"python{layer_build.PYTHON_VERSION}", architecture)
    if manifest["fingerprint"] != wanted:
        detail = (
            f"the layer holds {offered} ({manifest.get('architecture')}), not what "
            f"{requirements.name if requirements else 'the list'} pins for {architecture}: "
            "run `python -m bot lambda deploy`"
        )
        return ("lambda packages", detail, False)
    if job_sees_it is not True:
        detail = "the layer is attached but the probe job could not import from it: redeploy"
        return ("lambda packages", detail, False)
    return ("lambda packages", f"layer up to date: the standard library and {offered}", True)
