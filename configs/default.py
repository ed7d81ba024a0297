"""Default CNN run: LeNet-5 on MNIST with the study's recipe (inputs / 255, Adam 1e-3, CE)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"  # classification (CNN on images) | seq2seq: configs/seq2seq.py
    config.model = "lenet5"  # the CNN, by jax_models registry name (lenet5, vgg16_bn, resnet18...)
    config.dataset = "mnist"  # mnist | fashion_mnist | cifar10
    # {data_dir}/{dataset}/ holds the publishers' files; `auto` downloads them there once
    config.data_dir = "~/.cache/jax_cnn_study/datasets"
    # auto: files in data_dir, downloaded when missing | files: never download | tfds: prepared
    config.data_source = "auto"
    # base URL serving {data_mirror}/{dataset}/{file}; empty: the publishers' own servers
    config.data_mirror = ""
    config.tfds_data_dir = ""  # empty: tfds's own default directory
    config.validation_fraction = 0.1  # share of the training split held out to pick the best epoch
    config.max_train_examples = 0  # 0: the whole training split
    config.num_epochs = 5  # passes over the training split
    config.batch_size = 128  # training examples per step, all devices (a multiple of their count)
    config.eval_batch_size = 1000  # examples per validation/test step; bounds memory
    # The recipe: the study's (Adam at a constant 1e-3, cross-entropy on one-hot labels, no
    # augmentation) unless changed; configs/strong.py is a stronger one. README "Choosing a recipe".
    config.recipe = "study"  # the recipe's name, recorded with the results and in the report
    config.optimizer = "adam"  # adam | adamw (decoupled weight decay) | sgd (momentum)
    config.learning_rate = 1e-3  # the optimizer's step size; the peak of a schedule
    # constant | warmup_cosine (cosine decay to 0) | one_cycle (linear decay to 0), each after
    # a linear warm-up from 0 over warmup_fraction of all steps
    config.schedule = "constant"
    config.warmup_fraction = 0.0  # share of the run's steps spent warming the rate up from 0
    config.momentum = 0.9  # sgd only: momentum coefficient
    config.nesterov = False  # sgd only: Nesterov momentum
    # adamw: decoupled decay; sgd: added to the gradient, as PyTorch does; kernels only
    config.weight_decay = 0.0
    config.grad_clip_norm = 0.0  # clip gradients to this global norm; 0: no clipping
    config.label_smoothing = 0.0  # weight moved from the true class to a uniform target
    # Augmentation of the training batches on the device; evaluation is never augmented.
    config.crop_padding = 0  # random crop after this many pixels of zero padding; 0: none
    config.flip = False  # random horizontal flips, on datasets whose images allow it (not digits)
    config.cutout = 0  # side of a random square of zeros per image (cutout); 0: none
    # stop the run when an epoch's mean train loss exceeds this x ln(classes), the starting loss
    config.divergence_factor = 10.0
    config.seed = 0  # seeds the validation split, the initial weights and the batch order
    # bfloat16: train steps compute in bfloat16 on float32 weights (slower on CPU, see
    # docs/performance.md); evaluation stays float32
    config.compute_dtype = "float32"
    config.steps_per_call = "auto"  # train steps per jitted call; auto: 1 on CPU, 8 on GPU/TPU
    config.log_every_steps = 20  # steps between updates of the progress bar's loss and accuracy
    # compiled steps kept for reruns, resumes and evaluation; "" turns the cache off
    config.compilation_cache_dir = "~/.cache/jax_cnn_study/xla"
    # Multi-host: every process runs the same command; see README "Scaling out".
    config.distributed = False
    return config
