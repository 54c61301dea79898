"""`faceveil evaluate`'s identity-match threshold is --id-threshold (--threshold means a detector score
in `anonymize`); the old name is a hidden alias for one release."""

import json

import pytest

from faceveil import cli


def test_id_threshold_is_parsed():
    args = cli.build_parser().parse_args(["evaluate", "data", "--id-threshold", "0.81"])
    assert args.command == "evaluate" and args.id_threshold == 0.81
    assert cli.build_parser().parse_args(["evaluate", "data"]).id_threshold is None


def test_old_threshold_name_still_works_hidden_and_warns(capsys):
    args = cli.build_parser().parse_args(["evaluate", "data", "--threshold", "0.7"])
    assert args.id_threshold == 0.7
    assert "--threshold is deprecated, use --id-threshold" in capsys.readouterr().err
    sub = cli.build_parser()._subparsers._group_actions[0].choices["evaluate"]
    shown = sub.format_help()
    assert "--id-threshold" in shown and "--threshold" not in shown.replace("--id-threshold", "")
    # anonymize's --threshold (a detector score) is untouched
    assert cli.build_parser().parse_args(["anonymize", "src", "dest", "--threshold", "0.4"]).threshold == 0.4


def test_evaluate_command_hands_the_id_threshold_to_the_run(monkeypatch, tmp_path, capsys):
    import faceveil.flows.evaluate as evaluate

    seen = {}

    def fake_run(data, out, methods, **kw):
        seen.update(kw, data=data, out=out, methods=methods)
        return {"methods": {}}

    monkeypatch.setattr(evaluate, "run_evaluate", fake_run)
    args = cli.build_parser().parse_args(
        [
            "evaluate",
            str(tmp_path),
            "--methods",
            "solid,blur",
            "--out",
            str(tmp_path / "out"),
            "--id-threshold",
            "0.85",
            "--json",
        ]
    )
    code = cli._evaluate(args)
    assert code == cli.EXIT_OK and json.loads(capsys.readouterr().out) == {"methods": {}}
    assert seen["threshold"] == pytest.approx(0.85) and seen["methods"] == ["solid", "blur"]
