"""Seeds derived from tuples of integers, so randomness is a pure function of its coordinates.

The data pipeline never draws from global random state. Instead each random decision is seeded from
a tuple such as (SEED, epoch) for the shuffle order or (SEED, iteration, global_slot) for one
sample's augmentation. `numpy.random.SeedSequence` mixes the tuple, so nearby tuples
((0, 1) and (1, 0)) give unrelated seeds.
"""

from __future__ import annotations

import numpy as np

# Seeds are kept below 2**63 so they fit torch.Generator.manual_seed and numpy alike.
_SEED_MASK = (1 << 63) - 1


def derive_seed(*values: int) -> int:
    """Mix non-negative integers into one 63-bit seed.

    Args:
        *values: the coordinates of the random decision, e.g. (seed, iteration, slot).

    Returns:
        An int in [0, 2**63), identical for identical inputs on every platform.
    """
    if not values:
        raise ValueError("derive_seed needs at least one value")
    entropy = [int(v) for v in values]
    if any(v < 0 for v in entropy):
        raise ValueError(f"derive_seed takes non-negative integers, got {tuple(entropy)}")
    words = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return ((int(words[0]) << 32) | int(words[1])) & _SEED_MASK
