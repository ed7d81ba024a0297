"""Writes the image classifier tab's examples: `python -m scripts.app_examples --data-dir DIR`.

Saves test image 0 of MNIST, Fashion-MNIST and CIFAR-10, read from the publishers' files in
`DIR/{dataset}/` by the training pipeline's own reader, as a PNG at its native size (28x28
gray, 32x32 colour), so the tab feeds a network exactly the image its test set holds. Prints
each image's label, which the tab's example captions name.
"""

import argparse
from pathlib import Path

from PIL import Image

from trainers.data import dataset_info, load_from_files

DATASETS = ("mnist", "fashion_mnist", "cifar10")
OUT_DIR = Path(__file__).resolve().parents[1] / "gradio_app" / "examples"
INDEX = 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.app_examples", description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True, help="holds mnist/, ...")
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where the PNGs go")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(exist_ok=True)
    for name in DATASETS:
        info = dataset_info(name)
        splits, _ = load_from_files(info, args.data_dir / name)
        test = splits["test"]
        image = test.images[INDEX]
        path = args.out_dir / f"{name}_test_{INDEX}.png"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, optimize=True)
        label = info.class_names[int(test.labels[INDEX])]
        print(f"{path}: {name} test image {INDEX}, label {label!r}")


if __name__ == "__main__":
    main()
