"""Grouping a dataset's faces into people (one surrogate per person)."""

import numpy as np

from faceveil.models.people import group_people, representatives, shared_people


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _person(rng, centre, n, spread=0.15):
    return _unit(centre + spread * rng.normal(size=(n, len(centre))) / np.sqrt(len(centre)))


def test_faces_of_two_people_fall_into_two_groups():
    rng = np.random.default_rng(0)
    a, b = _unit(rng.normal(size=128)), _unit(rng.normal(size=128))
    v = np.vstack([_person(rng, a, 4), _person(rng, b, 3)])
    labels = group_people(v, 0.92)
    assert len(set(labels[:4])) == 1 and len(set(labels[4:])) == 1 and labels[0] != labels[4]


def test_no_chaining_through_an_in_between_face():
    """a ~ m and m ~ b clear the threshold, a ~ b does not: a person's mean keeps b out of a's group."""
    a = _unit([1.0, 0.0, 0.0])
    b = _unit([np.cos(0.7), np.sin(0.7), 0.0])  # cos(a, b) = 0.76
    m = _unit(a + b)  # cos(a, m) = cos(m, b) = 0.93
    labels = group_people(np.vstack([a, m, b]), 0.92, quality=np.array([3.0, 2.0, 1.0]))
    assert labels[0] == labels[1] and labels[2] != labels[0]


def test_best_face_first_and_only_people_seen_twice_share():
    rng = np.random.default_rng(1)
    a, b = _unit(rng.normal(size=64)), _unit(rng.normal(size=64))
    v = np.vstack([_person(rng, a, 3), _person(rng, b, 1)])
    q = np.array([0.2, 0.9, 0.5, 0.7])
    labels, means, best = shared_people(v, q, 0.9)
    assert best == {labels[1]: 1}  # a's best face; b is seen once and keeps a surrogate of its own
    assert representatives(labels, q)[labels[3]] == 3
    assert np.allclose(np.linalg.norm(means, axis=1), 1.0) and means.shape == (2, 64)
    assert float(means[labels[0]] @ a) > 0.95


def test_no_faces():
    labels, means, best = shared_people(np.zeros((0, 128), np.float32), np.zeros(0), 0.92)
    assert len(labels) == 0 and best == {}
