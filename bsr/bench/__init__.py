"""Benchmarks: how fast bsr trains, separates, makes data and scores, one table each.

    bsr bench model --preset small --batch 4 --seconds 3 [--compare lucidrains]
    bsr bench separate --preset small --minutes 3
    bsr bench separate --model course --minutes 1 2 5 10   # one row per length
    bsr bench data
    bsr bench eval
    bsr bench memory --presets paper-l6 paper-l12
    bsr bench gpu [--smoke]     # all of it on a GPU machine in 8 minutes, one table

Every table comes with header lines naming the machine, the torch version and the
configuration, so that a figure never travels without its context. These functions print
figures; the unit tests only check that they run, never how fast.

The modules
-----------
* ``common``: the table, the machine (device, precision, timers, peak FLOP/s), memory.
* ``flops``: the network's FLOPs, counted by hand.
* ``peer``: lucidrains' bs-roformer with bsr's weights, for ``--compare``.
* ``model``, ``separate``, ``data``, ``evaluation``, ``memory``: one benchmark each.
* ``gpu`` (with ``gpu_parts``): the one GPU check, training, model steps, separation and
  memory in one table; ``--smoke`` runs its code paths at tiny size on any device.
* ``cli``: the ``bsr bench`` command and its six actions.

How ``bench model`` measures
----------------------------
* A **training step** is what ``bsr train`` does per batch: forward, the separation loss
  (the preset's STFT-loss hop and windows), backward, an AdamW step. An **inference
  step** is one forward pass under ``torch.inference_mode``.
* Every step is timed on its own, with ``torch.cuda.synchronize`` before and after on a
  GPU. After ``warmup`` untimed steps the table reports the **median** of ``steps`` timed
  ones: one slow step (a page fault, another process) does not move it.
* **MFU**, model FLOPs utilisation, is ``FLOPs the network needs / time / peak FLOP/s of
  the device``. The FLOPs are counted by hand in :func:`flop_breakdown`: every matrix
  product (band split, attention projections, ``Q K^T`` and ``A V``, feed-forward, mask
  estimators) at 2 FLOPs per multiply-add. The backward pass costs twice the forward, so
  a training step counts 3x. STFTs, norms, softmax and the loss are left out, as is usual
  for MFU: it tells how well the matrix units are used by the work that matters.
  The peak comes from :data:`PEAK_FLOPS` (dense data-sheet figures); a CPU has no
  entry, so its MFU reads ``n/a`` unless you give ``--peak-tflops``.
* **Peak memory**: on a GPU, the model's own weights and optimizer state plus the most
  that one step allocates on top (``torch.cuda.max_memory_allocated``), so that two
  models in one process do not count each other. On the CPU there is no allocator
  counter: the figure is the **process's** peak resident set size (Linux ``VmHWM``,
  reset before each step), Python, torch and the other model included.
* ``--compare lucidrains`` builds lucidrains' ``bs-roformer`` 0.4.1 with the same
  network, loads the bsr model's weights into it, checks once that both give the same
  output (relative error at most 1e-4 in fp32), then times the two in turn, step by step
  (bsr, peer, bsr, peer, ...), so that a drift in machine speed hits both alike.
  The peer knows only the community layout, so the preset is adapted first
  (:func:`comparable_config`) and the table says what changed.
"""

from bsr.bench.cli import add_bench_parser
from bsr.bench.common import Table, peak_flops, set_threads
from bsr.bench.data import bench_data
from bsr.bench.evaluation import bench_eval
from bsr.bench.flops import flop_breakdown, model_flops
from bsr.bench.gpu import bench_gpu
from bsr.bench.memory import bench_memory
from bsr.bench.model import MODEL_COLUMNS, Contender, bench_model, run_step
from bsr.bench.peer import comparable_config
from bsr.bench.separate import bench_separate

__all__ = [
    "MODEL_COLUMNS",
    "Contender",
    "Table",
    "add_bench_parser",
    "bench_data",
    "bench_eval",
    "bench_gpu",
    "bench_memory",
    "bench_model",
    "bench_separate",
    "comparable_config",
    "flop_breakdown",
    "model_flops",
    "peak_flops",
    "run_step",
    "set_threads",
]
