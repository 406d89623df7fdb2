"""What play needs, and nothing else: the model's config, codec, denoiser (attention, KV cache),
noise schedule, sampler, dynamics prior, text encoder, rollout state, checkpoint loading and the
CPU/precision helpers. Imports nothing from world.games, world.train or world.eval."""
