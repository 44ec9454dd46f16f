"""L-BFGS with torch.optim.LBFGS's closure API, defaults and iterates.

``optimizer.step(closure)``: closure() recomputes the loss (zero_grad, forward, backward) and
returns it; one step runs up to ``max_iter`` quasi-Newton iterations. With x the parameters
flattened into one vector, g = grad f(x), and the last m pairs s_k = x_{k+1} - x_k,
y_k = g_{k+1} - g_k kept (those with y_k.s_k > 1e-10), the direction d = -H g comes from the
two-loop recursion (Nocedal & Wright, algorithm 7.4):

    q = -g;  for k = m-1 .. 0:  a_k = rho_k s_k.q,  q -= a_k y_k        (rho_k = 1 / y_k.s_k)
    r = gamma q, gamma = s.y / y.y of the newest pair;  for k = 0 .. m-1:  r += (a_k - rho_k y_k.r) s_k
    d = r;  x += t d

with t = min(1, 1 / |g|_1) lr on the very first iteration and lr after, or, with
``line_search_fn="strong_wolfe"``, the t of a line search meeting the strong Wolfe conditions
f(x + t d) <= f(x) + c1 t g.d and |g(x + t d).d| <= c2 |g.d| (c1 = 1e-4, c2 = 0.9; bracketing
and zoom by cubic interpolation, as minFunc and torch). A step ends after max_iter iterations,
max_eval closure calls, or when max|g| <= tolerance_grad, max|t d| <= tolerance_change or the
loss changes by less than tolerance_change.

The algorithm is sequential (each iteration needs the closure's gradient at the last one) and
its vector work is a few dot products per history pair, so it runs in NumPy on the host over
the flattened parameters (copied from and back to the GPU for cuda parameters), not in a kernel.
The flattened vectors are in the parameters' common dtype.

State (``state_dict``), kept as torch keeps it but split into each parameter's slice so that
a checkpoint stores it like any optimizer's: per parameter the arrays ``d``, ``prev_flat_grad``,
``old_dirs_<k>`` (y_k) and ``old_stps_<k>`` (s_k), k = 0 oldest; on parameter 0 also the
counters ``func_evals``, ``n_iter`` and the numbers ``t``, ``H_diag``, ``prev_loss``, ``ro_<k>``.
"""
import math
import re

import numpy as np

from ..device import to_host
from ..function import set_grad_enabled
from .optimizer import Optimizer, check_integer, check_number

_HISTORY = re.compile(r"(old_dirs|old_stps|ro)_(0|[1-9][0-9]*)")


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimizer, clipped to ``bounds`` (default [x1, x2]), of the cubic through
    (x1, f1) and (x2, f2) with slopes g1, g2; the bounds' midpoint when it has none."""
    xmin_bound, xmax_bound = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """(f_new, g_new, t, evaluations): a step t along d meeting the strong Wolfe conditions
    (module docstring), found by bracketing then zooming; obj_func(t) = (f, g) at x + t d."""
    d_norm = float(np.abs(d).max())
    f_new, g_new = obj_func(t)
    ls_func_evals = 1
    gtd_new = float(g_new @ d)
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:  # bracketing phase
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new], [gtd_prev, gtd_new]
            break
        # extrapolate within [t + 0.01 (t - t_prev), 10 t]
        min_step, max_step = t + 0.01 * (t - t_prev), t * 10
        t_prev, t = t, _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                                          bounds=(min_step, max_step))
        f_prev, g_prev, gtd_prev = f_new, g_new, gtd_new
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
    if ls_iter == max_ls:  # reached the evaluation limit: bracket [0, t]
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]

    # zoom phase: shrink the bracket until the point meets the conditions
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0],
                               bracket[1], bracket_f[1], bracket_gtd[1])
        # a point too near an end of the bracket is moved 0.1 of its width inside it
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) \
                    else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new = obj_func(t)
        ls_func_evals += 1
        gtd_new = float(g_new @ d)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """Limited-memory BFGS, torch.optim.LBFGS's algorithm; see the module docstring."""

    state_buffers = ("d", "prev_flat_grad")
    state_counters = ("func_evals", "n_iter")
    state_scalars = ("t", "H_diag", "prev_loss")

    def __init__(self, params, lr=1.0, max_iter=20, max_eval=None, tolerance_grad=1e-7,
                 tolerance_change=1e-9, history_size=100, line_search_fn=None):
        if max_eval is None and not isinstance(max_iter, bool) and isinstance(max_iter, int):
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        self._params = self.param_groups[0]["params"]

    def add_param_group(self, group):
        if self.param_groups:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        super().add_param_group(group)

    def check_hyperparameters(self, group):
        super().check_hyperparameters(group)
        for key in ("max_iter", "max_eval", "history_size"):
            check_integer("LBFGS", key, group[key], minimum=1)
        for key in ("tolerance_grad", "tolerance_change"):
            check_number("LBFGS", key, group[key])
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: invalid line_search_fn {group['line_search_fn']!r} "
                             "(must be None or 'strong_wolfe')")

    # ------------------------------------------------------------ flat views of the parameters
    def _dtype(self):
        return np.result_type(*[p.dtype for p in self._params])

    def _gather_flat_param(self):
        return np.concatenate([to_host(p.array).reshape(-1) for p in self._params]).astype(
            self._dtype(), copy=False)

    def _gather_flat_grad(self):
        return np.concatenate([np.zeros(p.array.size, self._dtype()) if p.grad is None
                               else to_host(p.grad.array).reshape(-1) for p in self._params]
                              ).astype(self._dtype(), copy=False)

    def _set_param(self, flat):
        offset = 0
        for p in self._params:
            p.array[...] = flat[offset:offset + p.array.size].reshape(p.shape).astype(p.dtype)
            offset += p.array.size

    def step(self, closure):
        """Up to max_iter L-BFGS iterations; returns the loss closure() gave at the start."""
        closure = set_grad_enabled(True)(closure)
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        state = self._flat_state()
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        orig_loss = closure()
        loss = float(orig_loss)
        current_evals = 1
        state["func_evals"] += 1
        flat_grad = self._gather_flat_grad()
        if np.abs(flat_grad).max() <= tolerance_grad:  # already optimal
            self._keep_state(state)
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state["old_dirs"], state["old_stps"], state["ro"]
        H_diag, prev_flat_grad, prev_loss = (state.get("H_diag"), state.get("prev_flat_grad"),
                                             state.get("prev_loss"))
        x = self._gather_flat_param()
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -flat_grad
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1.0
            else:
                y = flat_grad - prev_flat_grad
                s = d * t
                ys = float(y @ s)
                if ys > 1e-10:  # keep the pair only when the curvature condition holds
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / float(y @ y)
                # two-loop recursion: d = -H g
                al = [0.0] * len(old_dirs)
                q = -flat_grad
                for i in range(len(old_dirs) - 1, -1, -1):
                    al[i] = float(old_stps[i] @ q) * ro[i]
                    q -= al[i] * old_dirs[i]
                d = q * H_diag
                for i in range(len(old_dirs)):
                    be_i = float(old_dirs[i] @ d) * ro[i]
                    d += (al[i] - be_i) * old_stps[i]
            prev_flat_grad = flat_grad.copy()
            prev_loss = loss
            t = (min(1.0, 1.0 / float(np.abs(flat_grad).sum())) * lr if state["n_iter"] == 1
                 else lr)
            gtd = float(flat_grad @ d)
            if gtd > -tolerance_change:  # not a descent direction
                break

            ls_func_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                def obj_func(step_size):
                    self._set_param(x + step_size * d)
                    value = float(closure())
                    gradient = self._gather_flat_grad()
                    self._set_param(x)
                    return value, gradient

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, t, d, loss, flat_grad, gtd, max_ls=max_eval - current_evals)
                x = x + t * d
                self._set_param(x)
                opt_cond = np.abs(flat_grad).max() <= tolerance_grad
            else:
                x = x + t * d
                self._set_param(x)
                opt_cond = False
                if n_iter != max_iter:  # re-evaluate, unless this was the last iteration
                    loss = float(closure())
                    flat_grad = self._gather_flat_grad()
                    opt_cond = np.abs(flat_grad).max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals

            if (n_iter == max_iter or current_evals >= max_eval or opt_cond
                    or np.abs(d * t).max() <= tolerance_change
                    or abs(loss - prev_loss) < tolerance_change):
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        self._keep_state(state)
        return orig_loss

    # ------------------------------------------------------------ state
    def _flat_state(self):
        """The state as torch keeps it (flat vectors, history lists), joined from the
        per-parameter entries of ``self.state``."""
        per_param = [self.state.get(id(p), {}) for p in self._params]
        first = per_param[0]
        state = {k: first[k] for k in self.state_counters + self.state_scalars if k in first}

        def joined(key):
            return np.concatenate([to_host(entries[key]).reshape(-1) for entries in per_param]
                                  ).astype(self._dtype(), copy=False)

        for key in self.state_buffers:
            if key in first:
                state[key] = joined(key)
        count = sum(1 for key in first if key.startswith("ro_"))
        state["old_dirs"] = [joined(f"old_dirs_{k}") for k in range(count)]
        state["old_stps"] = [joined(f"old_stps_{k}") for k in range(count)]
        state["ro"] = [first[f"ro_{k}"] for k in range(count)]
        return state

    def _keep_state(self, state):
        """Store ``state`` (as ``_flat_state`` returns it) in ``self.state``: each parameter
        its slice of the vectors (views, no copies); the numbers on parameter 0."""
        offset = 0
        for i, p in enumerate(self._params):
            n = p.array.size
            entries = {k: state[k][offset:offset + n] for k in self.state_buffers if k in state}
            for k, (y, s) in enumerate(zip(state["old_dirs"], state["old_stps"])):
                entries[f"old_dirs_{k}"] = y[offset:offset + n]
                entries[f"old_stps_{k}"] = s[offset:offset + n]
            if i == 0:
                entries.update({k: state[k] for k in self.state_counters + self.state_scalars
                                if k in state})
                entries.update({f"ro_{k}": value for k, value in enumerate(state["ro"])})
            self.state[id(p)] = entries
            offset += n

    def check_state_dict(self, state_dict):
        """As ``Optimizer.check_state_dict``, and the state must be whole: every parameter holds
        the same vectors, parameter 0 the numbers, the history k = 0 .. m-1 with m <=
        history_size and every pair (old_dirs_k, old_stps_k, ro_k) complete."""
        groups, state = super().check_state_dict(state_dict)
        name = "LBFGS.load_state_dict"
        per_param = [state.get(id(p), {}) for p in self._params]
        numbers = set(self.state_counters + self.state_scalars)
        vectors = {k for k in per_param[0] if k not in numbers and not k.startswith("ro_")}
        for index, entries in enumerate(per_param):
            keys = {k for k in entries if k not in numbers and not k.startswith("ro_")}
            if keys != vectors:
                raise ValueError(f"{name}: parameter {index} holds state {sorted(keys)}, parameter "
                                 f"0 {sorted(vectors)}; each parameter holds its slice of the same "
                                 "vectors")
            if index and set(entries) - keys:
                raise ValueError(f"{name}: parameter {index} holds numbers of the state "
                                 f"({sorted(set(entries) - keys)}), which parameter 0 keeps")
        count = sum(1 for key in per_param[0] if key.startswith("ro_"))
        history = {f"{kind}_{k}" for k in range(count) for kind in ("old_dirs", "old_stps", "ro")}
        found = {k for k in per_param[0] if _HISTORY.fullmatch(k)}
        if found != history or count > groups[0]["history_size"]:
            raise ValueError(f"{name}: the history must be the complete pairs old_dirs_k, "
                             f"old_stps_k, ro_k for k = 0 .. m-1 (m <= history_size), got "
                             f"{sorted(found)!r:.300}")
        needed = set(self.state_buffers + self.state_scalars) | {"n_iter"}
        if per_param[0].get("n_iter", 0) > 0 and not needed <= set(per_param[0]):
            raise ValueError(f"{name}: a state after iterations (n_iter > 0) must hold "
                             f"{sorted(needed)}")
        return groups, state

    def state_kind(self, key):
        """Also the history: old_dirs_<k>, old_stps_<k> are vectors, ro_<k> numbers."""
        match = _HISTORY.fullmatch(key)
        if match is None:
            return super().state_kind(key)
        return "scalar" if match.group(1) == "ro" else "buffer"
