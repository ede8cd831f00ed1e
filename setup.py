"""Installable `ykd`: Dynamic Y-KD continual instance segmentation on Detectron2."""

from setuptools import find_packages, setup

setup(
    name="ykd",
    version="0.1.0",
    description="Dynamic Y-KD: continual (class-incremental) instance segmentation for Detectron2",
    python_requires=">=3.10",
    packages=find_packages(include=["ykd", "ykd.*"]),
    install_requires=[
        "torch==2.14.1",
        "torchvision==0.29.1",
        "detectron2",
        "numpy",
        "opencv-python-headless",
        "pycocotools",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "matplotlib",
        "setuptools<81",
    ],
    extras_require={"dev": ["pytest", "hypothesis", "ruff"]},
)
