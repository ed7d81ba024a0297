"""The comparison study sized for a 2-core CPU: the whole 7 x 3 grid in about 1.5 hours.

Measured on this project's 2-core CPU (AMD EPYC, no GPU) with `../shared/datasets`, 24
November 2026: the 21 pairs took 1 h 33 min of wall time (1 h 17 min of it training, the rest
test evaluation and compilation); during the first 25 minutes other jobs shared the two cores.
Per dataset: MNIST 34 min (shared), Fashion-MNIST 27.5 min and CIFAR-10 31.5 min (idle), so
about 1 h 27 min on an idle machine. Xception and googlenet_s2 take about 70 % of it.
The report of that run is docs/results/compare_cpu/.

The grid and recipe of `configs/compare.py` (Adam 1e-3, no augmentation, best-on-validation
checkpoint on the whole test set), shrunk where a CPU cannot afford it:
- the cheaper members of the GoogLeNet, VGG, ResNet and SENet families: googlenet_s2 (the
  same Inception modules after a stride-2 stem pool), vgg11_bn, and He et al.'s CIFAR networks
  resnet20 and se_resnet20;
- 5,000 training examples per dataset for 3 epochs (three points per curve), in batches of 32
  rather than 128 (on this CPU as fast per image for the large networks), 468 updates; one seed;
- 2% of the training split held out for validation instead of 10%, since every epoch
  evaluates it. The test sets stay whole, so the reference comparison stays meaningful; every
  model is undertrained here, the deep ones most, so read levels with that in mind.

With `--config.recipe=strong`, configs/strong.py's recipe with its learning rate scaled to the
batches of 32 (0.025 rather than 0.1 at 128, the linear rule of Goyal et al.).
"""

import ml_collections

from configs import compare


def get_config() -> ml_collections.ConfigDict:
    config = compare.get_config()
    config.models = "lenet5,alexnet,googlenet_s2,vgg11_bn,xception,resnet20,se_resnet20"
    config.seeds = "0"
    config.train.num_epochs = 3
    config.train.max_train_examples = 5000
    config.train.batch_size = 32
    config.train.validation_fraction = 0.02
    config.recipes.strong.learning_rate = 0.025  # the strong recipe's 0.1 at 128, scaled to 32
    return config
