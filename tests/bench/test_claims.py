"""The paper's claims and their verdicts (bench/claims.py), on hand-made tables."""

from tests.conftest import load_tool

claims = load_tool("claims", folder="bench")


def _entry(mean, std):
    return {"mean": mean, "std": std, "n": 3 if std is not None else 1, "values": [mean]}


def test_a_difference_within_the_spread_is_not_distinguishable():
    assert claims.verdict(1.0, 1.5, 2.1).startswith("not distinguishable")
    assert claims.verdict(3.0, 1.5, 2.1).startswith("holds")
    assert claims.verdict(-3.0, 1.5, 2.1).startswith("contradicted")
    assert claims.verdict(0.90, 0.01, 0.915, ratio=True).startswith("holds")
    assert claims.verdict(0.86, 0.02, 0.915, ratio=True).startswith("not shown")


def test_a_one_seed_method_gets_the_largest_seeded_std():
    table = {
        "dynamic_ykd": {"mask AP new": _entry(30.0, 1.0)},
        "ykd": {"mask AP new": _entry(28.0, 2.0)},
        "mma": {"mask AP new": _entry(25.0, None)},
    }
    assert claims._stats(table, "mma", "mask AP new") == (25.0, 2.0)
    (row,) = claims.claims({"19-1": table})
    assert row[1] == f"+5.0 ± {(1.0**2 + 2.0**2) ** 0.5:.1f}"
    assert row[2].startswith("holds")
