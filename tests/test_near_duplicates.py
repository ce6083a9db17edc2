"""Tests for the multi-index-hashing near-duplicate search (carvision.near_duplicates) against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from carvision import near_duplicates as nd
from carvision.near_duplicates import (
    Plan,
    close_pairs,
    connected_groups,
    groups_within,
    hex_to_uint64,
    pairs_within,
    plan_search,
    search,
)

RADII = [0, 1, 4, 10, 16]


def _flip(h: np.uint64, bits: np.ndarray) -> np.uint64:
    mask = 0
    for b in bits:
        mask |= 1 << int(b)
    return np.uint64(int(h) ^ mask)


def planted_hashes(seed: int, n_random: int = 150, n_planted: int = 120) -> np.ndarray:
    """Random 64-bit hashes plus copies of some of them with 0..12 bits flipped (chains included)."""
    rng = np.random.default_rng(seed)
    hashes = list(rng.integers(0, 2**64, size=n_random, dtype=np.uint64, endpoint=False))
    for k in range(n_planted):
        src = hashes[int(rng.integers(len(hashes)))]  # may pick a planted one: chains of neighbours
        n_bits = k % 13
        hashes.append(_flip(src, rng.choice(64, size=n_bits, replace=False)))
    hashes += [np.uint64(0), np.uint64(2**64 - 1), np.uint64(1), np.uint64(2**63)]  # extreme bits
    return np.array(hashes, dtype=np.uint64)


def clustered_hashes(seed: int, max_bits: int) -> np.ndarray:
    """Clusters around a few centres at every distance 0..max_bits+2, repeats, low-bit-only and high-bit-only
    neighbours, and small values (their upper bits all 0), shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2**64, size=6, dtype=np.uint64)
    out = list(centres)
    for c in centres:
        for d in range(max_bits + 3):
            out.append(_flip(c, rng.choice(64, size=d, replace=False)))
        out += [c, c]  # exact repeats
        out.append(_flip(c, np.arange(min(max_bits + 1, 64))))  # only the lowest bits differ
        out.append(_flip(c, np.arange(63, 63 - min(max_bits + 1, 64), -1)))  # only the highest bits differ
        out.append(_flip(c, np.array([20, 21, 22, 42, 43])))  # across the 21/22/21 substring edges
    out += [np.uint64(v) for v in (0, 1, 3, 0xFF, 0xFFFF, 2**63, 2**64 - 1)]
    hashes = np.array(out, dtype=np.uint64)
    return hashes[rng.permutation(len(hashes))]


def brute_force(hashes: np.ndarray, max_bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dist = np.bitwise_count(hashes[:, None] ^ hashes[None, :]).astype(np.int64)
    i, j = np.nonzero(np.triu(dist <= max_bits, k=1))  # row-major: sorted by (i, j)
    return i, j, dist[i, j]


def assert_same(got: tuple[np.ndarray, ...], expected: tuple[np.ndarray, ...]) -> None:
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == np.int64
        np.testing.assert_array_equal(g, e)


def datasets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    return {
        "random": rng.integers(0, 2**64, size=300, dtype=np.uint64),
        "planted": planted_hashes(1),
        "all_equal": np.full(40, 0x0123456789ABCDEF, dtype=np.uint64),
        "two_values": np.array([5, 5, 5, 6, 6, 5], dtype=np.uint64),
    }


@pytest.mark.parametrize("max_bits", RADII)
@pytest.mark.parametrize("name", ["random", "planted", "all_equal", "two_values", "clustered"])
def test_pairs_within_equals_brute_force(name, max_bits):
    hashes = clustered_hashes(max_bits, max_bits) if name == "clustered" else datasets()[name]
    expected = brute_force(hashes, max_bits)
    assert_same(pairs_within(hashes, max_bits), expected)
    if name in ("planted", "clustered"):
        assert len(expected[0]) >= 10  # the planted neighbours make the comparison non-trivial
        if max_bits > 0:
            assert expected[2].max() == max_bits  # pairs exactly at the limit are included


def _even_plan(m: int, max_bits: int) -> Plan:
    edges = [round(k * 64 / m) for k in range(m + 1)]
    base, extra = divmod(max(0, max_bits - m + 1), m)
    return Plan(tuple(itertools.pairwise(edges)), tuple(base + (s < extra) for s in range(m)))


@pytest.mark.parametrize(
    ("m", "max_bits"), [(1, 2), (2, 4), (3, 4), (6, 4), (11, 4), (3, 10), (4, 10), (6, 10), (11, 10)]
)
def test_every_plan_gives_the_same_pairs(m, max_bits):
    """64- and 32-bit substrings (binary-search tables), 21..6-bit ones (direct address), budgets 0..3: one answer."""
    hashes = clustered_hashes(m, max_bits)
    assert_same(search(hashes, max_bits, _even_plan(m, max_bits)), brute_force(hashes, max_bits))


@pytest.mark.parametrize("levels", [0, 1, 2, 4])
@pytest.mark.parametrize("plan", [Plan(((0, 21), (21, 43), (43, 64)), (3, 3, 2)), _even_plan(8, 10)])
def test_level_arrays_and_their_fillers(monkeypatch, levels, plan):
    """Whatever the number of level arrays, the same pairs; with 8-bit substrings the fillers of empty buckets
    come within the radius of the small hashes (bits - t <= r), so they must be told apart from real hashes."""
    monkeypatch.setattr(nd, "_choose_levels", lambda counts, bits: levels)
    hashes = np.concatenate([clustered_hashes(3, 10), np.arange(40, dtype=np.uint64)])
    assert_same(search(hashes, 10, plan), brute_force(hashes, 10))


def test_small_chunks_give_the_same_pairs(monkeypatch):
    """Chunks of a few queries and candidates, and a bucket larger than a whole chunk (the repeated hashes)."""
    monkeypatch.setattr(nd, "CHUNK_CANDIDATES", 7)
    monkeypatch.setattr(nd, "CHUNK_QUERIES", 16)
    hashes = np.concatenate([clustered_hashes(5, 10), np.full(30, 12345, dtype=np.uint64)])
    for max_bits in (0, 4, 10):
        assert_same(pairs_within(hashes, max_bits), brute_force(hashes, max_bits))


def test_boundaries_of_the_hash():
    """Neighbours differing only in the top bit, only in the bottom bit, or across substring edges are found."""
    base = np.uint64(0x0123456789ABCDEF)
    hashes = np.array(
        [base, _flip(base, np.array([63])), _flip(base, np.array([0])), _flip(base, np.arange(28, 36))],
        dtype=np.uint64,
    )
    assert close_pairs(hashes, 8) == [tuple(map(int, p)) for p in zip(*brute_force(hashes, 8), strict=True)]
    assert (0, 3, 8) in close_pairs(hashes, 8)
    assert (0, 3, 8) not in close_pairs(hashes, 7)


def test_two_workers_give_the_same_pairs(monkeypatch):
    monkeypatch.setattr(nd, "MIN_HASHES_PER_WORKER", 1)  # a pool, even for a few hundred hashes
    hashes = planted_hashes(2)
    expected = brute_force(hashes, 10)
    assert_same(pairs_within(hashes, 10, workers=2), expected)
    # Flip masks to share out between the workers, too.
    assert_same(search(hashes, 10, Plan(((0, 21), (21, 43), (43, 64)), (3, 3, 2)), workers=2), expected)


def test_small_inputs_and_dtypes():
    empty = pairs_within(np.array([], dtype=np.uint64), 4)
    assert [len(a) for a in empty] == [0, 0, 0] and all(a.dtype == np.int64 for a in empty)
    assert [len(a) for a in pairs_within(np.array([5], dtype=np.uint64), 4)] == [0, 0, 0]
    assert close_pairs(np.array([], dtype=np.uint64), 4) == []
    assert close_pairs(np.array([5], dtype=np.uint64), 4) == []
    assert close_pairs(np.array([5, 5], dtype=np.uint64), 0) == [(0, 1, 0)]
    assert close_pairs(np.array([5, 4], dtype=np.uint64), 0) == []
    assert close_pairs(np.array([5, 4], dtype=np.int64), 1) == [(0, 1, 1)]  # non-negative ints are accepted
    assert groups_within(np.array([], dtype=np.uint64), 4).tolist() == []
    assert groups_within(np.array([9], dtype=np.uint64), 4).tolist() == [0]


@pytest.mark.parametrize("max_bits", [-1, 64, 100, 1.5, True, "4"])
def test_radius_outside_0_63_is_refused(max_bits):
    with pytest.raises(ValueError, match="max_bits"):
        pairs_within(np.array([1, 2], dtype=np.uint64), max_bits)
    with pytest.raises(ValueError, match="max_bits"):
        close_pairs(np.array([1, 2], dtype=np.uint64), max_bits)


def test_radius_63_finds_every_pair():
    hashes = np.array([0, 2**64 - 1, 1, 2**63], dtype=np.uint64)
    assert len(pairs_within(hashes, 63)[0]) == 5  # all but (0, 2**64 - 1), which differ in all 64 bits


@pytest.mark.parametrize("bad", [np.array([[1, 2]], dtype=np.uint64), np.array([-1, 2]), np.array([0.5, 1.0])])
def test_bad_hash_arrays_are_refused(bad):
    with pytest.raises(ValueError, match="hashes"):
        pairs_within(bad, 4)


def test_plans_are_exact_and_degenerate_to_banding():
    for n, max_bits in itertools.product([0, 2, 300, 5000, 10**5, 2 * 10**6, 10**8], range(0, 64, 3)):
        plan = plan_search(n, max_bits)
        m = len(plan.bounds)
        assert m <= max_bits + 1
        assert sum(plan.thresholds) >= max_bits - m + 1
        assert [lo for lo, _ in plan.bounds] == [0] + [hi for _, hi in plan.bounds[:-1]]  # contiguous, no overlap
        assert plan.bounds[-1][1] == 64
        assert max(plan.thresholds) - min(plan.thresholds) <= 1  # spread evenly
        if m == max_bits + 1:
            assert set(plan.thresholds) == {0}  # exact match on one band: banding
    big = plan_search(2 * 10**6, 10)
    assert [hi - lo for lo, hi in big.bounds] == [21, 22, 21]  # about log2(n) bits a substring


@pytest.mark.parametrize(
    "plan",
    [
        Plan(((0, 32), (16, 64)), (5, 5)),  # overlap
        Plan(((0, 32), (32, 64)), (4, 4)),  # 4 + 4 < 10 - 2 + 1
        Plan(((0, 32), (32, 65)), (5, 5)),  # outside the hash
        Plan(((0, 64),), (10, 0)),  # one threshold too many
    ],
)
def test_inexact_plans_are_refused(plan):
    with pytest.raises(ValueError, match="plan"):
        search(np.array([1, 2], dtype=np.uint64), 10, plan)


def test_hex_to_uint64():
    out = hex_to_uint64(["0000000000000001", "ffffffffffffffff", "8000000000000000"])
    assert out.dtype == np.uint64
    assert [int(v) for v in out] == [1, 2**64 - 1, 2**63]


def test_hex_to_uint64_matches_int_on_random_strings():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 2**64, size=500, dtype=np.uint64)
    hexes = [f"{int(v):016x}" for v in values]
    hexes[3] = hexes[3].upper()
    assert hex_to_uint64(hexes).tolist() == [int(h, 16) for h in hexes]
    assert hex_to_uint64(np.array(hexes)).tolist() == [int(h, 16) for h in hexes]


def test_hex_to_uint64_other_forms_and_errors():
    assert hex_to_uint64([]).tolist() == []
    assert hex_to_uint64(["1", "ff", "0x10"]).tolist() == [1, 255, 16]  # as int(h, 16) reads them
    with pytest.raises(ValueError):
        hex_to_uint64(["000000000000000g"])
    with pytest.raises(ValueError):
        hex_to_uint64(["0000000000000001", "00000000 0000001"])  # 16 characters, 15 digits
    with pytest.raises(TypeError):
        hex_to_uint64(["0000000000000001", None])
    with pytest.raises(OverflowError):
        hex_to_uint64(["1" + "0" * 16])  # 65 bits


def _graph_search(n: int, edges: list[tuple[int, int]]) -> list[int]:
    adj: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j in edges:
        adj[i].add(j)
        adj[j].add(i)
    expected = [-1] * n
    for start in range(n):
        if expected[start] >= 0:
            continue
        stack, seen = [start], {start}
        while stack:
            for nb in adj[stack.pop()] - seen:
                seen.add(nb)
                stack.append(nb)
        for m in seen:
            expected[m] = min(seen)
    return expected


def test_groups_within_joins_near_duplicates_and_links():
    hashes = planted_hashes(4)
    n = len(hashes)
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, n, size=30), rng.integers(0, n, size=30)
    i, j, _ = brute_force(hashes, 6)
    expected = _graph_search(n, list(zip(i.tolist(), j.tolist(), strict=True)) + list(zip(a, b, strict=True)))
    got = groups_within(hashes, 6, links=(a, b))
    assert got.dtype == np.int64
    assert got.tolist() == expected
    assert groups_within(hashes, 6).tolist() == _graph_search(n, list(zip(i.tolist(), j.tolist(), strict=True)))
    assert len(set(expected)) < len(set(_graph_search(n, list(zip(i.tolist(), j.tolist(), strict=True)))))


@pytest.mark.parametrize("max_bits", [0, 4, 10])
def test_groups_within_on_repeated_hashes(max_bits):
    """Copies of one hash are searched once, and still join their group (and nothing else)."""
    extra = np.concatenate([np.full(25, 77), np.arange(3, 9)]).astype(np.uint64)  # 25 copies of 77, and 3..8
    hashes = np.concatenate([clustered_hashes(8, max_bits), extra])
    hashes = hashes[np.random.default_rng(8).permutation(len(hashes))]
    i, j, _ = brute_force(hashes, max_bits)
    expected = _graph_search(len(hashes), list(zip(i.tolist(), j.tolist(), strict=True)))
    assert groups_within(hashes, max_bits).tolist() == expected
    assert connected_groups(len(hashes), close_pairs(hashes, max_bits)).tolist() == expected


def test_groups_within_refuses_bad_links():
    hashes = np.array([1, 2, 3], dtype=np.uint64)
    with pytest.raises(ValueError, match="links"):
        groups_within(hashes, 0, links=(np.array([0, 1]), np.array([1])))
    with pytest.raises(ValueError, match="links"):
        groups_within(hashes, 0, links=(np.array([0]), np.array([3])))
    assert groups_within(hashes, 0, links=(np.array([2, 2]), np.array([1, 1]))).tolist() == [0, 1, 1]


def test_connected_groups_on_chains():
    # 0-1-2-3 is a chain, 4 alone, 5-6 a pair: each group is named by its smallest member.
    pairs = [(0, 1, 3), (1, 2, 3), (2, 3, 3), (5, 6, 0)]
    assert connected_groups(7, pairs).tolist() == [0, 0, 0, 0, 4, 5, 5]


def test_connected_groups_chain_given_back_to_front():
    pairs = [(4, 5, 1), (3, 4, 1), (2, 3, 1), (1, 2, 1)]
    assert connected_groups(6, pairs).tolist() == [0, 1, 1, 1, 1, 1]


def test_connected_groups_two_chains_joined_late():
    pairs = [(0, 2, 1), (1, 3, 1), (3, 5, 1), (2, 4, 1), (4, 5, 1)]
    assert connected_groups(7, pairs).tolist() == [0, 0, 0, 0, 0, 0, 6]


def test_connected_groups_takes_an_array_of_pairs():
    """As pairs_within's output stacked into columns (i, j, dist)."""
    i, j, d = pairs_within(np.array([7, 7, 1000, 6], dtype=np.uint64), 1)
    assert connected_groups(4, np.column_stack([i, j, d])).tolist() == [0, 0, 2, 0]


def test_connected_groups_no_pairs():
    assert connected_groups(4, []).tolist() == [0, 1, 2, 3]
    assert connected_groups(0, []).tolist() == []


def test_connected_groups_refuses_indices_outside_n():
    with pytest.raises(ValueError, match="pairs"):
        connected_groups(3, [(0, 3, 0)])


def test_connected_groups_long_shuffled_chain():
    rng = np.random.default_rng(0)
    pairs = [(i, i + 1, 0) for i in range(500)]
    pairs = [pairs[k] for k in rng.permutation(len(pairs))]
    assert set(connected_groups(501, pairs).tolist()) == {0}


def test_connected_groups_match_a_graph_search():
    rng = np.random.default_rng(3)
    n = 60
    pairs = sorted({tuple(sorted(rng.choice(n, 2, replace=False).tolist())) for _ in range(45)})
    assert connected_groups(n, [(int(i), int(j), 0) for i, j in pairs]).tolist() == _graph_search(n, pairs)
