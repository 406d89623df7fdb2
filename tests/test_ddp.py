"""Training under torchrun: DistributedDataParallel on two CPU processes (gloo) against one
process on the combined batch.

Each process runs the denoiser's real training step (``distributed`` + ``optimizer_step``) on its
half of a batch that every process draws the same; one process runs the whole batch. Rank 1
starts from other weights than rank 0: DDP's broadcast makes them one model before the first step.
"""

from __future__ import annotations

import os
import subprocess
import sys

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from world.core.config import preset
from world.core.model import WorldModel
from world.train.denoiser import DenoiseObjective, optimizer_step, param_groups
from world.train.trainkit import TrainConfig, distributed

STEPS, BATCH = 3, 4  # optimizer steps; windows in the combined batch
# 2-process weights against 1-process weights, largest difference after STEPS AdamW steps at lr
# 1e-3 (each step moves a weight by up to about lr): float sums in another order, nothing more
TOLERANCE = 1e-5


def _batch(obj: DenoiseObjective, gen: torch.Generator):
    """A combined batch: every row has the same clean-context pattern (so each half holds the
    same number of noisy chunks, and the mean of the two halves' losses is the whole's), its own
    latents, actions, noise; the second half's captions all dropped."""
    cfg = obj.cfg
    n = cfg.history_chunks + 2
    side = cfg.codec.frame_size // cfg.codec.spatial
    z = torch.randn(
        BATCH, n, cfg.latent_frames, cfg.codec.latent_channels, side, side, generator=gen
    )
    actions = torch.randint(0, len(cfg.actions), (BATCH, n, cfg.chunk_frames), generator=gen)
    levels, is_ctx = obj.levels(1, n, gen)
    levels, is_ctx = levels.expand(BATCH, n).clone(), is_ctx.expand(BATCH, n).clone()
    half = BATCH // 2 * n
    captions = [f"a ball {i % 3}" for i in range(half)] + [None] * half
    noise = torch.randn(z.shape, generator=gen)
    return z, actions, captions, levels, is_ctx, noise


def train(rank: int, world: int) -> dict[str, torch.Tensor]:
    """STEPS steps of the denoiser objective on rank ``rank``'s share of each batch; its weights."""
    torch.set_num_threads(1)
    torch.manual_seed(rank)  # rank 1 starts elsewhere: DDP must broadcast rank 0's weights
    cfg = preset("tiny")
    model = WorldModel(cfg)
    model.codec.requires_grad_(False)
    tc = TrainConfig(precision="fp32", lr=1e-3, warmup=0)
    obj = DenoiseObjective(model, tc)
    unit = distributed(obj)
    params = [p for p in obj.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(param_groups(obj, tc), lr=tc.lr, betas=(0.9, 0.98))
    gen = torch.Generator().manual_seed(1234)
    rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
    n = cfg.history_chunks + 2
    for _ in range(STEPS):
        z, a, caps, levels, is_ctx, noise = _batch(obj, gen)
        mine = caps[rows.start * n : rows.stop * n]
        optimizer_step(unit, opt, params, tc, z[rows], a[rows], mine, levels[rows], is_ctx[rows],
                       noise[rows])  # fmt: skip
    return {k: v.detach().clone() for k, v in obj.state_dict().items()}


def test_two_gloo_processes_match_one_process_on_the_combined_batch(tmp_path):
    rendezvous, outs = tmp_path / "rendezvous", [tmp_path / f"rank{r}.safetensors" for r in (0, 1)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, str(r), "2", str(rendezvous), str(outs[r])],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]
    errors = [p.communicate(timeout=240)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(e[-2000:] for e in errors)
    rank0, rank1 = (load_file(str(o)) for o in outs)
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # the same model on both processes, bit for bit
        assert torch.equal(rank0[key], rank1[key]), key
    alone = train(0, 1)
    assert alone.keys() == rank0.keys()
    torch.manual_seed(0)  # rank 0's and the single process's start
    start = DenoiseObjective(WorldModel(preset("tiny")), TrainConfig()).state_dict()
    moved = max(
        float((alone[k] - start[k]).abs().max()) for k in alone if alone[k].is_floating_point()
    )
    assert moved > 100 * TOLERANCE  # the steps did move the weights
    worst = max(float((alone[k] - rank0[k]).abs().max()) for k in alone)
    assert worst <= TOLERANCE, worst


if __name__ == "__main__":  # one process of the test above: rank, world size, rendezvous, out
    rank, world = int(sys.argv[1]), int(sys.argv[2])
    dist.init_process_group(
        "gloo", init_method=f"file://{sys.argv[3]}", rank=rank, world_size=world
    )
    try:
        save_file({k: v.contiguous() for k, v in train(rank, world).items()}, sys.argv[4])
        dist.barrier()
    finally:
        dist.destroy_process_group()
