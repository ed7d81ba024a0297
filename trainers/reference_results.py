"""The original study's results, which the comparison report sets beside this codebase's.

Test-set accuracy, precision, recall and F1 (macro) as the study's write-up printed them (two
decimals). The table is keyed by model family, because the study names architectures, not
configurations; `MODEL_FAMILY` says which family each registered model stands for, and is the
one place that mapping lives.
"""

METRICS: tuple[str, ...] = ("accuracy", "precision", "recall", "f1")

# family -> dataset -> (accuracy, precision, recall, f1), in the order of METRICS.
_TABLE: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "LeNet-5": {
        "mnist": (0.98, 0.98, 0.98, 0.98),
        "fashion_mnist": (0.87, 0.87, 0.87, 0.86),
        "cifar10": (0.61, 0.62, 0.61, 0.61),
    },
    "AlexNet": {
        "mnist": (0.99, 0.99, 0.99, 0.99),
        "fashion_mnist": (0.89, 0.89, 0.89, 0.89),
        "cifar10": (0.67, 0.73, 0.67, 0.67),
    },
    "GoogLeNet": {
        "mnist": (0.99, 0.99, 0.99, 0.99),
        "fashion_mnist": (0.85, 0.87, 0.85, 0.85),
        "cifar10": (0.69, 0.70, 0.69, 0.69),
    },
    "VGG": {
        "mnist": (0.99, 0.99, 0.99, 0.99),
        "fashion_mnist": (0.93, 0.93, 0.93, 0.93),
        "cifar10": (0.83, 0.83, 0.83, 0.82),
    },
    "Xception": {
        "mnist": (0.98, 0.98, 0.98, 0.98),
        "fashion_mnist": (0.90, 0.90, 0.90, 0.90),
        "cifar10": (0.81, 0.82, 0.81, 0.81),
    },
    "ResNet": {
        "mnist": (0.98, 0.99, 0.98, 0.98),
        "fashion_mnist": (0.90, 0.90, 0.90, 0.90),
        "cifar10": (0.66, 0.67, 0.66, 0.65),
    },
    "SENet": {
        "mnist": (0.96, 0.96, 0.96, 0.96),
        "fashion_mnist": (0.91, 0.92, 0.91, 0.91),
        "cifar10": (0.53, 0.55, 0.53, 0.53),
    },
}

REFERENCE: dict[str, dict[str, dict[str, float]]] = {
    family: {dataset: dict(zip(METRICS, row, strict=True)) for dataset, row in rows.items()}
    for family, rows in _TABLE.items()
}

# Family order of the study's write-up; the report lists models in this order.
FAMILIES: tuple[str, ...] = tuple(_TABLE)

# Registered model name -> the study family it stands for. Every variant of a family is listed,
# so a config may pick the one its budget affords (resnet18 on a GPU, resnet20 on a CPU).
MODEL_FAMILY: dict[str, str] = {
    "lenet5": "LeNet-5",
    "alexnet": "AlexNet",
    "googlenet": "GoogLeNet",
    "googlenet_s2": "GoogLeNet",
    "vgg11": "VGG",
    "vgg11_bn": "VGG",
    "vgg16": "VGG",
    "vgg16_bn": "VGG",
    "xception": "Xception",
    "resnet18": "ResNet",
    "resnet20": "ResNet",
    "resnet56": "ResNet",
    "senet18": "SENet",
    "se_resnet20": "SENet",
}
