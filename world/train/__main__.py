"""``python -m world.train`` (and ``torchrun -m world.train``): the codec and denoiser stages of
the recipe on a dataset, one process or several (DDP); ``chunkworld train`` runs the whole recipe."""

from world.train.stages import main

if __name__ == "__main__":
    main()
