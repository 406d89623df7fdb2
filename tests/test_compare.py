"""Comparing two scorecards: the exact sign test, the verdict per line, trials that must match."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdk.cli import main as cli_main
from world.eval.compare import compare, load_card, render, sign_test


def test_sign_test_is_the_exact_binomial_tail_twice():
    assert sign_test(9, 1) == 2 * (1 + 10) / 2**10  # 0.0215
    assert sign_test(6, 0) == 2 / 2**6
    assert sign_test(5, 0) == 2 / 2**5  # five units of five: not below 0.05
    assert sign_test(3, 3) == 1.0
    assert sign_test(0, 0) == 1.0


@given(st.integers(0, 60), st.integers(0, 60))
def test_sign_test_is_symmetric_and_falls_as_the_split_grows(b, w):
    p = sign_test(b, w)
    assert p == sign_test(w, b)
    assert 0.0 < p <= 1.0
    if b >= w:
        assert sign_test(b + 1, w) <= p


def _card(units: dict[str, list[float]], values: dict[str, float], trials=None) -> dict:
    lines = {n: {"value": v, "bar": 0.5, "met": False} for n, v in values.items()}
    return {"lines": lines, "units": units, "trials": trials or {"episodes": 8}}


def test_each_line_gets_the_verdict_its_units_give():
    a = _card(
        {"following": [0.9] * 8, "idle": [0.9] * 8, "psnr_tick1": [30.0] * 8},
        {"following": 0.9, "idle": 0.9, "psnr_tick1": 30.0, "long_balls": 2.0},
    )
    b = _card(
        {
            "following": [1.0] * 7 + [0.9],  # 7 better, 1 tied: p = 2 / 128
            "idle": [0.8] * 6 + [1.0, 0.9],  # 6 worse, 1 better, 1 tied: p = 16 / 128
            "psnr_tick1": [29.0] * 8,  # 8 worse: p = 2 / 256
        },
        {"following": 0.99, "idle": 0.84, "psnr_tick1": 29.0, "long_balls": 1.0},
    )
    rows = {r.name: r for r in compare(a, b)}
    assert (rows["following"].better, rows["following"].worse, rows["following"].same) == (7, 0, 1)
    assert rows["following"].p == 2 / 128 and rows["following"].verdict == "better"
    assert rows["idle"].p == 2 * (1 + 7) / 128 and rows["idle"].verdict == "no clear change"
    assert rows["psnr_tick1"].verdict == "worse"
    assert rows["long_balls"].p is None and rows["long_balls"].verdict == "not tested"
    text = render(list(rows.values()), ("a", "b"))
    assert text.splitlines()[-1] == (
        "B better on 1 lines, worse on 1, no clear change on 1; not tested: long_balls"
    )


def test_a_line_whose_bar_is_a_ceiling_is_better_lower():
    a = _card({"gap": [2.0] * 6}, {"gap": 2.0})
    b = _card({"gap": [1.0] * 6}, {"gap": 1.0})
    a["lines"]["gap"]["sense"] = b["lines"]["gap"]["sense"] = "max"
    assert compare(a, b)[0].verdict == "better"
    assert compare(b, a)[0].verdict == "worse"


def test_a_card_against_itself_changes_nothing():
    a = _card({"following": [0.9, 1.0, 0.5]}, {"following": 0.8})
    (row,) = compare(a, a)
    assert (row.better, row.worse, row.same, row.p, row.verdict) == (
        0,
        0,
        3,
        1.0,
        "no clear change",
    )


def test_cards_of_different_trials_are_refused_with_the_fix():
    a = _card({}, {"following": 0.9}, trials={"episodes": 16})
    b = _card({}, {"following": 0.9}, trials={"episodes": 8})
    with pytest.raises(ValueError, match="same chunkworld eval settings"):
        compare(a, b)


def test_the_command_reads_eval_directories_and_says_what_is_wrong(tmp_path, capsys):
    for name, value in (("a", [0.5] * 8), ("b", [1.0] * 8)):
        (tmp_path / name).mkdir()
        card = _card({"following": value}, {"following": sum(value) / 8})
        (tmp_path / name / "scorecard.json").write_text(json.dumps(card))
    assert cli_main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "8 / 0 / 0" in out and "better" in out
    assert cli_main(["compare", str(tmp_path / "a"), str(tmp_path / "none")]) == 2
    assert "no scorecard.json there" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="no 'lines'"):
        load_card(tmp_path / "bad.json")
