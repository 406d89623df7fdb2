"""The manuals of the ``chunkworld`` command's own subcommands (``sdk/cli.py``): the text that
``chunkworld SUBCOMMAND --help`` prints above the options, with examples."""

from __future__ import annotations

MAIN_HELP = """\
Run an autoregressive video world model like a game engine.

Examples:
  chunkworld info --model tiny
  chunkworld generate --model tiny --prompt "night, two balls" --actions "right*8,up*4" --out run.gif
  chunkworld play --model default
  chunkworld replay run.mp4.log.json --out again.gif
  chunkworld serve --model default          # ZeroMQ bridge on tcp://127.0.0.1:5555
"""

GENERATE_HELP = """\
Roll a world out for a number of ticks and write the frames to a video.

The world starts from a caption (--prompt), one image (--image), a video (--video) or a saved
snapshot (--restore). Each tick makes one chunk of frames; the first chunk (tick 0) is the start.
Images and videos must already have the model's frame size (see `chunkworld info`): they are
rejected, not resized.

Action scripts (--actions), one entry per tick, comma separated:
  right*8,up*4,fire      8 ticks holding right, 4 holding up, 1 firing
  noop,up|up             a per-frame tick: exactly chunk_frames keys joined by '|'
  actions.json           a JSON list of keys or lists of per-frame keys
Ticks past the end of the script are noop. --prompt-at TICK:CAPTION sets the caption from the
chunk of that tick on; ticks are the world's (after --restore they continue from the snapshot's).

Examples:
  chunkworld generate --model tiny --prompt "night, two balls" --ticks 16 --out world.gif
  chunkworld generate --image start.png --actions "right*8,left*8" --prompt-at 8:snow --out run.gif
  chunkworld generate --video clip.gif --actions script.json --seed 3 --out run.mp4
  chunkworld generate --model tiny --ticks 10 --save-snapshot world.safetensors --out a.gif
  chunkworld generate --model tiny --restore world.safetensors --ticks 10 --out b.gif
"""

INFO_HELP = """\
Print the model card, the action space, the chunk size, frame size and fps of a model.

Examples:
  chunkworld info                     # the shipped default model
  chunkworld info --model tiny --json # machine-readable
  chunkworld info --model runs/my-checkpoint
"""

PLAY_HELP = """\
Play a world interactively in a pygame window (pygame comes with the play extra, which
scripts/setup.sh installs). The model generates on a thread of its own while the window draws
the newest chunk at the world's fps; the HUD shows both rates and says when the model is slower
than real time.

Keys (shown in the window): arrows/WASD move, space fire (or jump; held with an arrow, the
action named for both, as the platformer's left_jump), 0-9 an action by id, Enter types a
prompt (Enter again applies it from the next tick, Esc cancels), P pause, N single tick while
paused, R reset, F5 save the world to a snapshot file (--save), F9 load it back, +/- window
scale, F12 screenshot, V start/stop recording, Esc or Q quit. Held keys are read once per chunk;
a key tapped between two chunks still counts.

Every start works with or without --prompt: a caption (default), --image, --video or a snapshot
(--restore). --record PATH records from the start (.gif, .mp4, or .npy for exact frames) and
writes the action log PATH.log.json, which `chunkworld replay` plays back bit for bit.

With no display it stops with a message; --headless plays offscreen (SDL dummy driver).

Examples:
  chunkworld play
  chunkworld play --model tiny --prompt "night, two balls" --scale 12
  chunkworld play --image docs/start.png --prompt "snow" --record run.mp4
  chunkworld play --restore world.snapshot.safetensors --in-flight 2 --steps 4
"""

REPLAY_HELP = """\
Replay an action log (written by `chunkworld play --record PATH` as PATH.log.json): the same
model, sampler settings, seed, start, actions, prompts, saves and loads, so the same frames, bit
for bit, on the same kind of machine. A log from another model, or a damaged one, is refused
with the reason.

Examples:
  chunkworld replay run.mp4.log.json --out again.gif
  chunkworld replay run.npy.log.json --check run.npy        # exit 1 unless identical
  chunkworld replay run.mp4.log.json --until 40 --play      # branch: play on from tick 40
"""

SERVE_HELP = """\
Serve worlds over the ZeroMQ bridge (see bridges/PROTOCOL.md). Each client `hello` opens a
session on the loaded model; hello options may set "seed", "steps" and "in_flight".

The model runs on 1 torch thread unless --threads N says otherwise: the server's own threads
(sockets, libzmq I/O) need a core, and torch threads competing with them made ticks 50x slower.

Binds loopback by default. Serving on another interface needs CURVE keys (--keys DIR, made by
`chunkworld keys DIR`) or an explicit --insecure.

Examples:
  chunkworld serve --model default
  chunkworld serve --model tiny --control tcp://127.0.0.1:7000 --frames tcp://127.0.0.1:7001
  chunkworld keys ./keys && chunkworld serve --control tcp://0.0.0.0:5555 \\
      --frames tcp://0.0.0.0:5556 --keys ./keys
  chunkworld serve --ray auto --threads 4     # sessions on the Ray cluster running here

--ray [ADDRESS] (pip install 'chunkworld[cluster]') hosts the sessions on Ray actors, one model
each, spread over the cluster's machines (--ray-workers N, default one per node; --threads T
torch threads of each); see docs/distributed.md.
"""

KEYS_HELP = """\
Make CURVE key pairs for serving beyond loopback: server.key / server.key_secret and
CLIENT.key / CLIENT.key_secret in DIR. Give clients server.key and their own secret file.

Examples:
  chunkworld keys ./keys
  chunkworld keys ./keys --client-name godot
"""
