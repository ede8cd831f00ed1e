"""The inference-choice ablation's variants (bench/inference_ablation.py)."""

from tests.conftest import load_tool

ablation = load_tool("inference_ablation", folder="bench")


def test_every_combination_once_the_default_first():
    variants = ablation.variants()
    assert list(variants) == [
        "per_task / slice",
        "per_task / renormalise",
        "latest / slice",
        "latest / renormalise",
    ]
    assert variants["latest / renormalise"] == [
        "MODEL.YKD.INFERENCE.RPN", "latest", "MODEL.YKD.INFERENCE.SCORES", "renormalise",
    ]  # fmt: skip


def test_the_development_split_is_another_generator_seed():
    opts = dict(zip(ablation.DEV_SPLIT[0::2], ablation.DEV_SPLIT[1::2], strict=True))
    assert opts["SYNTHETIC.SEED"] != "0" and opts["SYNTHETIC.ROOT"] != ""
