"""A run's own local cluster starts no more workers than the work it found can use."""

from faceveil.config import AnonymizeConfig
from faceveil.flows.preflight import local_workers
from faceveil.pipeline.jobs import MediaItem


def _items(*specs):
    return [MediaItem(rel, kind, "f", done=done, error=error) for rel, kind, done, error in specs]


def test_images_to_do_bound_the_workers_and_videos_use_them_all(tmp_path):
    config = AnonymizeConfig.of(src=str(tmp_path / "src"), dest=str(tmp_path / "dest"), workers=4)
    one_photo = _items(
        ("a.jpg", "image", False, None), ("b.jpg", "image", True, None), ("c.jpg", "image", False, "bad")
    )
    assert local_workers(config, one_photo) == 1  # one image to do: b is done, c cannot be processed
    three = _items(*[(f"{i}.jpg", "image", False, None) for i in range(3)])
    assert local_workers(config, three) == 3
    assert local_workers(config, three * 3) == 4
    assert local_workers(config, one_photo + _items(("v.mp4", "video", False, None))) == 4  # chunks spread
    assert local_workers(config, []) == 1 and local_workers(config, None) == 4  # None: not known, as configured


def test_an_external_cluster_is_used_as_given(tmp_path):
    config = AnonymizeConfig.of(
        src=str(tmp_path / "src"), dest=str(tmp_path / "dest"), workers=3, dask_address="tls://10.0.0.5:8786"
    )
    assert local_workers(config, _items(("a.jpg", "image", False, None))) == 3


def test_one_image_to_do_runs_in_this_process_anything_more_on_a_cluster(tmp_path):
    from faceveil.flows.preflight import in_this_process

    config = AnonymizeConfig.of(src=str(tmp_path / "src"), dest=str(tmp_path / "dest"), workers=4)
    one_photo = _items(
        ("a.jpg", "image", False, None), ("b.jpg", "image", True, None), ("c.jpg", "image", False, "bad")
    )
    assert in_this_process(config, one_photo) and in_this_process(config, [])
    assert not in_this_process(config, one_photo + _items(("d.jpg", "image", False, None)))  # two images
    assert not in_this_process(config, _items(("v.mp4", "video", False, None)))
    assert not in_this_process(config, None)  # the work not known
    named = AnonymizeConfig.of(
        src=str(tmp_path / "src"), dest=str(tmp_path / "dest"), dask_address="tls://10.0.0.5:8786"
    )
    assert not in_this_process(named, one_photo)  # a cluster named is used
