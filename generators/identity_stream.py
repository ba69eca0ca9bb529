"""Which synthetic identities and images each translator batch holds: identities stream through a live window.

Why a stream and not uniform draws: L_C (eq. 7) compares C(G(x)) with moving identity centroids, so an
identity's centroid is only meaningful after it has been seen several times in a short span. Drawing a
few of 10,000 identities uniformly per batch sees each identity about once per 2,500 iterations, so its
centroid never warms (measured on the cpu preset: L_C stayed at 1 + ln 3 for a whole run). The
authors' code instead reads 10K identities x 50 pre-rendered images, sorted by identity, through a
5,000-image shuffle buffer: each identity's images arrive in a burst, and then it is gone for good.

This sampler makes that behaviour explicit and bounded. Identities enter a live window of `window`
identities in a seeded order of the pool; each brings a seeded permutation of its `images_per_identity`
images; a batch takes `identities_per_batch` live identities and the next `per_identity` images of
each. Which identities: first those that have waited `patience` batches or more since they were last
taken (longest wait first), the rest a seeded random choice, so that batches mix identities freely
(the paper's denominator runs over the batch's other identities) while no identity waits long. An
identity whose images are used up retires and the next identity of the order enters (a new order is
drawn when the pool is exhausted: the next "epoch"; an identity still live then enters later in the
epoch). So every visit of an identity contributes exactly `images_per_identity` images, over at most
`max_span()` batches, and every identity is visited once per epoch.

The state (order, position, live identities with their remaining images, RNG) is plain data, saved in
checkpoints, so a resumed run continues with the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LiveIdentity:
    identity: int
    remaining: list[int]  # image indices still to show, in order
    visit: int  # the pool epoch in which this identity entered the window
    last_taken: int  # the batch that last took images of it (its entry batch before the first)


@dataclass
class IdentityStream:
    """A seeded stream of (identity, image) batches; see the module docstring."""

    pool: int  # identities 0..pool-1
    window: int  # live identities at any time
    images_per_identity: int  # images an identity shows per visit
    identities_per_batch: int
    per_identity: int  # images of each identity in a batch
    seed: int = 0
    live: list[LiveIdentity] = field(default_factory=list)
    order: list[int] = field(default_factory=list)  # the pool order of the current epoch
    position: int = 0  # next identity of `order` to enter
    epoch: int = 0
    batches: int = 0  # batches drawn so far
    rng: np.random.Generator = field(default=None, repr=False)

    @property
    def patience(self) -> int:
        """Batches an identity may wait before it is taken first: twice the average wait."""
        return 2 * -(-self.window // self.identities_per_batch)

    def max_span(self) -> int:
        """Most batches between an identity's first and last images: (visits - 1) gaps, each at most
        patience + window / identities_per_batch (overdue identities are served oldest first)."""
        gaps = self.images_per_identity // self.per_identity - 1
        return gaps * (self.patience + -(-self.window // self.identities_per_batch))

    def __post_init__(self):
        if self.identities_per_batch > self.window:
            raise ValueError(f"the window ({self.window}) must hold at least the identities of a batch "
                             f"({self.identities_per_batch})")
        if self.window > self.pool:
            raise ValueError(f"the window ({self.window}) cannot be larger than the identity pool ({self.pool})")
        if self.images_per_identity % self.per_identity:
            raise ValueError(f"images per identity ({self.images_per_identity}) must be a multiple of the images "
                             f"each batch takes of an identity ({self.per_identity}), so that visits stay equal")
        if self.rng is None:
            self.rng = np.random.default_rng([self.seed, 0x5EED])
        if not self.live:
            self.order = self.rng.permutation(self.pool).tolist()
            while len(self.live) < self.window:
                self._admit()

    def _admit(self) -> None:
        """The next identity of the pool order enters the window with a fresh permutation of its images."""
        if self.position == len(self.order):
            self.order, self.position, self.epoch = self.rng.permutation(self.pool).tolist(), 0, self.epoch + 1
        live_now = {entry.identity for entry in self.live}
        # an identity still live from the previous epoch enters later in this one (swapped with the first
        # identity further on that is not live), so that every identity enters once per epoch
        later = next((i for i in range(self.position, len(self.order)) if self.order[i] not in live_now), None)
        if later is None:  # only identities still live are left (a pool hardly larger than the window)
            self.order, self.position, self.epoch = self.rng.permutation(self.pool).tolist(), 0, self.epoch + 1
            later = next(i for i in range(len(self.order)) if self.order[i] not in live_now)
        self.order[self.position], self.order[later] = self.order[later], self.order[self.position]
        identity = self.order[self.position]
        self.position += 1
        images = self.rng.permutation(self.images_per_identity).tolist()
        self.live.append(LiveIdentity(identity, images, self.epoch, self.batches))

    def next_batch(self) -> tuple[list[int], list[int]]:
        """(identity labels, image indices), identities_per_batch x per_identity entries, grouped by identity."""
        waits = np.array([self.batches - entry.last_taken for entry in self.live])
        overdue = [int(i) for i in np.argsort(-waits, kind="stable") if waits[i] >= self.patience]
        chosen = overdue[: self.identities_per_batch]
        others = [i for i in range(len(self.live)) if i not in chosen]
        chosen += self.rng.choice(others, self.identities_per_batch - len(chosen), replace=False).tolist()
        chosen = sorted(chosen)
        self.batches += 1
        labels, images = [], []
        for slot in chosen:
            entry = self.live[slot]
            entry.last_taken = self.batches
            taken, entry.remaining = entry.remaining[: self.per_identity], entry.remaining[self.per_identity:]
            labels += [entry.identity] * len(taken)
            images += taken
        retired = [slot for slot in chosen if not self.live[slot].remaining]
        for slot in reversed(retired):
            del self.live[slot]
        for _ in retired:
            self._admit()
        return labels, images

    def shown(self) -> list[int]:
        """The identities some batch has taken images of, sorted: the ones G has been trained on."""
        return shown_identities(self.state_dict(), self.images_per_identity, self.pool)

    def state_dict(self) -> dict:
        return {"live": [(e.identity, list(e.remaining), e.visit, e.last_taken) for e in self.live],
                "order": list(self.order), "position": self.position, "epoch": self.epoch, "batches": self.batches,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.live = [LiveIdentity(int(i), [int(r) for r in remaining], int(v), int(t)) for i, remaining, v, t in state["live"]]
        self.order, self.position, self.epoch = [int(i) for i in state["order"]], int(state["position"]), int(state["epoch"])
        self.batches = int(state["batches"])
        self.rng.bit_generator.state = state["rng"]


def shown_identities(state: dict, images_per_identity: int, pool: int) -> list[int]:
    """From a stream's saved state: the identities some batch has taken images of, sorted. In the first
    epoch those are the ones that entered the window (`order[:position]`) less the live ones not taken yet;
    after it, every identity but those (still untaken since they entered in the first epoch)."""
    untaken = {int(identity) for identity, remaining, visit, _ in state["live"]
               if len(remaining) == images_per_identity and int(visit) == 0}
    entered = set(range(pool)) if int(state["epoch"]) > 0 else {int(i) for i in state["order"][: int(state["position"])]}
    return sorted(entered - untaken)
