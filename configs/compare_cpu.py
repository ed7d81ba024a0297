"""The comparison study sized for a 2-core CPU; the whole grid has not yet finished in one session.

Measured on this project's 2-core CPU, shared with other jobs (docs/results/compare_cpu/):
lenet5, resnet20, se_resnet20 and alexnet on all three datasets plus vgg11_bn on MNIST, 13
pairs, took about 55 minutes of wall time (35 min 38 s of it training); vgg11_bn and
googlenet_s2 pairs took 15 to 20 minutes each before the small-map convolution fix in
jax_models/blocks.py, so the full grid needed about three hours then. Measure it again after
that fix and state the new figure here.

The grid and recipe of `configs/compare.py` (Adam 1e-3, no augmentation, best-on-validation
checkpoint on the whole test set), shrunk where a CPU cannot afford it:
- the cheaper members of the GoogLeNet, VGG, ResNet and SENet families: googlenet_s2 (the
  same Inception modules after a stride-2 stem pool), vgg11_bn, and He et al.'s CIFAR networks
  resnet20 and se_resnet20;
- 4,000 training examples per dataset for 2 epochs, in batches of 32 rather than 128, so the
  few images seen still give 250 updates; one seed;
- 2% of the training split held out for validation instead of 10%, since every epoch
  evaluates it. The test sets stay whole, so the reference comparison stays meaningful; every
  model is undertrained here, the deep ones most, so read levels with that in mind.
"""

import ml_collections

from configs import compare


def get_config() -> ml_collections.ConfigDict:
    config = compare.get_config()
    config.models = "lenet5,alexnet,googlenet_s2,vgg11_bn,xception,resnet20,se_resnet20"
    config.seeds = "0"
    config.train.num_epochs = 2
    config.train.max_train_examples = 4000
    config.train.batch_size = 32
    config.train.validation_fraction = 0.02
    return config
