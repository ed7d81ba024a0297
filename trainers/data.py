"""Image datasets as uint8 arrays from the publishers' original files, or from tfds.

Every split is small enough to keep whole on the device, so loading returns plain NumPy
arrays (NHWC uint8 images, int32 labels) and the trainer does the rest inside jit. Files are
downloaded when missing (`trainers.download`) and always checked against the official
release (`trainers.releases`), so a run records whether it trained on the official data.
"""

import gzip
import hashlib
import pickle
import struct
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests
from absl import logging

from jax_models.errors import UserError
from trainers.download import fetch_release, short_reason
from trainers.releases import RELEASES, ReleaseFile, content_digest

DATA_SOURCES = ("auto", "files", "tfds")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo("mnist", (28, 28, 1), tuple(str(d) for d in range(10))),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        (28, 28, 1),
        (
            "T-shirt/top",
            "Trouser",
            "Pullover",
            "Dress",
            "Coat",
            "Sandal",
            "Shirt",
            "Sneaker",
            "Bag",
            "Ankle boot",
        ),
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        (32, 32, 3),
        (
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ),
    ),
}


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, H, W, C) uint8
    labels: np.ndarray  # (N,) int32

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class LoadedDataset:
    """Both splits and where they came from, for the results file."""

    info: DatasetInfo
    splits: dict[str, Split]
    # source, directory, matches_official_release (None where it cannot be checked), the
    # files whose content differs from the release, and the content_sha256 of both splits.
    provenance: dict


def content_sha256(splits: dict[str, Split]) -> str:
    """One digest of every image and label, whatever files or format they were read from: a
    resumed run checks it to be sure it goes on training on the same data."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        digest.update(splits[name].images.tobytes())
        digest.update(splits[name].labels.astype("<i4").tobytes())
    return digest.hexdigest()


def dataset_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise UserError(f"Unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}.")
    return DATASETS[name]


_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def expected_files(name: str) -> list[str]:
    """The file names `files` mode looks for, as the publishers distribute them."""
    if name == "cifar10":
        return [_CIFAR_ARCHIVE, f"{_CIFAR_DIR}/"]
    return [f"{stem}[.gz]" for pair in _IDX_FILES.values() for stem in pair]


def _find_idx(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / f"{stem}.gz", directory / stem):
        if candidate.is_file():
            return candidate
    return None


def missing_release_files(name: str, directory: Path) -> list[ReleaseFile]:
    """The release files that `directory` has in no form the readers accept."""
    release = RELEASES[name]
    if name == "cifar10":
        present = (directory / _CIFAR_ARCHIVE).is_file() or (directory / _CIFAR_DIR).is_dir()
        return [] if present else list(release.files)
    return [f for f in release.files if _find_idx(directory, f.name.removesuffix(".gz")) is None]


def _read_decompressed(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as error:
        raise UserError(f"Cannot read {path} ({error}); download the file again.") from error


def parse_idx(data: bytes, path: Path, expected_magic: int) -> np.ndarray:
    """Decodes one decompressed IDX file, checking its magic number and sizes."""
    if len(data) < 8:
        raise UserError(f"{path} is truncated (only {len(data)} bytes); download it again.")
    magic, count = struct.unpack(">II", data[:8])
    if magic != expected_magic:
        raise UserError(
            f"{path} is not an IDX {'image' if expected_magic == 2051 else 'label'} file "
            f"(magic number {magic}, expected {expected_magic}); check the file names."
        )
    dims = [count]
    header = 8
    if expected_magic == 2051:
        if len(data) < 16:
            raise UserError(f"{path} is truncated inside its header; download it again.")
        dims += list(struct.unpack(">II", data[8:16]))
        header = 16
    expected_bytes = header + int(np.prod(dims))
    if len(data) != expected_bytes:
        raise UserError(
            f"{path} has {len(data)} bytes but its header promises {expected_bytes}; "
            "the file is truncated or corrupt, download it again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _load_idx(directory: Path, info: DatasetInfo) -> tuple[dict[str, Split], dict[str, bytes]]:
    splits, members = {}, {}
    for split, (image_stem, label_stem) in _IDX_FILES.items():
        image_path, label_path = _find_idx(directory, image_stem), _find_idx(directory, label_stem)
        members[image_stem] = _read_decompressed(image_path)
        members[label_stem] = _read_decompressed(label_path)
        images = parse_idx(members[image_stem], image_path, 2051)
        labels = parse_idx(members[label_stem], label_path, 2049)
        if images.shape[1:] != info.image_shape[:2]:
            raise UserError(
                f"Images in {directory} are {images.shape[1]}x{images.shape[2]}, but "
                f"{info.name} images are {info.image_shape[0]}x{info.image_shape[1]}; "
                "check --config.dataset."
            )
        if len(images) != len(labels):
            raise UserError(
                f"{directory} holds {len(images)} {split} images but {len(labels)} labels; "
                "one of the files is from another dataset or truncated."
            )
        splits[split] = _checked_split(images[..., None], labels, info, directory)
    return splits, members


def _checked_split(images: np.ndarray, labels: np.ndarray, info: DatasetInfo, where) -> Split:
    if labels.size and labels.max() >= info.num_classes:
        raise UserError(
            f"Labels in {where} go up to {labels.max()}, but {info.name} has "
            f"{info.num_classes} classes; the files are corrupt or from another dataset."
        )
    return Split(np.ascontiguousarray(images, dtype=np.uint8), labels.astype(np.int32))


def _read_cifar_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="bytes")
        data, labels = batch[b"data"], batch[b"labels"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"{where} is not a CIFAR-10 python batch (no b'data'/b'labels' pickle: "
            f"{type(error).__name__}); download cifar-10-python.tar.gz again."
        ) from error
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise UserError(
            f"{where} holds data of shape {data.shape} with {len(labels)} labels, expected "
            "(N, 3072) with N labels; download cifar-10-python.tar.gz again."
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), np.asarray(labels)


def _load_cifar(directory: Path, info: DatasetInfo) -> tuple[dict[str, Split], dict[str, bytes]]:
    raw: dict[str, bytes] = {}
    wanted = {name for names in _CIFAR_BATCHES.values() for name in names}
    extracted = directory / _CIFAR_DIR
    if extracted.is_dir():
        for name in wanted:
            if (extracted / name).is_file():
                raw[name] = (extracted / name).read_bytes()
        source = str(extracted)
    else:
        source = str(directory / _CIFAR_ARCHIVE)
        try:
            with tarfile.open(source, "r:*") as archive:
                for member in archive.getmembers():
                    name = Path(member.name).name
                    if member.isfile() and name in wanted:
                        raw[name] = archive.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as error:
            raise UserError(
                f"{source} is not a readable tar archive ({error}); download it again."
            ) from error
    missing = sorted(wanted - raw.keys())
    if missing:
        raise UserError(
            f"{source} lacks {', '.join(missing)}; it is incomplete, download "
            "cifar-10-python.tar.gz again."
        )
    splits = {}
    for split, names in _CIFAR_BATCHES.items():
        parts = [_read_cifar_batch(raw[name], f"{source}/{name}") for name in names]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        splits[split] = _checked_split(images, labels, info, source)
    return splits, raw


def load_from_files(
    info: DatasetInfo, directory: Path
) -> tuple[dict[str, Split], dict[str, bytes]]:
    """Both splits, and the decompressed bytes of each file they came from."""
    if info.name == "cifar10":
        return _load_cifar(directory, info)
    return _load_idx(directory, info)


def release_check(info: DatasetInfo, directory: Path, members: dict[str, bytes]) -> dict:
    """Compares the files' content with the official release: another dataset's official
    files are refused, any other difference is warned about once and recorded."""
    digests: dict[tuple[str, str], str] = {}

    def differing(dataset: str) -> list[str]:
        out = []
        for member, (algorithm, official) in RELEASES[dataset].content.items():
            if (member, algorithm) not in digests:
                digests[member, algorithm] = content_digest(members[member], algorithm)
            if digests[member, algorithm] != official:
                out.append(member)
        return out

    own = differing(info.name)
    if own:
        others = [name for name in RELEASES if name != info.name]
        for other in others:
            if RELEASES[other].content.keys() <= members.keys() and not differing(other):
                raise UserError(
                    f"{directory} holds the official {other} files, not {info.name}'s; "
                    f"move them to {directory.parent / other} or set --config.dataset={other}."
                )
        logging.warning(
            "The %s files in %s differ from the official release (%s); training on them "
            "anyway, and the results record data.matches_official_release=false.",
            info.name,
            directory,
            ", ".join(own),
        )
    return {
        "source": "files",
        "directory": str(directory),
        "matches_official_release": not own,
        "differing_files": own,
    }


def _tfds_reason(error: BaseException) -> str:
    """Why tfds failed, told truthfully: it cannot prepare these datasets without TensorFlow."""
    chain = [error]
    while chain[-1].__cause__ or chain[-1].__context__:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    for link in chain:
        if isinstance(link, ModuleNotFoundError) and (link.name or "").split(".")[0] in (
            "tensorflow",
            "tf_keras",
        ):
            return "preparing it needs TensorFlow, which is not installed"
    for link in chain:
        if isinstance(link, requests.RequestException):
            return f"it could not be downloaded ({short_reason(link)})"
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def load_from_tfds(
    info: DatasetInfo, tfds_data_dir: str | None, files_directory: Path
) -> dict[str, Split]:
    """Reads both splits with `tfds.data_source` (array_record; no TensorFlow needed)."""
    try:
        import tensorflow_datasets as tfds

        splits = {}
        for split in ("train", "test"):
            source = tfds.data_source(info.name, split=split, data_dir=tfds_data_dir or None)
            examples = [source[i] for i in range(len(source))]
            images = np.stack([np.asarray(e["image"]) for e in examples])
            labels = np.asarray([e["label"] for e in examples])
            splits[split] = _checked_split(images, labels, info, f"tfds {info.name}")
    except UserError:
        raise
    except Exception as error:  # tfds raises many types: offline, missing builder, bad dir
        raise UserError(
            f"tfds could not serve {info.name}: {_tfds_reason(error)}; either install "
            "TensorFlow (pip install tensorflow) so tfds can prepare it, or use "
            f"--config.data_source=auto, which downloads the publisher's files into "
            f"{files_directory}."
        ) from error
    return splits


def load_dataset(
    name: str,
    data_dir: str,
    source: str = "auto",
    tfds_data_dir: str | None = None,
    mirror: str = "",
) -> LoadedDataset:
    """Loads the train and test splits of `name` from `{data_dir}/{name}/` or tfds.

    `auto` downloads the publisher's missing files first (from `mirror` when set).
    """
    info = dataset_info(name)
    if source not in DATA_SOURCES:
        raise UserError(
            f"Unknown data_source {source!r}; choose one of: {', '.join(DATA_SOURCES)}."
        )
    directory = Path(data_dir).expanduser().resolve() / name
    if source == "tfds":
        splits = load_from_tfds(info, tfds_data_dir, directory)
        provenance = {
            "source": "tfds",
            "directory": tfds_data_dir or "tfds default",
            "matches_official_release": None,
            "differing_files": [],
            "content_sha256": content_sha256(splits),
        }
        return LoadedDataset(info, splits, provenance)
    missing = missing_release_files(name, directory)
    if missing and source == "files":
        raise UserError(
            f"No {name} files in {directory}: expected {', '.join(expected_files(name))}; "
            "put the publisher's files there or use --config.data_source=auto to download them."
        )
    if missing:
        fetch_release(RELEASES[name], directory, missing, mirror)
    splits, members = load_from_files(info, directory)
    provenance = release_check(info, directory, members) | {
        "content_sha256": content_sha256(splits)
    }
    return LoadedDataset(info, splits, provenance)
