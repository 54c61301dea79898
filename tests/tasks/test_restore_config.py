"""RestoreConfig refuses what would expose data keys."""

import pytest

from faceveil.tasks.restore_media import RestoreConfig


def test_restore_refuses_a_plain_tcp_scheduler_but_takes_tls_and_the_local_cluster():
    with pytest.raises(ValueError, match="in clear"):
        RestoreConfig("a", "b", all=True, dask_address="tcp://10.0.0.5:8786")
    assert RestoreConfig("a", "b", all=True, dask_address="tls://10.0.0.5:8786").dask_address.startswith("tls://")
    assert RestoreConfig("a", "b", all=True).dask_address is None
