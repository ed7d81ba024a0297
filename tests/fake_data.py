"""Tiny datasets in the publishers' file formats, learnable, written for tests only."""

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np


def make_images(num: int, shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images with a bright square whose position encodes the label (10 classes)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, num).astype(np.uint8)
    images = rng.integers(0, 60, (num, *shape)).astype(np.uint8)
    height, width = shape[:2]
    for image, label in zip(images, labels, strict=True):
        row, col = divmod(int(label), 5)
        top, left = 2 + row * (height // 2 - 2), 1 + col * (width // 5)
        image[top : top + 6, left : left + 4] = 250
    return images, labels


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding: magic 2051 for (N, H, W) uint8 images, 2049 for (N,) labels."""
    if array.ndim == 3:
        header = struct.pack(">IIII", 2051, *array.shape)
    else:
        header = struct.pack(">II", 2049, len(array))
    return header + array.astype(np.uint8).tobytes()


IDX_NAMES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}


def write_idx_dataset(
    root: Path, name: str = "mnist", num_train: int = 240, num_test: int = 60, gz: bool = True
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes `{root}/{name}/` with the four IDX files; returns the arrays written."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (split, num) in enumerate((("train", num_train), ("test", num_test))):
        images, labels = make_images(num, (28, 28, 1), seed)
        written[split] = (images, labels)
        for kind, array in (("images", images[..., 0]), ("labels", labels)):
            path = directory / IDX_NAMES[(split, kind)]
            data = idx_bytes(array)
            if gz:
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(data))
            else:
                path.write_bytes(data)
    return written


def cifar_batch(images: np.ndarray, labels: np.ndarray) -> bytes:
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    return pickle.dumps({b"data": data, b"labels": [int(x) for x in labels]})


def write_cifar_dataset(
    root: Path, num_per_batch: int = 40, num_test: int = 60, extracted: bool = False
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Writes `{root}/cifar10/cifar-10-python.tar.gz` (or the extracted folder)."""
    directory = root / "cifar10"
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = make_images(5 * num_per_batch, (32, 32, 3), 0)
    test_images, test_labels = make_images(num_test, (32, 32, 3), 1)
    members = {"batches.meta": pickle.dumps({b"label_names": []})}
    for i in range(5):
        part = slice(i * num_per_batch, (i + 1) * num_per_batch)
        members[f"data_batch_{i + 1}"] = cifar_batch(train_images[part], train_labels[part])
    members["test_batch"] = cifar_batch(test_images, test_labels)
    if extracted:
        (directory / "cifar-10-batches-py").mkdir(exist_ok=True)
        for name, data in members.items():
            (directory / "cifar-10-batches-py" / name).write_bytes(data)
    else:
        with tarfile.open(directory / "cifar-10-python.tar.gz", "w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return {"train": (train_images, train_labels), "test": (test_images, test_labels)}
