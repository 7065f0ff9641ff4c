"""`IterationBasedBatchSampler`: a fixed number of batches, resumable at any iteration."""

from __future__ import annotations

from collections.abc import Iterable, Iterator


class IterationBasedBatchSampler:
    """Re-iterate a batch sampler epoch after epoch until `num_iterations` batches were produced.

    Before each epoch `e` (counted from 0), `batch_sampler.sampler.set_epoch(e)` is called when the
    sampler has it, so with a seeded sampler (`DistributedSampler`) the whole batch stream is a pure
    function of the seed. Resuming with `start_iter=k` replays the epoch bookkeeping without
    loading anything and yields exactly the batches k, k+1, ... of the uninterrupted stream.

    Args:
        batch_sampler: yields lists of dataset indices; its epochs must be deterministic given
            `set_epoch`.
        num_iterations: total iterations of the run (batches are numbered 0..num_iterations-1).
        start_iter: first iteration to yield (the resume point).

    `len()` is `num_iterations` (the run's length, what the trainer uses as max_iter); a pass
    yields `num_iterations - start_iter` batches.
    """

    def __init__(self, batch_sampler: Iterable[list], num_iterations: int, start_iter: int = 0):
        if num_iterations < 0 or not 0 <= start_iter <= max(num_iterations, 0):
            raise ValueError(
                f"need 0 <= start_iter <= num_iterations, got start_iter={start_iter}, "
                f"num_iterations={num_iterations}"
            )
        self.batch_sampler = batch_sampler
        self.num_iterations = int(num_iterations)
        self.start_iter = int(start_iter)

    def _epoch_batches(self, epoch: int) -> list[list]:
        sampler = getattr(self.batch_sampler, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        batches = [list(batch) for batch in self.batch_sampler]
        if not batches:
            raise RuntimeError(
                "the batch sampler produced no batch in an epoch (dataset smaller than the batch "
                "size with drop_uneven=True?)"
            )
        return batches

    def __iter__(self) -> Iterator[list]:
        iteration, epoch = 0, 0
        while iteration < self.num_iterations:
            batches = self._epoch_batches(epoch)
            epoch += 1
            if iteration + len(batches) <= self.start_iter:
                iteration += len(batches)  # fast-forward over an epoch that was already trained
                continue
            for batch in batches:
                if iteration >= self.num_iterations:
                    return
                if iteration >= self.start_iter:
                    yield batch
                iteration += 1

    def __len__(self) -> int:
        return self.num_iterations
