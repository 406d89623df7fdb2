"""Evaluation: rollouts scored against the true game (``chunkworld eval``), event and player
detectors, metrics, figures, action following and the benchmark (``chunkworld bench``)."""
