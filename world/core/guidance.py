"""MAGI-1's classifier-free guidance for the chunks in flight: over the history and over the
caption, each with a scale, only at noise levels where it helps.

With velocities ``v_u`` (null caption, no history), ``v_h`` (null caption, history) and ``v_ht``
(caption and history)::

    v = v_u + s_hist (v_h - v_u) + s_text (v_ht - v_h)

With ``s_hist = 1`` the no-history pass cancels out, so text guidance alone takes two passes, not
three; with both scales 1, ``v = v_ht`` and a tick takes one pass. Worked example, ``s_hist = 1``,
a prompted chunk at ``s_text = 3``: ``v = v_h + 3 (v_ht - v_h)``. Each chunk has its own text
scale (a prompted chunk gets ``prompt``, the others ``text``); below ``min_level`` a chunk takes
``v_ht`` unguided.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

Text = tuple[torch.Tensor, torch.Tensor]  # caption tokens (B, n, L, Dt) and mask (B, n, L)
# the velocity of the chunks in flight given their captions, with history (True) or without
Velocity = Callable[[Text, bool], torch.Tensor]


@dataclass(frozen=True)
class Guidance:
    history: float = 1.0  # s_hist: the scale on history
    text: float = 1.0  # s_text of an unprompted chunk
    prompt: float = 1.0  # s_text of a prompted chunk (its caption just changed)
    min_level: float = 0.3  # chunks below this noise level are not guided

    def velocity(
        self,
        run: Velocity,
        text: Text,
        null_text: Callable[[], Text],
        prompted: list[bool],
        levels: torch.Tensor,
    ) -> torch.Tensor:
        """The guided velocity (B, n, Tl, C, h, w) of ``n`` chunks at ``levels`` (B, n).

        Args:
            run: the network's velocity for given captions, with or without history.
            text: each chunk's caption; null_text: the null caption, per chunk (asked for only
                when guidance needs it).
            prompted: per chunk, whether its caption just changed.
        """
        v_ht = run(text, True)
        scales = [self.prompt if p else self.text for p in prompted]
        if self.history == 1.0 and all(s == 1.0 for s in scales):  # the common tick: one pass
            return v_ht
        null = null_text()
        v_h = run(null, True)
        n = len(scales)
        s_t = torch.tensor(scales, dtype=v_ht.dtype, device=v_ht.device).view(1, n, 1, 1, 1, 1)
        if self.history == 1.0:
            guided = v_h + s_t * (v_ht - v_h)
        else:
            v_u = run(null, False)
            guided = v_u + self.history * (v_h - v_u) + s_t * (v_ht - v_h)
        on = (levels >= self.min_level)[..., None, None, None, None]
        return torch.where(on, guided, v_ht)
