"""Default seq2seq run: learn to reverse lists of 10 digits with an attention LSTM.

Sized to pass 0.99 greedy token accuracy on a 2-core CPU in a few minutes (docs/seq2seq.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "seq2seq"
    # Data: lists of `seq_len` tokens in [0, vocab_size); min_seq_len > 0 draws each list's
    # length uniformly from min_seq_len..seq_len instead.
    config.seq_len = 10
    config.min_seq_len = 0
    config.vocab_size = 10
    config.num_samples = 10000
    config.eval_fraction = 0.1  # held out for validation; a fresh set of this size is the test
    # Extra test sets of longer lists, read by the model trained at seq_len (no retraining).
    config.test_lengths = (20, 40)
    # Model.
    config.embedding_size = 32
    config.hidden_size = 128
    config.attention_size = 64
    config.use_attention = True
    # Training: probability that a decoder step is fed the true previous token rather than
    # the model's own prediction.
    config.teacher_forcing_ratio = 0.5
    config.num_epochs = 10
    config.batch_size = 64
    config.eval_batch_size = 1000
    config.learning_rate = 3e-3
    config.max_grad_norm = 1.0  # global-norm gradient clipping before Adam
    config.seed = 0
    config.num_attention_examples = 4  # held-out examples drawn in seq2seq_attention.png
    return config
