"""A new local MLflow store is a copy of an empty migrated one (per MLflow version, under
$FACEVEIL_HOME/cache), usable at once, with its own artifact root; an existing store is untouched."""

import sqlite3

from faceveil.storage.paths import Location
from faceveil.validation import mlflow_log


def test_new_stores_are_seeded_from_one_template_and_existing_ones_kept(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("FACEVEIL_HOME", str(home))
    monkeypatch.delenv("FACEVEIL_MLFLOW_URI", raising=False)
    monkeypatch.delenv("FACEVEIL_MLFLOW_ARTIFACTS", raising=False)
    stores = []
    for name in ("a", "b"):
        uri, artifacts = mlflow_log.store_for(Location(str(tmp_path / name)))
        client, exp_id, experiment = mlflow_log.open_store(uri, artifacts)
        run = client.create_run(exp_id, run_name=name)
        client.set_terminated(run.info.run_id)
        stores.append((uri, artifacts, client))
    templates = list((home / "cache").glob("mlflow-*.db"))
    assert len(templates) == 1
    for (uri, artifacts, client), name in zip(stores, "ab"):
        assert artifacts == (tmp_path / name / "mlflow" / "artifacts").as_uri()
        assert client.get_experiment("0").artifact_location == f"{artifacts}/0"  # not the template's
        assert [
            r.info.run_name for r in client.search_runs([client.get_experiment_by_name("faceveil").experiment_id])
        ] == [name]
    with sqlite3.connect(templates[0]) as con:  # the template holds no run of either store
        assert con.execute("select count(*) from runs").fetchone() == (0,)
    db = tmp_path / "a" / "mlflow" / "mlflow.db"
    before = db.read_bytes()
    mlflow_log.store_for(Location(str(tmp_path / "a")))
    assert db.read_bytes() == before
    assert oct(db.stat().st_mode & 0o777) == "0o600"
