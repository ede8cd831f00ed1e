"""
Per-step filtering of a source dataset (settings described in ``docs/method.md``).

- Training at step t, **overlapped**: every image holding at least one instance of a task-t class,
  annotated with task-t instances only (old and future objects are unlabeled background).
- **disjoint**: as overlapped, minus the images that hold any future-class instance.
- **joint** (upper bound): every image holding a seen class, annotated with all seen instances.
- Test at step t: every image holding a seen class, annotated with seen-class instances only.

Annotations come from :func:`ykd.data.datasets.sources.load_source_split` (class NAMES under
``category_name``); the filtered records carry contiguous ids (position in the class order) as
``category_id``.
"""

from .scenarios import Scenario, check_setting


def filter_step(
    records: list[dict],
    *,
    class_order: list[str],
    scenario: Scenario,
    step: int,
    is_train: bool,
    setting: str = "overlapped",
    joint: bool = False,
) -> list[dict]:
    """
    The records of one step's split, with annotations relabelled to contiguous ids.

    Args:
        records: source records; not modified.
        class_order: all class names, in the scenario's order.
        scenario, step: the scenario and the step to cut.
        is_train: training split (task-t labels only) or test split (all seen labels).
        setting: "overlapped" or "disjoint" (training split only).
        joint: training split with all seen labels (the joint-training upper bound).
    Returns:
        New records; images without a kept annotation are dropped.
    """
    check_setting(setting)
    contiguous = {name: index for index, name in enumerate(class_order)}
    seen = set(scenario.seen_classes(step))
    labelled = seen if (joint or not is_train) else set(scenario.new_classes(step))
    future = set(scenario.future_classes(step))
    drop_future_images = is_train and setting == "disjoint"

    out = []
    for record in records:
        ids = [contiguous[a["category_name"]] for a in record.get("annotations", [])]
        if drop_future_images and future.intersection(ids):
            continue
        kept = (
            [
                _relabel(annotation, class_id)
                for annotation, class_id in zip(record["annotations"], ids, strict=True)
                if class_id in labelled
            ]
            if ids
            else []
        )
        if kept:
            out.append({**record, "annotations": kept})
    return out


def _relabel(annotation: dict, class_id: int) -> dict:
    relabelled = {k: v for k, v in annotation.items() if k != "category_name"}
    relabelled["category_id"] = class_id
    return relabelled
