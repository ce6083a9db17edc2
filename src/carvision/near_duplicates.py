"""Exact near-duplicate search over 64-bit perceptual hashes by multi-index hashing (MIH), in numpy.

Cut the 64 bits into m disjoint substrings and give substring s a flip budget t_s with sum(t_s) >= r - m + 1. Two
hashes within r bits then differ by at most t_s bits on at least one substring s (generalised pigeonhole: were every
substring t_s + 1 bits apart, the total would be sum(t_s) + m > r). So, per substring, the hashes are sorted by their
substring value (a counting-sort table), and for every flip mask of weight <= t_s every hash looks up the bucket of
its own value XOR the mask, all hashes at once; only those candidates get the full 64-bit comparison.

Substrings of about log2(n) bits hold about one hash per bucket, so the work is roughly n times the number of masks,
instead of growing with n**2 / 2**bits as banding does at a large radius. For r + 1 <= m every t_s is 0 and this is
plain banding (exact match on one substring). `plan_search` picks m and the t_s from a cost model.

Each pair is reported once, without a table of pairs seen: within a substring a pair is expanded only from the
hash whose substring value is the smaller (the mask's top bit clear), and across substrings only from the first
substring within its flip budget.
"""

from __future__ import annotations

import functools
import itertools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

HASH_BITS = 64
# Substrings up to this many bits get a direct-address table (start offset per value: 2**24 int64 = 128 MiB at
# most); wider ones are looked up by binary search in their sorted distinct values.
DIRECT_MAX_BITS = 24
# Candidate pairs expanded at once (about 30 bytes each: positions, hashes, distance) and queries looked up at once
# (each mask makes several passes over its queries: 2**16 of them keep those passes in the CPU cache, ~20 % faster
# than 2**20 at n = 2M): these bound the working memory, whatever n is.
CHUNK_CANDIDATES = 1 << 21
CHUNK_QUERIES = 1 << 16
# Memory for one substring's level arrays (see _Table): 2**21 buckets take 16 MiB a level.
LEVELS_MAX_BYTES = 64 << 20
# Fewer hashes than this per worker are searched in fewer processes (at 250k and radius 10, ~1.5 s in one).
MIN_HASHES_PER_WORKER = 250_000

# Cost model, in nanoseconds of one core (fitted to timings of benchmarks/near_duplicates.py at n = 2M; only the
# ratios matter). It picks the number of substrings in plan_search and the number of level arrays in _Table.
_NS_BUILD_PER_HASH = 150  # argsort and gathers when building one substring table
_NS_PER_SLOT = 8  # allocating and filling the direct-address arrays, per slot
_NS_LEVEL = 2.5  # per query and mask, for each level array (gather, xor, popcount, compare)
_NS_QUERY = 1  # per query and mask: the looked-up value
_NS_OVERFLOW_BUCKET = 40  # per overflowing bucket and mask: its queries' bucket, a gather that misses the cache
_NS_OVERFLOW_QUERY = 15  # per query of an overflowing bucket: the general expansion's bookkeeping
_NS_CANDIDATE = 6  # per candidate in the general expansion
_NS_SEARCH_PER_LEVEL = 8  # per query and mask, per step of binary search (tables too wide for direct address)
_NS_CALL = 40_000  # numpy call overhead per mask and query chunk
MAX_LEVELS = 4


@dataclass(frozen=True)
class Plan:
    """Disjoint substrings of the 64 bits, `bounds[s] = (lo, hi)` (bits lo..hi-1), each with a flip budget.

    Exact for a radius r when sum(thresholds) >= r - len(bounds) + 1.
    """

    bounds: tuple[tuple[int, int], ...]
    thresholds: tuple[int, ...]


def hex_to_uint64(hexes: Sequence[str] | np.ndarray) -> np.ndarray:
    """Hex strings (imagehash's `str(phash)`) as uint64, as int(h, 16) reads them."""
    strings = hexes.tolist() if isinstance(hexes, np.ndarray) else list(hexes)
    try:
        # The usual 16-digit form, all at once: ~0.15 s for 2M strings, against ~0.6 s for int() on each. Anything
        # else (other lengths, "0x" prefixes, spaces, None) takes the int() path, which reads it or raises.
        raw = bytes.fromhex("".join(strings)) if set(map(len, strings)) == {16} else b""
    except (TypeError, ValueError):
        raw = b""
    if len(raw) == 8 * len(strings) > 0:
        return np.frombuffer(raw, dtype=">u8").astype(np.uint64)
    return np.array([int(h, 16) for h in strings], dtype=np.uint64)


def pairs_within(hashes: np.ndarray, max_bits: int, *, workers: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of hashes within `max_bits` differing bits, exactly.

    Args:
        hashes: (n,) 64-bit hashes (uint64, or non-negative integers).
        max_bits: the Hamming radius, 0..63.
        workers: processes to share the lookups (0 = one per CPU core); each builds its own tables.

    Returns:
        (i, j, dist): int64 arrays with i < j, sorted by (i, j).
    """
    hashes = _as_hashes(hashes)
    _check_radius(max_bits)
    return search(hashes, max_bits, plan_search(len(hashes), max_bits), workers=workers)


def groups_within(
    hashes: np.ndarray,
    max_bits: int,
    links: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    workers: int = 1,
) -> np.ndarray:
    """Connected-component label of each hash, named by its smallest member index.

    Args:
        max_bits: hashes within this Hamming radius are linked.
        links: extra edges (a, b) as two index arrays, e.g. photos of the same listing.
    """
    hashes = _as_hashes(hashes)
    n = len(hashes)
    # Search the distinct values only: k copies of one hash would add k * (k - 1) / 2 pairs (blank photos share
    # one pHash), where k edges to the first copy join them just as well.
    values, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    vi, vj, _ = pairs_within(values, max_bits, workers=workers)
    i, j = np.concatenate([first[vi], first[inverse]]), np.concatenate([first[vj], np.arange(n)])
    if links is not None:
        a, b = (np.asarray(x).astype(np.int64, copy=False).ravel() for x in links)
        if len(a) != len(b):
            raise ValueError(f"links: {len(a)} sources but {len(b)} targets")
        if len(a) and (min(a.min(), b.min()) < 0 or max(a.max(), b.max()) >= n):
            raise ValueError(f"links: an index outside 0..{n - 1}")
        i, j = np.concatenate([i, a]), np.concatenate([j, b])
    return _components(n, i, j)


def close_pairs(hashes: np.ndarray, max_bits: int) -> list[tuple[int, int, int]]:
    """All (i, j, distance) with i < j and Hamming distance(hashes[i], hashes[j]) <= max_bits, sorted."""
    i, j, d = pairs_within(hashes, max_bits)
    return list(zip(i.tolist(), j.tolist(), d.tolist(), strict=True))


def connected_groups(n: int, pairs: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """The group (the smallest member index) of each of n items, linked by (i, j, distance) pairs."""
    edges = np.asarray(pairs, dtype=np.int64).reshape(-1, 3) if len(pairs) else np.zeros((0, 3), dtype=np.int64)
    if len(edges) and (edges[:, :2].min() < 0 or edges[:, :2].max() >= n):
        raise ValueError(f"pairs: an index outside 0..{n - 1}")
    return _components(n, edges[:, 0], edges[:, 1])


def plan_search(n: int, max_bits: int) -> Plan:
    """The cheapest exact plan by the cost model: m substrings of 64/m bits, flip budgets spread evenly.

    m runs over 1..max_bits + 1 (beyond that the budgets are all 0 and more substrings only add work).
    """
    _check_radius(max_bits)
    best: tuple[float, Plan] | None = None
    for m in range(1, min(max_bits + 1, HASH_BITS) + 1):
        edges = [round(k * HASH_BITS / m) for k in range(m + 1)]
        widths = [hi - lo for lo, hi in itertools.pairwise(edges)]
        budget = max_bits - m + 1
        base, extra = divmod(budget, m)
        # The `extra` budgets go where one more flip costs least.
        marginal = [_substring_cost(n, w, base + 1) - _substring_cost(n, w, base) for w in widths]
        thresholds = [base] * m
        for s in sorted(range(m), key=lambda s: marginal[s])[:extra]:
            thresholds[s] += 1
        cost = sum(_substring_cost(n, w, t) for w, t in zip(widths, thresholds, strict=True))
        if best is None or cost < best[0]:
            best = (cost, Plan(tuple(itertools.pairwise(edges)), tuple(thresholds)))
    assert best is not None
    return best[1]


def search(
    hashes: np.ndarray, max_bits: int, plan: Plan, *, workers: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`pairs_within` with a given plan (any exact plan gives the same pairs; the plan only changes the time)."""
    hashes = _as_hashes(hashes)
    _check_radius(max_bits)
    _check_plan(plan, max_bits)
    n = len(hashes)
    empty = np.zeros(0, dtype=np.int64)
    if n < 2:
        return empty, empty.copy(), empty.copy()
    # Each substring's masks: 0 (exact match on the substring) and every nonzero mask of weight <= t_s, grouped by
    # top bit so that one query selection serves a whole group.
    tasks = []
    workers = workers if workers > 0 else (os.cpu_count() or 1)
    workers = min(workers, max(1, n // MIN_HASHES_PER_WORKER))  # a pool costs ~0.5 s and a table per task
    for s, ((lo, hi), t) in enumerate(zip(plan.bounds, plan.thresholds, strict=True)):
        masks = _flip_masks(hi - lo, t)
        # Round-robin over masks: every worker gets masks of every top bit, so similar amounts of work.
        tasks += [(s, masks[k::workers]) for k in range(min(workers, len(masks)))]
    if workers == 1:
        parts = [_search_substring(hashes, max_bits, plan, s, masks) for s, masks in tasks]
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_search_substring, hashes, max_bits, plan, s, masks) for s, masks in tasks]
            parts = [f.result() for f in futures]
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    d = np.concatenate([p[2] for p in parts])
    order = np.argsort(i * n + j, kind="stable")
    return i[order], j[order], d[order]


def _components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the graph on n nodes with edges (i[k], j[k]), each named by its smallest node."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    from scipy.sparse import coo_matrix  # imported here: scipy.sparse costs ~0.3 s, and only grouping needs it
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(i), dtype=np.int32), (i, j)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    # np.unique's first index of each label is its smallest node, since nodes are numbered 0..n-1 in order.
    _, smallest = np.unique(labels, return_index=True)
    return smallest[labels].astype(np.int64)


def _init_worker(parent_pid: int) -> None:
    from carvision.parallel import die_with_parent

    die_with_parent(parent_pid)


def _as_hashes(hashes: np.ndarray) -> np.ndarray:
    arr = np.asarray(hashes)
    if arr.ndim != 1:
        raise ValueError(f"hashes must be a 1-D array, got shape {arr.shape}")
    if arr.dtype == np.uint64:
        return arr
    if arr.size == 0:
        return np.zeros(0, dtype=np.uint64)
    if arr.dtype.kind not in "iu" or (arr.dtype.kind == "i" and arr.min() < 0):
        raise ValueError(f"hashes must be non-negative 64-bit integers, got dtype {arr.dtype}")
    return arr.astype(np.uint64)


def _check_radius(max_bits: int) -> None:
    if isinstance(max_bits, bool) or not isinstance(max_bits, int | np.integer) or not 0 <= max_bits < HASH_BITS:
        raise ValueError(f"max_bits must be an integer in [0, 63] for 64-bit hashes, got {max_bits!r}")


def _check_plan(plan: Plan, max_bits: int) -> None:
    if len(plan.bounds) != len(plan.thresholds) or not plan.bounds:
        raise ValueError("plan: one threshold per substring, at least one substring")
    covered = 0
    for lo, hi in plan.bounds:
        if not 0 <= lo < hi <= HASH_BITS:
            raise ValueError(f"plan: substring {lo}..{hi} outside 0..{HASH_BITS}")
        bits = ((1 << (hi - lo)) - 1) << lo
        if covered & bits:
            raise ValueError("plan: substrings overlap")
        covered |= bits
    if min(plan.thresholds) < 0 or sum(plan.thresholds) < max_bits - len(plan.bounds) + 1:
        raise ValueError(f"plan: thresholds {plan.thresholds} sum below {max_bits} - {len(plan.bounds)} + 1")


@functools.lru_cache(maxsize=4096)
def _substring_cost(n: int, bits: int, t: int) -> float:
    """Estimated ns to search one substring of `bits` bits with flip budget t, for n uniform hashes."""
    load = n / 2.0**bits  # hashes per bucket, Poisson-distributed for uniform hashes
    direct = bits <= DIRECT_MAX_BITS
    build = n * _NS_BUILD_PER_HASH + (2**bits * _NS_PER_SLOT if direct else 0)
    # Mask 0: every hash against the rest of its bucket.
    exact = n * _NS_QUERY + n * load / 2 * _NS_CANDIDATE + _NS_CALL
    if direct:
        pmf = [math.exp(-load) * load**k / math.factorial(k) for k in range(MAX_LEVELS + 1)]
        lookup = math.inf
        for levels in range(min(MAX_LEVELS, LEVELS_MAX_BYTES // (8 << bits)) + 1):
            p_over = max(0.0, 1 - sum(pmf[: levels + 1]))
            beyond = max(0.0, load - sum(k * pmf[k] for k in range(levels)) - levels * (1 - sum(pmf[:levels])))
            lookup = min(lookup, _lookup_ns(levels, load, p_over, beyond))
    else:
        lookup = _NS_SEARCH_PER_LEVEL * math.log2(max(n, 2)) + _lookup_ns(0, load, 0.0, load)
    flips = sum(math.comb(bits, k) for k in range(1, t + 1))
    # Half the hashes query each nonzero mask (those with the mask's top bit clear).
    per_mask = n / 2 * lookup + math.ceil(n / 2 / CHUNK_QUERIES) * _NS_CALL
    return build + exact + flips * per_mask


def _lookup_ns(levels: int, load: float, p_over: float, beyond: float) -> float:
    """ns per query and mask with `levels` level arrays, `load` hashes per bucket, a fraction p_over of buckets
    holding more hashes than the levels, and beyond = E[max(bucket size - levels, 0)]."""
    overflow_buckets = p_over / max(load, 1e-9)  # per query: buckets are 1/load as many as hashes
    return (
        _NS_QUERY
        + _NS_LEVEL * levels
        + _NS_OVERFLOW_BUCKET * overflow_buckets
        + _NS_OVERFLOW_QUERY * p_over
        + _NS_CANDIDATE * beyond
    )


def _flip_masks(bits: int, t: int) -> list[int]:
    """0, then every mask of weight 1..t over `bits` bits, ordered by top bit (combinations come sorted)."""
    masks = [0]
    combos = [c for k in range(1, min(t, bits) + 1) for c in itertools.combinations(range(bits), k)]
    combos.sort(key=lambda c: c[-1])
    masks += [sum(1 << b for b in c) for c in combos]
    return masks


class _Table:
    """Hashes sorted by one substring's value, with each value's bucket as a range of sorted positions.

    Direct tables (values of up to DIRECT_MAX_BITS bits) also keep `levels`, for the lookups of flip masks: the
    l-th hash of every bucket as one array per l, with a filler hash where the bucket is shorter. Most lookups are
    then one gather and one comparison per level, with no index arrays. The filler is the value's complement on the
    substring, other bits 0: at least bits - t_s bits from every hash that looks it up, so it seldom passes the
    distance test, and when it does the bucket size rules it out. Buckets longer than the levels (`overflow`, a
    few % of them) are paired with their queries from the bucket side (see _search_substring).
    """

    def __init__(self, hashes: np.ndarray, lo: int, hi: int, with_levels: bool) -> None:
        n = len(hashes)
        self.bits = hi - lo
        self.direct = self.bits <= DIRECT_MAX_BITS
        keys = (hashes >> np.uint64(lo)) & np.uint64((1 << self.bits) - 1)
        if self.direct:
            keys = keys.astype(np.intp)  # direct keys index the start array
        self.order = np.argsort(keys, kind="stable")  # (n,) item at each sorted position
        self.keys = keys[self.order]  # (n,) sorted
        self.hashes = hashes[self.order]  # (n,) in sorted order, so a bucket's hashes are contiguous
        self.levels: list[np.ndarray] = []
        if not self.direct:
            self.values, first = np.unique(self.keys, return_index=True)
            self.first = np.append(first, n).astype(np.intp)
            return
        slots = 1 << self.bits
        self.counts = np.bincount(self.keys, minlength=slots)  # (2**bits,) bucket sizes
        self.start = np.zeros(slots + 1, dtype=np.intp)  # bucket v = sorted positions start[v]..start[v+1]-1
        np.cumsum(self.counts, out=self.start[1:])
        n_levels = _choose_levels(self.counts, self.bits) if with_levels else 0
        if n_levels:
            filler = (~np.arange(slots, dtype=np.uint64) & np.uint64(slots - 1)) << np.uint64(lo)
            rank = np.arange(n) - self.start[self.keys]  # (n,) position of each hash within its bucket
            for level in range(n_levels):
                at = np.flatnonzero(rank == level)
                self.levels.append(filler.copy())
                self.levels[-1][self.keys[at]] = self.hashes[at]
        self.overflow = np.flatnonzero(self.counts > n_levels)  # values with hashes beyond the levels

    def bucket_end(self, keys: np.ndarray) -> np.ndarray:
        """End of the bucket of each key present in the table."""
        if self.direct:
            return self.start[keys + 1]
        return self.first[np.searchsorted(self.values, keys) + 1]

    def buckets(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(start position, size) of the bucket of each key; size 0 where no hash has that value."""
        if self.direct:
            return self.start[keys], self.counts[keys]
        k = np.minimum(np.searchsorted(self.values, keys), len(self.values) - 1)
        hit = self.values[k] == keys
        lo = self.first[k]
        return lo, np.where(hit, self.first[k + 1] - lo, 0)


def _choose_levels(counts: np.ndarray, bits: int) -> int:
    """How many level arrays make a lookup cheapest, by the cost model and the actual bucket sizes."""
    slots = 2.0**bits
    sizes = np.bincount(counts)  # sizes[c]: buckets holding c hashes
    c = np.arange(len(sizes))
    load = max((c * sizes).sum() / slots, 1e-9)
    costs = []
    for levels in range(min(MAX_LEVELS, LEVELS_MAX_BYTES // (8 << bits)) + 1):
        beyond = c > levels
        p_over = sizes[beyond].sum() / slots
        costs.append(_lookup_ns(levels, load, p_over, ((c[beyond] - levels) * sizes[beyond]).sum() / slots))
    return int(np.argmin(costs))


def _search_substring(
    hashes: np.ndarray, max_bits: int, plan: Plan, s: int, masks: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs found through substring s with the given flip masks, (i, j, dist) with i < j, unsorted."""
    lo, hi = plan.bounds[s]
    nonzero = [m for m in masks if m]
    table = _Table(hashes, lo, hi, with_levels=bool(nonzero))
    n = len(hashes)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    # 0, 1, 2, ...: sliced, not rebuilt, for each chunk (longer runs build their own)
    ramp = np.arange(min(max(CHUNK_CANDIDATES, CHUNK_QUERIES), 2 * n + 1024), dtype=np.intp)

    def positions(start: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """start[k]..start[k]+size[k]-1 for every k, concatenated; and where each k's run begins."""
        total = int(size.sum())
        offs = np.cumsum(size) - size
        pos = np.repeat(start - offs, size)
        pos += ramp[:total] if total <= len(ramp) else np.arange(total)
        return pos, offs

    def expand(qpos: np.ndarray, start: np.ndarray, size: np.ndarray) -> None:
        """Compares the hash at each sorted position qpos[k] with those at start[k]..start[k]+size[k]-1."""
        nz = np.flatnonzero(size > 0)  # nonzero of a bool array: several times faster than of ints
        qpos, start, size = qpos[nz], start[nz], size[nz]
        ends = np.cumsum(size)
        # Chunks of whole queries with about CHUNK_CANDIDATES candidates (one query alone may exceed it).
        limits = np.arange(CHUNK_CANDIDATES, ends[-1] if len(ends) else 0, CHUNK_CANDIDATES)
        cuts = np.searchsorted(ends, limits, side="right")
        for a, b in itertools.pairwise([0, *np.unique(cuts).tolist(), len(nz)]):
            if a == b:
                continue
            sz = size[a:b]
            pos, offs = positions(start[a:b], sz)
            dist = np.bitwise_count(table.hashes[pos] ^ np.repeat(table.hashes[qpos[a:b]], sz))
            keep = np.flatnonzero(dist <= max_bits)
            if len(keep):
                query = qpos[a:b][np.searchsorted(offs, keep, side="right") - 1]
                _collect(found, table, plan, s, query, pos[keep], dist[keep])

    if 0 in masks:
        # Exact match on the substring: each hash against the later ones of its own bucket.
        for c in range(0, n, CHUNK_QUERIES):
            qpos = np.arange(c, min(c + CHUNK_QUERIES, n), dtype=np.intp)
            expand(qpos, qpos + 1, table.bucket_end(table.keys[qpos]) - qpos - 1)
    # Nonzero masks, grouped by top bit. A pair is expanded from the hash whose value has that bit clear (the
    # smaller value): the queries of a group.
    key_type = np.intp if table.direct else np.uint64
    n_levels = len(table.levels)
    for top, group in itertools.groupby(nonzero, key=lambda m: m.bit_length() - 1):
        group_masks = [key_type(m) for m in group]
        if n_levels or not table.direct:
            sel = np.flatnonzero(((table.keys >> key_type(top)) & key_type(1)) == 0)
        else:
            sel = np.zeros(0, dtype=np.intp)
        for c in range(0, len(sel), CHUNK_QUERIES):  # a chunk's passes over its queries stay in the CPU cache
            qpos = sel[c : c + CHUNK_QUERIES]
            qkeys, qhashes = table.keys[qpos], table.hashes[qpos]
            for mask in group_masks:
                x = qkeys ^ mask  # (queries,) the looked-up values
                if not table.direct:
                    expand(qpos, *table.buckets(x))
                    continue
                for level, level_hashes in enumerate(table.levels):
                    dist = np.bitwise_count(level_hashes[x] ^ qhashes)
                    hit = np.flatnonzero(dist <= max_bits)
                    if len(hit):
                        hit = hit[table.counts[x[hit]] > level]  # a filler is no hash
                        _collect(found, table, plan, s, qpos[hit], table.start[x[hit]] + level, dist[hit])
        if not table.direct:
            continue
        # The hashes beyond the levels, from the bucket side: each overflowing bucket v (bit `top` set) holds them
        # for the queries of bucket v ^ mask, all of whose hashes are queries (bit `top` clear).
        over = table.overflow[(table.overflow >> top) & 1 == 1]
        for c in range(0, len(over), CHUNK_QUERIES):
            v = over[c : c + CHUNK_QUERIES]
            for mask in group_masks:
                u = v ^ mask
                size_u = table.counts[u]
                k = np.flatnonzero(size_u > 0)
                if not len(k):
                    continue
                vk, size_u = v[k], size_u[k]
                expand(
                    positions(table.start[u[k]], size_u)[0],
                    np.repeat(table.start[vk] + n_levels, size_u),
                    np.repeat(table.counts[vk] - n_levels, size_u),
                )
    if not found:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), empty.copy()
    return tuple(np.concatenate([f[k] for f in found]) for k in range(3))  # type: ignore[return-value]


def _collect(
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    table: _Table,
    plan: Plan,
    s: int,
    qpos: np.ndarray,
    cpos: np.ndarray,
    dist: np.ndarray,
) -> None:
    """Appends the verified pairs (sorted positions qpos, cpos) that no earlier substring reports."""
    diff = table.hashes[qpos] ^ table.hashes[cpos]
    first = np.ones(len(diff), dtype=bool)
    for (lo, hi), t in zip(plan.bounds[:s], plan.thresholds[:s], strict=True):
        sub = (diff >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        first &= np.bitwise_count(sub) > t
    a, b = table.order[qpos[first]], table.order[cpos[first]]
    found.append((np.minimum(a, b).astype(np.int64), np.maximum(a, b).astype(np.int64), dist[first].astype(np.int64)))
