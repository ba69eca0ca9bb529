"""The synthetic identity stream: every visit shows exactly its images, within a bounded span, and resumes exactly."""
from __future__ import annotations

from collections import defaultdict

import pytest

from generators.identity_stream import IdentityStream


def make(**overrides) -> IdentityStream:
    options = dict(pool=40, window=8, images_per_identity=12, identities_per_batch=3, per_identity=3, seed=0)
    return IdentityStream(**{**options, **overrides})


def drain(stream: IdentityStream, batches: int) -> list[tuple[list[int], list[int]]]:
    return [stream.next_batch() for _ in range(batches)]


def test_every_visit_shows_each_image_once_within_the_span():
    stream = make()
    shown = defaultdict(list)  # (identity, visit number) -> [(batch, image)]
    visit_of = {}  # identity -> its current visit number, counted from the images it has shown
    for batch, (labels, images) in enumerate(drain(stream, 400)):
        assert len(labels) == stream.identities_per_batch * stream.per_identity
        assert len(set(labels)) == stream.identities_per_batch
        for identity, image in zip(labels, images):
            key = (identity, visit_of.get(identity, 0))
            shown[key].append((batch, image))
            if len(shown[key]) == stream.images_per_identity:
                visit_of[identity] = key[1] + 1
    finished = [entries for entries in shown.values() if len(entries) == stream.images_per_identity]
    assert len(finished) >= 60  # 400 batches x 9 images / 12 images per visit = 300 visits, most finished
    for entries in finished:
        assert sorted(image for _, image in entries) == list(range(stream.images_per_identity))
        span = entries[-1][0] - entries[0][0]
        assert span <= stream.max_span()
    assert all(len(entries) <= stream.images_per_identity for entries in shown.values())
    # the whole pool is visited, each identity as often as the others (up to the visits in progress)
    visits = defaultdict(int)
    for identity, _ in (key for key, entries in shown.items() if len(entries) == stream.images_per_identity):
        visits[identity] += 1
    assert set(visits) == set(range(stream.pool))
    assert max(visits.values()) - min(visits.values()) <= 1


def test_an_identity_is_never_twice_in_the_window():
    stream = make(pool=9, window=8)  # the pool barely exceeds the window: epochs overlap
    for _ in range(300):
        stream.next_batch()
        live = [entry.identity for entry in stream.live]
        assert len(live) == len(set(live)) == stream.window


def test_resume_continues_with_the_same_batches():
    straight = make(seed=3)
    expected = drain(straight, 50)
    first = make(seed=3)
    drain(first, 20)
    state = first.state_dict()
    resumed = make(seed=3)
    resumed.load_state_dict(state)
    assert drain(resumed, 30) == expected[20:]


def test_seeds_differ_and_repeat():
    assert drain(make(seed=1), 5) == drain(make(seed=1), 5)
    assert drain(make(seed=1), 5) != drain(make(seed=2), 5)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"window": 2, "identities_per_batch": 3}, "at least the identities of a batch"),
    ({"window": 50}, "larger than the identity pool"),
    ({"images_per_identity": 10, "per_identity": 3}, "multiple of the images"),
])
def test_inconsistent_sizes_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        make(**overrides)


@pytest.mark.parametrize("batches", [0, 3, 40, 400])
def test_shown_identities_are_those_some_batch_took(batches):
    """What a translator trained without L_C reports as its trained identities: exactly the identities that
    appeared in a batch (live ones not yet taken excluded), through the first epoch and after it."""
    stream = IdentityStream(pool=30, window=6, images_per_identity=4, identities_per_batch=2, per_identity=2, seed=5)
    taken = set()
    for _ in range(batches):
        labels, _ = stream.next_batch()
        taken |= set(labels)
    assert stream.shown() == sorted(taken)
    if batches == 400:
        assert stream.epoch > 0 and stream.shown() == list(range(30))
