"""A minimal Lambda runtime (stdlib): the Runtime API loop a `provided` runtime's bootstrap runs.

`python lambda_bootstrap.py MODULE.FUNCTION` inside an emulated execution environment: fetch
the next event from AWS_LAMBDA_RUNTIME_API, call the handler with a context, post the result
or the error in the shape the Python runtime (awslambdaric) uses. The tests also drive the
real awslambdaric; this loop is the quick default.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import sys
import time
import traceback

API = "/2018-06-01/runtime"


class Context:
    """The part of the Lambda context object handlers use."""

    def __init__(self, headers: http.client.HTTPMessage) -> None:
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self._deadline_ms = int(headers["Lambda-Runtime-Deadline-Ms"])

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds until Lambda stops the invocation."""
        return max(0, self._deadline_ms - int(time.time() * 1000))


def error_body(exc: BaseException, request_id: str) -> bytes:
    """awslambdaric's make_error shape."""
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
    return json.dumps(
        {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": request_id,
            "stackTrace": frames,
        }
    ).encode()


def call(conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None):
    """One Runtime API request; returns the response (read)."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, API + path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response, data


def main() -> None:
    """Load the handler, then serve invocations until the environment is killed."""
    conn = http.client.HTTPConnection(os.environ["AWS_LAMBDA_RUNTIME_API"])
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    module_name, func_name = sys.argv[1].rsplit(".", 1)
    try:
        handler = getattr(importlib.import_module(module_name), func_name)
    except Exception as exc:
        call(conn, "POST", "/init/error", error_body(exc, ""))
        sys.exit(1)
    while True:
        response, data = call(conn, "GET", "/invocation/next")
        context = Context(response.headers)
        request_id = context.aws_request_id
        try:
            result = handler(json.loads(data), context)
            body = json.dumps(result, ensure_ascii=False).encode("utf-8")
        except Exception as exc:
            print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            call(conn, "POST", f"/invocation/{request_id}/error", error_body(exc, request_id))
            continue
        call(conn, "POST", f"/invocation/{request_id}/response", body)


if __name__ == "__main__":
    main()
