"""`faceveil` and `python -m faceveil` are one command line."""

import subprocess
import sys


def test_python_m_faceveil_is_the_command_line():
    r = subprocess.run([sys.executable, "-m", "faceveil", "anonymize", "--help"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "usage: faceveil anonymize" in r.stdout and "--method" in r.stdout
