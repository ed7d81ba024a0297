"""The comparison study sized for a 2-core CPU; estimated at about 2 hours, not yet measured.

The grid and recipe of `configs/compare.py` (Adam 1e-3, no augmentation, best-on-validation
checkpoint on the whole test set), shrunk where a CPU cannot afford it:
- the smaller variants of VGG, ResNet and SENet: vgg11_bn and He et al.'s CIFAR networks
  resnet20 and se_resnet20;
- 3,000 training examples per dataset for 2 epochs, in batches of 32 rather than 128, so the
  few images seen still give ~190 updates; one seed;
- 5% of the training split held out for validation instead of 10%, since every epoch
  evaluates it. The test sets stay whole, so the reference comparison stays meaningful; every
  model is undertrained here, the deep ones most, so read levels with that in mind.

The 2 hours are an estimate for 2 dedicated cores: train and eval throughput measured for
lenet5, alexnet, resnet20 and googlenet on such a machine, FLOPs scaling for the others, plus a
minute of compilation per pair; googlenet (2.1 GFLOPs per image) takes over half of it. Replace
it with the time of `time python -m scripts.compare --config=configs/compare_cpu.py
--workdir=DIR --config.train.data_dir=...` on the real data.
"""

import ml_collections

from configs import compare


def get_config() -> ml_collections.ConfigDict:
    config = compare.get_config()
    config.models = "lenet5,alexnet,googlenet,vgg11_bn,xception,resnet20,se_resnet20"
    config.seeds = "0"
    config.train.num_epochs = 2
    config.train.max_train_examples = 3000
    config.train.batch_size = 32
    config.train.validation_fraction = 0.05
    return config
