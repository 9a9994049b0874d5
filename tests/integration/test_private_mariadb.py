"""The private MariaDB servers the resilience tests start and stop beside the suite's own."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.private_mariadb import PrivateMariaDB


@pytest.mark.slow
def test_a_private_server_starting_leaves_the_shared_tmps_temporary_tables_alone() -> None:
    """A starting MariaDB deletes every `#sql*` file in its tmpdir: in the shared /tmp, the
    temporary tables of the suite's server, whose next query on one then failed ("Error on
    delete of '/tmp/#sql-temptable-...MAI' (Errcode: 2)", seen in test_authorization)."""
    decoy = Path(tempfile.gettempdir()) / f"#sql-temptable-{uuid.uuid4().hex}.MAI"
    decoy.write_bytes(b"")
    if os.geteuid() == 0:
        shutil.chown(decoy, "mysql", "mysql")
    server = PrivateMariaDB()
    try:
        assert decoy.exists(), "installing the private server deleted it"
        server.start()
        server.stop()
        server.start()
        assert decoy.exists(), "starting the private server deleted it"
    finally:
        server.destroy()
        decoy.unlink(missing_ok=True)
