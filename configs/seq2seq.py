"""Default seq2seq run: learn to reverse lists of 1 to 20 digits with an attention LSTM.

Lengths vary so the trained model reverses whatever short list a person types (the app's
"Sequence reversal" tab). Sized to pass 0.99 greedy token accuracy on lists of 10 on a 2-core
CPU in a few minutes (docs/seq2seq.md).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.task = "seq2seq"  # seq2seq | classification (CNN on images): configs/default.py
    # Data: lists of `seq_len` tokens in [0, vocab_size); min_seq_len > 0 draws each list's
    # length uniformly from min_seq_len..seq_len instead.
    config.seq_len = 20  # tokens per list (the longest list when min_seq_len > 0)
    config.min_seq_len = 1  # 0: every list has seq_len tokens; else the shortest length drawn
    config.vocab_size = 10  # distinct tokens: 0..vocab_size-1
    config.num_samples = 10000  # lists drawn for training, eval_fraction of them for validation
    config.eval_fraction = 0.1  # held out for validation; a fresh set of this size is the test
    # Extra test sets, each of lists of exactly that length, read by the trained model (no
    # retraining): 10 lies inside the trained lengths, 40 beyond them.
    config.test_lengths = (10, 40)
    # Model.
    config.embedding_size = 32  # width of the token embeddings, encoder and decoder
    config.hidden_size = 128  # LSTM state size, encoder and decoder
    config.attention_size = 64  # width of the additive attention layer
    config.use_attention = True  # False: the decoder sees only the encoder's final state
    # Training: probability that a decoder step is fed the true previous token rather than
    # the model's own prediction.
    config.teacher_forcing_ratio = 0.5
    config.num_epochs = 10  # passes over the training lists
    config.batch_size = 64  # lists per training step
    config.eval_batch_size = 1000  # lists per validation/test step; bounds memory
    config.learning_rate = 3e-3  # Adam's step size
    config.max_grad_norm = 1.0  # global-norm gradient clipping before Adam
    # stop the run when an epoch's mean train loss exceeds this x ln(tokens), the starting loss
    config.divergence_factor = 10.0
    config.seed = 0  # seeds the lists drawn, the initial weights and the batch order
    config.num_attention_examples = 4  # held-out examples drawn in seq2seq_attention.png
    return config
