"""RestoreConfig refuses what would expose data keys, and holds its cluster settings as anonymize's part."""

import dataclasses

import pytest

from faceveil.settings_parts import ClusterSettings
from faceveil.tasks.restore_media import RestoreConfig


def test_restore_refuses_a_plain_tcp_scheduler_but_takes_tls_and_the_local_cluster():
    with pytest.raises(ValueError, match="in clear"):
        RestoreConfig.of("a", "b", all=True, dask_address="tcp://10.0.0.5:8786")
    tls = RestoreConfig.of("a", "b", all=True, dask_address="tls://10.0.0.5:8786")
    assert tls.cluster.dask_address.startswith("tls://")
    assert RestoreConfig("a", "b", all=True).cluster.dask_address is None


def test_flat_cluster_keys_go_to_the_cluster_part_and_survive_prefects_dict_round_trip():
    config = RestoreConfig.of("a", "b", all=True, workers=3, dask_tls_ca="ca.pem", crf=12)
    assert config.cluster == ClusterSettings(workers=3, dask_tls_ca="ca.pem") and config.crf == 12
    assert config.cluster.n_workers == 3 and config.cluster.dask_tls == ("ca.pem", None, None)
    again = RestoreConfig(**dataclasses.asdict(config))  # what Prefect's parameters hand the flow
    assert again == config and isinstance(again.cluster, ClusterSettings)


def test_an_unknown_or_bad_setting_is_named():
    with pytest.raises(TypeError, match="wokers"):
        RestoreConfig.of("a", "b", all=True, wokers=2)
    with pytest.raises(ValueError, match="workers"):
        RestoreConfig.of("a", "b", all=True, workers=0)
