"""Training: datasets and their generation from a game, the training recipe (``chunkworld
train``, or ``python -m world.train``) and its parts for the codec, denoiser, dynamics prior and
decoder, and the self-rollout streams used while training."""
