"""Default CNN run: LeNet-5 on MNIST with the study's recipe (inputs / 255, Adam 1e-3, CE)."""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "classification"
    config.model = "lenet5"
    config.dataset = "mnist"
    # {data_dir}/{dataset}/ holds the publishers' files; `auto` downloads them there once
    config.data_dir = "~/.cache/jax_cnn_study/datasets"
    # auto: files in data_dir, downloaded when missing | files: never download | tfds: prepared
    config.data_source = "auto"
    # base URL serving {data_mirror}/{dataset}/{file}; empty: the publishers' own servers
    config.data_mirror = ""
    config.tfds_data_dir = ""  # empty: tfds's own default directory
    config.validation_fraction = 0.1
    config.max_train_examples = 0  # 0: the whole training split
    config.num_epochs = 5
    config.batch_size = 128
    config.eval_batch_size = 1000
    config.learning_rate = 1e-3
    config.seed = 0
    # "bfloat16": the train step computes in bfloat16 on float32 master weights, for
    # accelerators with bfloat16 units; on the study's CPU it is slower for most models
    # (docs/performance.md). Evaluation stays float32.
    config.compute_dtype = "float32"
    config.log_every_steps = 20
    # Compiled train/eval steps are kept here and reused by reruns, resumes and evaluation
    # (added by the throughput work, issue 6); "" turns the cache off.
    config.compilation_cache_dir = "~/.cache/jax_cnn_study/xla"
    # Multi-host: every process runs the same command; see README "Scaling out".
    config.distributed = False
    return config
