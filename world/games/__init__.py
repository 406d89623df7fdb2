"""Game worlds as plain numpy (no torch, nothing of the model): the built-in arcade world, its
actions and its captions. A game is something a user can write without knowing the model."""
