"""Decision-tree kernels: split search, scikit-learn's feature sampling, partitioning, traversal.

Layout. ``codes`` is (n_features, n_rows) int32, feature-major: ``codes[f, i]`` is the rank of
row i's value among feature f's distinct training values (numeric features) or the index of its
category (categorical features). ``values[offsets[f]:offsets[f + 1]]`` holds feature f's distinct
values (float32, ascending), so code c stands for the value ``values[offsets[f] + c]``.
A node is the slice ``samples[start:end]`` of row indices (repeats allowed: a bootstrap sample).

The search for one feature first counts the node's rows per (code, class) cell (a histogram
when the feature has few codes for the node's size, else a sort), then scans the cells in code
order: a numeric feature's candidate splits lie between consecutive distinct values, as in
CART (threshold = their midpoint); a categorical feature splits into one branch per category
present (ID3 / C4.5). Scores, larger is better, for child nodes j with n_j rows and class
counts c_jk:

    entropy     sum_j (sum_k c_jk log2 c_jk - n_j log2 n_j)  = -sum_j n_j H(S_j)
    gini        sum_j (sum_k c_jk^2) / n_j                   = n - sum_j n_j Gini(S_j)
    gain_ratio  Gain / SplitInfo, with n Gain = n H(S) - sum_j n_j H(S_j),
                n SplitInfo = n log2 n - sum_j n_j log2 n_j
    squared error (regression, sums s_j of the targets)  sum_j s_j^2 / n_j

Entropy uses a table ``clog[m] = m log2 m`` and running sums, so a scan takes no logarithm.
``exact`` mode recomputes candidates whose fast score is within a band of the best with
scikit-learn's own float formula (``-n_R Imp(R) - n_L Imp(L)``), so that ties break alike.
"""
import numba
import numpy as np
from numba import njit, prange

GINI, ENTROPY, GAIN_RATIO, SQUARED_ERROR = 0, 1, 2, 3
FEATURE_THRESHOLD = np.float32(1e-7)  # scikit-learn's: values closer than this count as equal
RAND_R_MAX = 0x7FFFFFFF


@njit(cache=True)
def impurity(counts, criterion):
    """Impurity of a node from its class counts, in scikit-learn's float operation order:
    entropy -sum_k p_k log2 p_k, gini 1 - sum_k c_k^2 / n^2 (p_k = c_k / n)."""
    n = 0.0
    for k in range(counts.shape[0]):
        n += counts[k]
    if criterion == GINI:
        sq = 0.0
        for k in range(counts.shape[0]):
            sq += float(counts[k]) * float(counts[k])
        return 1.0 - sq / (n * n)
    result = 0.0
    for k in range(counts.shape[0]):
        if counts[k] > 0:
            p = counts[k] / n
            result -= p * (np.log(p) / np.log(2.0))
    return result


@njit(cache=True)
def _class_cells(codes_row, samples, start, end, y, n_classes, n_codes, hist, totals, cells):
    """The node's nonzero (code, class, count) cells in (code, class) order, written to the rows
    of ``cells`` (4, >= end - start): code, class, count; returns their number. Counted in a
    histogram when the feature has at most 2 codes per row of the node (``hist``, n_codes *
    n_classes, and ``totals``, n_codes: zeroed scratch, left zeroed), else by sorting the rows'
    (code, class) keys in ``cells[3]``."""
    n = end - start
    m = 0
    if n_codes <= 2 * n:
        for p in range(start, end):
            i = samples[p]
            hist[codes_row[i] * n_classes + y[i]] += 1
            totals[codes_row[i]] += 1
        for c in range(n_codes):
            if totals[c]:
                totals[c] = 0
                for k in range(n_classes):
                    if hist[c * n_classes + k]:
                        cells[0, m], cells[1, m], cells[2, m] = c, k, hist[c * n_classes + k]
                        hist[c * n_classes + k] = 0
                        m += 1
        return m
    keys = cells[3, :n]
    for p in range(start, end):
        i = samples[p]
        keys[p - start] = np.int64(codes_row[i]) * n_classes + y[i]
    keys.sort()
    for p in range(n):
        if p == 0 or keys[p] != keys[p - 1]:
            cells[0, m], cells[1, m], cells[2, m] = keys[p] // n_classes, keys[p] % n_classes, 0
            m += 1
        cells[2, m - 1] += 1
    return m


@njit(cache=True)
def _split_score(s_left, s_right, n_left, n_right, n, parent_sum, criterion, clog):
    """Fast score of a binary split from the running sums (sum_k c log2 c, or sum_k c^2)."""
    if criterion == GINI:
        return s_left / n_left + s_right / n_right
    entropy = s_left + s_right - clog[n_left] - clog[n_right]
    if criterion == ENTROPY:
        return entropy
    return (clog[n] - parent_sum + entropy) / (clog[n] - clog[n_left] - clog[n_right])


@njit(cache=True)
def _scan_numeric(cells, m, values, criterion, min_leaf, clog, floor, left, right):
    """Best split ``value <= t`` between consecutive codes of the cells: (score, last left code,
    first right code); score -inf when no candidate keeps ``min_leaf`` rows on each side. With
    ``floor`` finite (exact mode) only candidates whose fast score reaches it are scored, by
    scikit-learn's formula. ``left`` and ``right`` are scratch class-count vectors."""
    left[:] = 0
    right[:] = 0
    for j in range(m):
        right[cells[1, j]] += cells[2, j]
    n = right.sum()
    s_left, s_right = 0.0, 0.0
    for k in range(right.shape[0]):
        s_right += right[k] * right[k] if criterion == GINI else clog[right[k]]
    parent_sum = s_right
    n_left = 0
    best, best_left, best_right = -np.inf, -1, -1
    for j in range(m):
        code = cells[0, j]
        if j > 0 and code != cells[0, j - 1]:  # a boundary between two distinct values
            previous = cells[0, j - 1]
            n_right = n - n_left
            if (values[code] > values[previous] + FEATURE_THRESHOLD and n_left >= min_leaf
                    and n_right >= min_leaf):
                score = _split_score(s_left, s_right, n_left, n_right, n, parent_sum, criterion, clog)
                if floor > -np.inf and score >= floor:
                    score = -(n_right * impurity(right, criterion)) - n_left * impurity(left, criterion)
                elif floor > -np.inf:
                    score = -np.inf
                if score > best:
                    best, best_left, best_right = score, previous, code
        k, c = cells[1, j], cells[2, j]
        if criterion == GINI:
            s_left += (left[k] + c) ** 2 - left[k] ** 2
            s_right += (right[k] - c) ** 2 - right[k] ** 2
        else:
            s_left += clog[left[k] + c] - clog[left[k]]
            s_right += clog[right[k] - c] - clog[right[k]]
        left[k] += c
        right[k] -= c
        n_left += c
    return best, best_left, best_right


@njit(cache=True)
def _score_categorical(cells, m, criterion, min_leaf, clog, exact, group, total):
    """Score of the multiway split with one branch per code; -inf when a branch would hold
    fewer than ``min_leaf`` rows or there is one code only. ``group`` and ``total`` are scratch
    class-count vectors."""
    total[:] = 0
    for j in range(m):
        total[cells[1, j]] += cells[2, j]
    n, parent_sum = total.sum(), 0.0
    for k in range(total.shape[0]):
        parent_sum += clog[total[k]]
    score, split_sum, n_groups = 0.0, 0.0, 0
    j = 0
    while j < m:  # one code (branch) at a time
        group[:] = 0
        n_g, sum_clog = 0, 0.0
        first = j
        while j < m and cells[0, j] == cells[0, first]:
            group[cells[1, j]] = cells[2, j]
            n_g += cells[2, j]
            sum_clog += clog[cells[2, j]]
            j += 1
        if n_g < min_leaf:
            return -np.inf
        n_groups += 1
        split_sum += clog[n_g]
        if exact:
            score -= n_g * impurity(group, criterion)
        elif criterion == GINI:
            score += (group * group).sum() / n_g
        else:
            score += sum_clog - clog[n_g]
    if n_groups < 2:
        return -np.inf
    if criterion == GAIN_RATIO:
        return (clog[n] - parent_sum + score) / (clog[n] - split_sum)
    return score


@njit(cache=True)
def _is_constant(low, high, values, categorical):
    """scikit-learn's test on the node's smallest and largest code: max <= min + FEATURE_THRESHOLD
    (a single category for categorical features)."""
    if categorical:
        return low == high
    return values[high] <= values[low] + FEATURE_THRESHOLD


@njit(cache=True, parallel=True)
def search_splits(codes, samples, start, end, y, n_classes, features, values, offsets, categorical,
                  criterion, min_leaf, clog, n_threads, score, left_code, right_code, constant):
    """For each feature f in ``features`` (in parallel; slot f of each output is its own):
    its best split's fast score, the codes on either side of a numeric threshold, and whether
    f is constant in the node. Classification, ``y`` holds class indices. ``n_threads`` is
    ``numba.get_num_threads()`` (read by the caller: calling it here would defeat the cache)."""
    n = end - start
    width = min(np.diff(offsets).max(), 2 * n)  # the histogram path's largest code count
    hist = np.zeros((n_threads, width * n_classes), np.int32)
    totals = np.zeros((n_threads, width), np.int32)
    cells = np.empty((n_threads, 4, n), np.int64)
    counts = np.empty((n_threads, 2, n_classes), np.int64)
    for j in prange(features.shape[0]):
        f = features[j]
        t = numba.get_thread_id()  # each thread owns its row of scratch
        vals = values[offsets[f]:offsets[f + 1]]
        m = _class_cells(codes[f], samples, start, end, y, n_classes, vals.shape[0], hist[t], totals[t],
                         cells[t])
        constant[f] = _is_constant(cells[t, 0, 0], cells[t, 0, m - 1], vals, categorical[f])
        if categorical[f]:
            score[f] = _score_categorical(cells[t], m, criterion, min_leaf, clog, False,
                                          counts[t, 0], counts[t, 1])
        else:
            score[f], left_code[f], right_code[f] = _scan_numeric(cells[t], m, vals, criterion, min_leaf,
                                                                  clog, -np.inf, counts[t, 0], counts[t, 1])


@njit(cache=True)
def exact_split(codes_row, samples, start, end, y, n_classes, values, categorical, criterion,
                min_leaf, clog, floor):
    """One feature's best split by scikit-learn's float formula among candidates whose fast score
    reaches ``floor``: (score, last left code, first right code)."""
    n_codes, n = values.shape[0], end - start
    width = n_codes if n_codes <= 2 * n else 0  # scratch for the histogram path only
    cells = np.empty((4, n), np.int64)
    m = _class_cells(codes_row, samples, start, end, y, n_classes, n_codes,
                     np.zeros(width * n_classes, np.int32), np.zeros(width, np.int32), cells)
    left, right = np.empty(n_classes, np.int64), np.empty(n_classes, np.int64)
    if categorical:
        return _score_categorical(cells, m, criterion, min_leaf, clog, True, left, right), -1, -1
    return _scan_numeric(cells, m, values, criterion, min_leaf, clog, floor, left, right)


@njit(cache=True)
def _group_sums(codes_row, samples, start, end, y, n_codes):
    """Distinct codes of the node's rows (ascending), their row counts and target sums."""
    n = end - start
    if n_codes <= 2 * n:
        sizes = np.zeros(n_codes, np.int64)
        sums = np.zeros(n_codes)
        for p in range(start, end):
            i = samples[p]
            sizes[codes_row[i]] += 1
            sums[codes_row[i]] += y[i]
        group_codes = np.flatnonzero(sizes)
        return group_codes, sizes[group_codes], sums[group_codes]
    node = samples[start:end]
    order = np.argsort(codes_row[node], kind="mergesort")
    sorted_codes = codes_row[node][order]
    m = 1
    for p in range(1, n):
        m += sorted_codes[p] != sorted_codes[p - 1]
    group_codes = np.empty(m, np.int64)
    sizes = np.zeros(m, np.int64)
    sums = np.zeros(m)
    g = -1
    for p in range(n):
        if p == 0 or sorted_codes[p] != sorted_codes[p - 1]:
            g += 1
            group_codes[g] = sorted_codes[p]
        sizes[g] += 1
        sums[g] += y[node[order[p]]]
    return group_codes, sizes, sums


@njit(cache=True, parallel=True)
def search_splits_regression(codes, samples, start, end, y, features, values, offsets, categorical,
                             min_leaf, score, left_code, right_code, constant):
    """Regression twin of ``search_splits`` (squared error): score sum_j s_j^2 / n_j over the
    children, with s_j the sum of their targets (scikit-learn's proxy)."""
    for j in prange(features.shape[0]):
        f = features[j]
        vals = values[offsets[f]:offsets[f + 1]]
        group_codes, sizes, sums = _group_sums(codes[f], samples, start, end, y, vals.shape[0])
        constant[f] = _is_constant(group_codes[0], group_codes[-1], vals, categorical[f])
        best, best_left, best_right = -np.inf, -1, -1
        if categorical[f]:
            if group_codes.shape[0] > 1 and sizes.min() >= min_leaf:
                best = (sums * sums / sizes).sum()
        else:
            n, total = sizes.sum(), sums.sum()
            n_left, s_left = 0, 0.0
            for g in range(group_codes.shape[0] - 1):
                n_left += sizes[g]
                s_left += sums[g]
                if vals[group_codes[g + 1]] <= vals[group_codes[g]] + FEATURE_THRESHOLD:
                    continue
                if n_left < min_leaf or n - n_left < min_leaf:
                    continue
                s_right = total - s_left
                proxy = s_left * s_left / n_left + s_right * s_right / (n - n_left)
                if proxy > best:
                    best, best_left, best_right = proxy, group_codes[g], group_codes[g + 1]
        score[f], left_code[f], right_code[f] = best, best_left, best_right


@njit(cache=True)
def _rand_int(low, high, state):
    """scikit-learn's rand_int: a 32-bit xorshift step (state[0] updated), mapped to [low, high)."""
    s = np.int64(state[0]) or 1
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    state[0] = s
    return low + (s % (RAND_R_MAX + 1)) % (high - low)


@njit(cache=True)
def draw_features(features, constant_features, n_known, max_features, state, constant, codes,
                  samples, start, end, values, offsets, categorical):
    """scikit-learn's BestSplitter feature sampling (Fisher-Yates over ``features``, skipping known
    and newly found constant features), replayed exactly, so that equally good splits are broken
    by the same visit order. ``constant[f]`` is 1/0 when known, -1 to test here. Returns the
    non-constant features drawn, in visit order, and the constant-feature count for the children;
    ``features``, ``constant_features`` and ``state`` carry over from node to node."""
    n_features = features.shape[0]
    visited = np.empty(n_features, np.int64)
    n_kept = 0
    f_i, n_visited, n_found, n_drawn, n_total = n_features, 0, 0, 0, n_known
    while f_i > n_total and (n_visited < max_features or n_visited <= n_found + n_drawn):
        n_visited += 1
        f_j = _rand_int(n_drawn, f_i - n_found, state)
        if f_j < n_known:
            features[n_drawn], features[f_j] = features[f_j], features[n_drawn]
            n_drawn += 1
            continue
        f_j += n_found
        f = features[f_j]
        if constant[f] < 0:
            node_codes = codes[f][samples[start:end]]
            constant[f] = _is_constant(node_codes.min(), node_codes.max(), values[offsets[f]:offsets[f + 1]],
                                       categorical[f])
        if constant[f]:
            features[f_j], features[n_total] = features[n_total], features[f_j]
            n_found += 1
            n_total += 1
            continue
        f_i -= 1
        features[f_i], features[f_j] = features[f_j], features[f_i]
        visited[n_kept] = f
        n_kept += 1
    features[:n_known] = constant_features[:n_known]
    constant_features[n_known:n_total] = features[n_known:n_total]
    return visited[:n_kept], n_total


@njit(cache=True, parallel=True)
def encode_numeric(columns, values, offsets, rows, codes):
    """``codes[rows[j], i]``: the rank of ``columns[j, i]`` among the sorted distinct values
    ``values[offsets[rows[j]]:offsets[rows[j] + 1]]`` (each value is among them): a lookup table
    for integer values in a small range (pixels), else a binary search."""
    for j in prange(columns.shape[0]):
        f = rows[j]
        vals = values[offsets[f]:offsets[f + 1]]
        low, span = vals[0], vals[-1] - vals[0]
        if span <= 4 * vals.shape[0] + 1024 and np.all(vals == np.floor(vals)):
            table = np.zeros(np.int64(span) + 1, np.int32)
            for c in range(vals.shape[0]):
                table[np.int64(vals[c] - low)] = c
            for i in range(columns.shape[1]):
                codes[f, i] = table[np.int64(columns[j, i] - low)]
        else:
            codes[f] = np.searchsorted(vals, columns[j])


@njit(cache=True)
def partition(samples, start, end, codes_row, group_of_code, n_groups):
    """Reorder ``samples[start:end]`` stably into groups (``group_of_code[code]``); returns the
    group sizes."""
    sizes = np.zeros(n_groups, np.int64)
    for p in range(start, end):
        sizes[group_of_code[codes_row[samples[p]]]] += 1
    position = np.empty(n_groups, np.int64)
    position[0] = 0
    for g in range(1, n_groups):
        position[g] = position[g - 1] + sizes[g - 1]
    node = samples[start:end].copy()
    for i in node:
        g = group_of_code[codes_row[i]]
        samples[start + position[g]] = i
        position[g] += 1
    return sizes


@njit(cache=True, parallel=True)
def apply_tree(X, feature, threshold, left, right, branch_start, branches):
    """Leaf reached by each row of X (float64; categorical columns hold category indices, -1 for
    one unseen in training). Numeric node: ``x <= threshold`` goes to ``left``, else ``right``.
    Categorical node (branch_start >= 0): ``branches[branch_start + category]``, and an unseen
    category (or one absent from the node in training, branch -1) goes to ``left``, the branch
    that held the most training rows."""
    leaves = np.empty(X.shape[0], np.int64)
    for i in prange(X.shape[0]):
        node = 0
        while left[node] >= 0:
            x = X[i, feature[node]]
            if branch_start[node] >= 0:
                child = branches[branch_start[node] + np.int64(x)] if x >= 0 else -1
                node = child if child >= 0 else left[node]
            elif x <= threshold[node]:
                node = left[node]
            else:
                node = right[node]
        leaves[i] = node
    return leaves
