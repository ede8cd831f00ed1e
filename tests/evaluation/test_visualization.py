"""Pictures of predictions (ykd/evaluation/visualization.py): colours, grid layout, PNG, inputs."""

import colorsys

import numpy as np
import pytest
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, Instances
from PIL import Image

from ykd.engine import get_ykd_cfg
from ykd.engine.setup import step0_key
from ykd.evaluation import fixed_test_images, old_classes_of, write_prediction_grid
from ykd.evaluation.visualization import (
    CAPTION_HEIGHT,
    HEADER_HEIGHT,
    NEW_COLOR,
    OLD_COLOR,
    draw_predictions,
    prediction_grid,
    save_png,
    tile_images,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _instances(size, boxes, classes, scores) -> Instances:
    """Instances on an image of ``size`` (H, W) whose masks fill their boxes (x0, y0, x1, y1)."""
    masks = torch.zeros(len(boxes), *size, dtype=torch.bool)
    for mask, (x0, y0, x1, y1) in zip(masks, boxes, strict=True):
        mask[y0:y1, x0:x1] = True
    return Instances(
        size,
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
        pred_classes=torch.tensor(classes),
        scores=torch.tensor(scores),
        pred_masks=masks,
    )


def _hue(rgb) -> float:
    return colorsys.rgb_to_hsv(*(np.asarray(rgb, dtype=float) / 255))[0]


def test_old_and_new_classes_get_their_colours():
    grey = np.full((64, 64, 3), 128, np.uint8)
    # An old class (0) on the left, a new class (2) on the right, a low-scoring one at the bottom.
    instances = _instances(
        (64, 64), [(4, 8, 28, 40), (36, 8, 60, 40), (4, 48, 60, 62)], [0, 2, 2], [0.9, 0.8, 0.1]
    )
    drawn = draw_predictions(
        grey, instances, ["a", "b", "c"], {0, 1}, score_thresh=0.5, cell_size=128
    )
    assert drawn.shape == (128, 128, 3)
    old, new, dropped = drawn[48, 32], drawn[48, 96], drawn[112, 64]  # mask centres, scale 2
    # A translucent colour over grey keeps the colour's hue.
    assert _hue(old) == pytest.approx(_hue(np.array(OLD_COLOR) * 255), abs=0.02)
    assert _hue(new) == pytest.approx(_hue(np.array(NEW_COLOR) * 255), abs=0.02)
    assert np.abs(old.astype(int) - new.astype(int)).max() > 50
    assert np.all(dropped == 128)  # below the score threshold: not drawn


def test_colours_are_configurable_and_empty_predictions_leave_the_image():
    grey = np.full((32, 32, 3), 128, np.uint8)
    instances = _instances((32, 32), [(4, 4, 28, 28)], [1], [0.9])
    red = draw_predictions(grey, instances, ["a", "b"], set(), cell_size=32, new_color=(1, 0, 0))
    assert _hue(red[16, 16]) == pytest.approx(0.0, abs=0.02) and red[16, 16, 0] > 150
    none = draw_predictions(grey, instances[:0], ["a", "b"], set(), cell_size=32)
    assert np.all(none == 128)


@pytest.mark.parametrize(("num", "columns", "rows"), [(5, 3, 2), (2, 4, 1), (4, 2, 2)])
def test_grid_size(num, columns, rows):
    images = [np.zeros((20 + i, 32, 3), np.uint8) for i in range(num)]
    grid = tile_images(images, columns=columns, cell_size=32, captions=["x"] * num, title="t")
    assert grid.size == (min(columns, num) * 32, HEADER_HEIGHT + rows * (32 + CAPTION_HEIGHT))


def test_save_png_writes_a_valid_png(tmp_path):
    grid = tile_images([np.zeros((8, 8, 3), np.uint8)] * 3, columns=2, cell_size=8)
    path = tmp_path / "sub" / "grid.png"
    save_png(grid, str(path))
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    assert Image.open(path).size == grid.size
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary file left


def test_prediction_grid_reads_records_and_arrays(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(path)
    seen = []

    def predictor(bgr):
        seen.append(bgr.shape)
        return _instances(bgr.shape[:2], [(2, 2, 20, 20)], [0], [0.9])

    images = [{"file_name": str(path)}, np.zeros((50, 50, 3), np.uint8)]
    grid = prediction_grid(predictor, images, ["a"], set(), columns=4)
    assert seen == [(40, 60, 3), (50, 50, 3)]
    assert grid.size == (2 * 256, HEADER_HEIGHT + 256 + CAPTION_HEIGHT)


@pytest.fixture
def step_dataset():
    """A registered step dataset: classes 0-1 old (task 0), class 2 new (task 1)."""
    name = "ykd_test_visualization_step1_test"

    def record(image_id, classes):
        annotations = [{"category_id": c} for c in classes]
        return {"image_id": image_id, "file_name": f"{image_id}.png", "annotations": annotations}

    records = [record(5, [2]), record(4, [0]), record(3, [0, 2]), record(2, [1]), record(1, [2, 1])]
    DatasetCatalog.register(name, lambda: list(records))
    MetadataCatalog.get(name).set(
        thing_classes=["a", "b", "c"], ykd_tasks=[[0, 1], [2]], ykd_step=1
    )
    yield name
    DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_fixed_test_images_prefer_old_and_new_then_new(step_dataset):
    assert old_classes_of(MetadataCatalog.get(step_dataset)) == {0, 1}
    chosen = [r["image_id"] for r in fixed_test_images(step_dataset, 4)]
    assert chosen == [1, 3, 5, 2]
    assert [r["image_id"] for r in fixed_test_images(step_dataset, 10)] == [1, 3, 5, 2, 4]
    assert fixed_test_images(step_dataset, 0) == []


class _RecordingModel(torch.nn.Module):
    """Records its inputs; predicts one box of class 2 at 0.9."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def forward(self, batched_inputs):
        assert not self.training and not torch.is_grad_enabled()
        self.inputs += batched_inputs
        size = (batched_inputs[0]["height"], batched_inputs[0]["width"])
        return [{"instances": _instances(size, [(1, 1, 10, 10)], [2], [0.9])}]


def test_write_prediction_grid_resizes_and_respects_format(tmp_path, step_dataset):
    cfg = get_ykd_cfg()
    cfg.DATASETS.TEST = (step_dataset,)
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 32, 100
    cfg.INPUT.FORMAT = "RGB"
    cfg.OUTPUT_DIR = str(tmp_path)
    model = _RecordingModel().train()
    image = np.zeros((64, 48, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    written = write_prediction_grid(cfg, model, images=[image])
    assert written == str(tmp_path / "predictions.png")
    assert open(written, "rb").read(8) == PNG_SIGNATURE
    assert model.training  # the model's mode is restored
    (inputs,) = model.inputs
    assert (inputs["height"], inputs["width"]) == (64, 48)
    assert inputs["image"].shape == (3, 43, 32)  # shortest edge 32, as DefaultPredictor
    assert inputs["image"][2].min() == 255 and inputs["image"][0].max() == 0  # RGB order

    cfg.CONTINUAL.VIS_NUM_IMAGES = 0
    assert write_prediction_grid(cfg, model, str(tmp_path / "off.png")) is None
    assert not (tmp_path / "off.png").exists()


def test_the_number_of_pictures_does_not_change_the_shared_step0():
    cfg = get_ykd_cfg()
    other = cfg.clone()
    other.CONTINUAL.VIS_NUM_IMAGES = 0
    assert step0_key(other, ["a", "b"]) == step0_key(cfg, ["a", "b"])
