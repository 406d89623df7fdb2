"""``python -m world.train`` (and ``torchrun -m world.train``): the training recipe's command."""

from world.train.recipe import main

if __name__ == "__main__":
    main()
