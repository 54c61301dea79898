"""faceveil/atomic.py: a file appears whole or not at all, and a failed write leaves the old one."""

import pytest

from faceveil.atomic import replaced_atomically, write_atomically


def test_written_whole_and_the_old_file_kept_when_the_write_fails(tmp_path):
    target = tmp_path / "cache" / "known.json"
    write_atomically(target, b'{"a": 1}')  # the folder is created
    assert target.read_bytes() == b'{"a": 1}'
    with pytest.raises(RuntimeError), replaced_atomically(target) as tmp:
        tmp.write_bytes(b'{"a": 2, "half')
        assert tmp.parent == target.parent and tmp != target and target.read_bytes() == b'{"a": 1}'
        raise RuntimeError("crashed mid-write")
    assert target.read_bytes() == b'{"a": 1}' and list(target.parent.iterdir()) == [target]  # no temporary left
    write_atomically(target, b'{"a": 3}')
    assert target.read_bytes() == b'{"a": 3}' and list(target.parent.iterdir()) == [target]
