"""Keep only the model weights of a training checkpoint (for fine-tuning or release).

    python tools/remove_solver_states.py model_final.pth model_weights.pth

Drops optimizer, scheduler, GradScaler, RNG states and the iteration count, so training from the
result starts at iteration 0 with a fresh optimizer. Works on the original FCOS model-zoo files.
The input is read with weights_only=True (tensors, NumPy values and plain containers only), so
no code in it runs.
"""

from __future__ import annotations

import argparse

from fcos_core.engine.defaults import run_cli
from fcos_core.utils.safe_io import CheckpointLoadError, atomic_save, load_pth


def main() -> None:
    parser = argparse.ArgumentParser(description="Remove solver states from a checkpoint")
    parser.add_argument("input", help="checkpoint with a 'model' entry")
    parser.add_argument("output", help="where to write {'model': state_dict}")
    args = parser.parse_args()
    checkpoint = load_pth(args.input)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise CheckpointLoadError(
            f"{args.input} has no 'model' entry; is it a training checkpoint?"
        )
    dropped = sorted(k for k in checkpoint if k != "model")
    atomic_save({"model": checkpoint["model"]}, args.output)
    print(f"wrote {args.output} (dropped: {', '.join(dropped) or 'nothing'})")


if __name__ == "__main__":
    run_cli(main)
