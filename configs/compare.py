"""The comparison study on a GPU: every model of the study on every dataset, three seeds.

`python -m scripts.compare --config=configs/compare.py --workdir=DIR` trains the grid of
`models` x `datasets` x `seeds` (comma-separated, e.g. `--config.models=lenet5,resnet18`) and
writes `DIR/report.md`. Each run is `configs/default.py` with the `train` overrides below, so any
training setting can be changed for the whole grid: `--config.train.num_epochs=10`.

The schedule is the study's own: Adam at 1e-3, batches of 128, cross-entropy, no augmentation,
for 20 epochs, with the checkpoint that is best on validation evaluated on the test set.
`--config.recipe=strong` trains the whole grid with configs/strong.py's recipe instead, into
`DIR/strong/`, and the report then covers both recipes side by side. The recipes' keys are
`recipes.NAME.KEY` (`--config.recipes.strong.learning_rate=0.05`); the budget (epochs, batch
size, examples) stays `train.*`, the same for every recipe. One
registered model stands for each study family (the map is `trainers/reference_results.py`):
vgg16_bn rather than the BatchNorm-free vgg16, which its authors could only train by
initialising it from a shallower network; resnet18 and senet18, the small-image ResNet-18 and
its SE counterpart.
"""

import ml_collections

from configs import default, strong
from trainers.grid import GRID_KEYS
from trainers.recipes import RECIPE_KEYS


def train_config() -> ml_collections.ConfigDict:
    """configs/default.py without the keys the grid sets for each pair or takes from the recipe."""
    config = default.get_config()
    for key in (*GRID_KEYS, *RECIPE_KEYS):
        del config[key]
    return config


def recipe_of(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The recipe keys of a single-run config but its name, which `recipe` gives."""
    return ml_collections.ConfigDict({key: config[key] for key in RECIPE_KEYS if key != "recipe"})


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    # Comma-separated jax_models registry names; every one trains on every dataset.
    config.models = "lenet5,alexnet,googlenet,vgg16_bn,xception,resnet18,senet18"
    config.datasets = "mnist,fashion_mnist,cifar10"  # comma-separated dataset names, of those three
    config.seeds = "0,1,2"  # comma-separated; each (model, dataset) pair trains once per seed
    config.report_only = False  # True: only rebuild DIR/report.md from the results files
    # study (configs/default.py's) | strong (configs/strong.py's): every pair's recipe
    config.recipe = "study"
    # The recipes to choose from, key by key; any key may be changed for the whole grid.
    config.recipes = ml_collections.ConfigDict(
        {"study": recipe_of(default.get_config()), "strong": recipe_of(strong.get_config())}
    )
    config.train = train_config()
    config.train.num_epochs = 20
    config.train.batch_size = 128
    config.train.max_train_examples = 0
    return config
