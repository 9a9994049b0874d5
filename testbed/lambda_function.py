"""The stand-in's function: its code staged as Lambda stages it, and what an execution
environment's launcher (testbed/lambda_environment.py) is told to start."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import sysconfig
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.executors.aws_lambda import package as lambda_package

SUPPORT = Path(__file__).resolve().parent
PROJECT = SUPPORT.parent
ENV_ROOT = "/srv"  # where the launcher binds the task root and the runtime
RUNTIME_API_PORT = 9001  # where Lambda's Runtime API listens, inside the microVM
RUNTIME_UID = 993  # Lambda's sandbox user (sbx_user1051)
LAYER_DIR = "/opt/python"  # where Lambda puts a Python layer's packages
ACCOUNT = "123456789012"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIASTANDINFAKEKEY01",
    "AWS_SECRET_ACCESS_KEY": "standin-secret-" + "S" * 25,
    "AWS_SESSION_TOKEN": "standin-session-token-" + "T" * 40,
}
_CLONE_NEWUSER = 0x10000000


def interpreter(python: str | None) -> tuple[str, str]:
    """(the real binary, its installation prefix) of `python` (a shim or venv is resolved)."""
    if python is None:
        return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)
    found = subprocess.run(
        [python, "-c", "import sys; print(sys.executable); print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return os.path.realpath(found[0]), os.path.realpath(found[1])


def needs_user_namespace() -> bool:
    """True when environments must live in a user namespace (not root, or asked to)."""
    return os.geteuid() != 0 or os.environ.get("JOBBOT_STANDIN_USERNS") == "1"


def check_user_namespaces() -> None:
    """Raise RuntimeError, saying why, when this machine refuses unprivileged user namespaces
    (the stand-in cannot run its runtime as another uid without root or one)."""
    probe = (
        "import ctypes, os, sys\n"
        f"if ctypes.CDLL(None, use_errno=True).unshare({_CLONE_NEWUSER}) != 0:\n"
        "    sys.exit(os.strerror(ctypes.get_errno()))\n"
    )
    ran = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True)
    if ran.returncode != 0:
        raise RuntimeError(
            "the Lambda stand-in runs each environment's runtime as an unprivileged uid: it "
            "needs root, or unprivileged user namespaces, which this machine refuses "
            f"({ran.stderr.strip() or ran.returncode}); run the tests as root or allow them "
            "(sysctl kernel.unprivileged_userns_clone=1, or the AppArmor userns restriction)"
        )


@dataclass
class FunctionCode:
    """The function's code and configuration, staged under `workdir`.

    Args:
        workdir: the stand-in's working directory.
        name, region, timeout_s, memory_mb, tmp_mb: the function's configuration.
        runtime: "bootstrap" (the stdlib loop) or "awslambdaric".
        handler: MODULE.FUNCTION the runtime calls.
        extra_files: more files for the task root, by relative path (a test's handler).
        python: the runtime's interpreter.
        credentials: the AWS credentials in the runtime's environment.
        tenancy: "shared" or "per-tenant" (what GetFunction reports).
        opt: an unpacked layer (testbed/lambda_layer.py: the one `lambda deploy` builds),
            mounted read-only at /opt, where Lambda unpacks the function's layers (None: an
            empty /opt, as a function without layers has).
        layer: instead of `opt`, a directory of packages for this interpreter version (the
            local job environment's) mounted read-only at /opt/python.
    """

    workdir: Path
    name: str
    region: str
    timeout_s: float
    memory_mb: int
    tmp_mb: int
    runtime: str
    handler: str
    python: str | None
    credentials: dict[str, str]
    tenancy: str
    extra_files: dict[str, bytes] = field(default_factory=dict)
    opt: Path | None = None
    layer: str | None = None

    def __post_init__(self) -> None:
        self.binary, self.prefix = interpreter(self.python)
        self.arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.name}"

    def stage(self) -> None:
        """Unpack the deployment zip into the task root and copy the runtime, readable by the
        runtime's uid, as Lambda does."""
        os.chmod(self.workdir, 0o755)  # noqa: S103 - the runtime's uid reads the code
        task = self.workdir / "task"
        (self.workdir / "function.zip").write_bytes(lambda_package.build_zip())
        with zipfile.ZipFile(self.workdir / "function.zip") as archive:
            archive.extractall(task)
        for relative, data in self.extra_files.items():
            (task / relative).parent.mkdir(parents=True, exist_ok=True)
            (task / relative).write_bytes(data)
        runtime = self.workdir / "runtime"
        runtime.mkdir()
        shutil.copy(SUPPORT / "lambda_bootstrap.py", runtime / "bootstrap.py")
        for path in (task, runtime, *task.rglob("*"), *runtime.rglob("*")):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    def launch_config(
        self, runtime_api: str, *, forward: list[list[int]] | None = None
    ) -> dict[str, Any]:
        """The launcher's configuration for one environment whose runtime reaches the
        Runtime API at `runtime_api` (forwarded from the host when `forward` is given)."""
        binds = [
            [str(self.workdir / "task"), f"{ENV_ROOT}/task"],
            [str(self.workdir / "runtime"), f"{ENV_ROOT}/runtime"],
            [self.prefix, self.prefix],
        ]
        env = {
            "PATH": f"{self.prefix}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": f"{ENV_ROOT}/task",
            "LAMBDA_RUNTIME_DIR": f"{ENV_ROOT}/runtime",
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "_HANDLER": self.handler,
            **self.credentials,
        }
        hide = {str(PROJECT), str(Path.home()), "/run", "/var/tmp"}
        if self.opt is not None:
            binds.append([os.path.realpath(self.opt), "/opt"])
        else:
            hide.add("/opt")  # Lambda's /opt holds the layers and nothing else
        if self.runtime == "awslambdaric":
            binds.append([sysconfig.get_paths()["purelib"], f"{ENV_ROOT}/packages"])
            env["PYTHONPATH"] = f"{ENV_ROOT}/packages"
            argv = [self.binary, "-m", "awslambdaric", self.handler]
        else:
            argv = [self.binary, f"{ENV_ROOT}/runtime/bootstrap.py", self.handler]
        if self.layer is not None:  # in the empty /opt
            assert self.opt is None, "an unpacked layer at /opt, or packages at /opt/python"
            binds.append([os.path.realpath(self.layer), LAYER_DIR])
        return {
            "userns": needs_user_namespace(),
            "uid": RUNTIME_UID,
            "gid": RUNTIME_UID,
            "tmp_mb": self.tmp_mb,
            "binds": binds,
            # Lambda has neither the host's /run (its database socket) nor a writable /var/tmp
            "hide": sorted(hide),
            "env": env,
            "argv": argv,
            "cwd": f"{ENV_ROOT}/task",
            "forward": forward or [],
        }

    def architecture(self) -> str:
        """The function's architecture: its layer's (built for this machine, which runs it),
        else arm64, deploy's default."""
        if self.opt is not None:
            manifest = json.loads((self.opt / "jobbot" / "packages.json").read_text())
            return str(manifest["architecture"])
        return "arm64"

    def description(self) -> dict[str, Any]:
        """What GetFunction answers (the fields doctor reads)."""
        package = self.workdir / "function.zip"
        sha = lambda_package.code_sha256(package.read_bytes()) if package.exists() else ""
        configuration: dict[str, Any] = {
            "FunctionName": self.name,
            "FunctionArn": self.arn,
            "Runtime": "python3.13",
            "Role": f"arn:aws:iam::{ACCOUNT}:role/{self.name}-execution",
            "Handler": self.handler,
            "CodeSha256": sha,
            "Timeout": math.ceil(self.timeout_s),
            "MemorySize": self.memory_mb,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": [self.architecture()],
        }
        if self.opt is not None:
            size = sum(p.stat().st_size for p in self.opt.rglob("*") if p.is_file())
            arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:layer:{self.name}-packages:1"
            configuration["Layers"] = [{"Arn": arn, "CodeSize": size}]
        if self.tenancy == "per-tenant":
            configuration["TenancyConfig"] = {"TenantIsolationMode": "PER_TENANT"}
        return {
            "Configuration": configuration,
            "Code": {"RepositoryType": "S3", "Location": "http://example.invalid/code.zip"},
        }
