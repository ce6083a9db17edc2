"""Tests for the banded near-duplicate search (carvision.near_duplicates) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from carvision.near_duplicates import close_pairs, connected_groups, hex_to_uint64


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


def brute_force(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    ints = [int(h) for h in hashes]
    out = []
    for i in range(len(ints)):
        for j in range(i + 1, len(ints)):
            d = bin(ints[i] ^ ints[j]).count("1")
            if d <= max_bits:
                out.append((i, j, d))
    return out


@pytest.mark.parametrize("max_bits", [0, 1, 4, 10, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_close_pairs_equals_brute_force(max_bits, seed):
    hashes = planted_hashes(seed)
    expected = brute_force(hashes, max_bits)
    assert close_pairs(hashes, max_bits) == expected
    assert len(expected) >= 5  # the planted neighbours make the comparison non-trivial
    if max_bits > 0:
        assert max(d for _, _, d in expected) == max_bits  # pairs exactly at the limit are included


def test_close_pairs_all_bands_boundaries():
    """Neighbours differing only in the top bit, only in the bottom bit, or across band edges are found."""
    base = np.uint64(0x0123456789ABCDEF)
    hashes = np.array(
        [base, _flip(base, np.array([63])), _flip(base, np.array([0])), _flip(base, np.arange(28, 36))],
        dtype=np.uint64,
    )
    assert close_pairs(hashes, 8) == brute_force(hashes, 8)
    assert (0, 3, 8) in close_pairs(hashes, 8)


def test_close_pairs_small_inputs():
    assert close_pairs(np.array([], dtype=np.uint64), 4) == []
    assert close_pairs(np.array([5], dtype=np.uint64), 4) == []
    assert close_pairs(np.array([5, 5], dtype=np.uint64), 0) == [(0, 1, 0)]
    assert close_pairs(np.array([5, 4], dtype=np.uint64), 0) == []


def test_hex_to_uint64():
    out = hex_to_uint64(["0000000000000001", "ffffffffffffffff", "8000000000000000"])
    assert out.dtype == np.uint64
    assert [int(v) for v in out] == [1, 2**64 - 1, 2**63]


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


def test_connected_groups_no_pairs():
    assert connected_groups(4, []).tolist() == [0, 1, 2, 3]


def test_connected_groups_long_shuffled_chain():
    rng = np.random.default_rng(0)
    pairs = [(i, i + 1, 0) for i in range(500)]
    pairs = [pairs[k] for k in rng.permutation(len(pairs))]
    assert set(connected_groups(501, pairs).tolist()) == {0}


def test_connected_groups_match_a_graph_search():
    rng = np.random.default_rng(3)
    n = 60
    pairs = sorted({tuple(sorted(rng.choice(n, 2, replace=False).tolist())) for _ in range(45)})
    pairs = [(int(i), int(j), 0) for i, j in pairs]
    adj: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j, _ in pairs:
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
    assert connected_groups(n, pairs).tolist() == expected
