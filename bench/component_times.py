"""
Wall time of a YKDRCNN iteration split by component (trunk, RPN, box heads, mask head, KD terms,
backward, optimizer), for ``bench/step_time.py``: methods of the model's submodules are wrapped by
timers for the measurement and restored afterwards. A wrapped call inside another one counts for
itself only (exclusive times), so the components add up to the time of the wrapped calls; the
rest of a forward is "other".
"""

import time
from collections import defaultdict
from contextlib import contextmanager

__all__ = ["ComponentTimer", "inference_components", "training_components"]


class ComponentTimer:
    """Exclusive seconds per component name, accumulated over the timed calls."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [name, start of its current exclusive slice]

    def _enter(self, name: str) -> None:
        now = time.perf_counter()
        if self._stack:
            parent = self._stack[-1]
            self.seconds[parent[0]] += now - parent[1]
        self._stack.append([name, now])

    def _exit(self) -> None:
        now = time.perf_counter()
        name, start = self._stack.pop()
        self.seconds[name] += now - start
        if self._stack:
            self._stack[-1][1] = now

    @contextmanager
    def section(self, name: str):
        """Time the body of the ``with`` block as component ``name``."""
        self._enter(name)
        try:
            yield
        finally:
            self._exit()

    @contextmanager
    def wrapping(self, components: list[tuple[str, object, str]]):
        """
        Within the block, ``obj.method`` of each ``(name, obj, method)`` is timed as ``name``
        (an instance attribute shadowing the method; the original restored on exit).
        """
        wrapped = []
        for name, obj, method in components:
            if obj is None:
                continue
            original = getattr(obj, method)
            own = vars(obj).get(method)  # an instance attribute to restore, else a class method

            def timed(*args, _name=name, _original=original, **kwargs):
                with self.section(_name):
                    return _original(*args, **kwargs)

            setattr(obj, method, timed)
            wrapped.append((obj, method, own))
        try:
            yield self
        finally:
            for obj, method, own in reversed(wrapped):
                if own is None:
                    delattr(obj, method)
                else:
                    setattr(obj, method, own)


def training_components(model) -> list[tuple[str, object, str]]:
    """The components of a training forward of a YKDRCNN at step t >= 1 (student = last module)."""
    student = model.task_modules[-1]
    components = [
        ("trunk", model.backbone, "forward"),
        ("teacher trunk", model.teacher_backbone, "forward"),
        ("RPN", student.proposal_generator, "forward"),
        ("RPN", student.proposal_generator, "predict_anchors"),
        ("box heads", student.roi_heads, "forward_train"),
        ("mask head", model, "_mask_losses"),
    ]
    if model.distiller is not None:
        components += [
            ("KD: teacher proposals", model.distiller, "propose"),
            ("KD: teacher heads + terms", model.distiller, "forward"),
        ]
    return components


def inference_components(model) -> list[tuple[str, object, str]]:
    """The components of an inference forward of a YKDRCNN (every task module)."""
    components = [("trunk", model.backbone, "forward")]
    for module in model.task_modules:
        components += [
            ("RPN", module.proposal_generator, "forward"),
            ("RPN", module.proposal_generator, "predict_anchors"),
            ("box heads", module.roi_heads, "detect"),
            ("box heads", module.roi_heads, "detect_pooled"),
        ]
    components.append(("box heads", model.task_modules[-1].roi_heads, "pool"))
    return components + [("mask head", model, "_segment")]
