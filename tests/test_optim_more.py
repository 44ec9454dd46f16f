"""Adadelta, Adamax, NAdam, LBFGS and the schedules MultiStepLR, ExponentialLR, LinearLR,
OneCycleLR, SequentialLR, ReduceLROnPlateau against torch.optim (float64, 1e-6 relative).

The first-order optimizers run on test_optim's least-squares problem (same helpers); LBFGS on
the Rosenbrock function split over two parameters; each schedule's lr (and OneCycleLR's
momentum) over every phase. State dicts are saved mid-way, restored into fresh objects, also
through a checkpoint file, and must reproduce the rest of the run.
"""
import math

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.optim import lr_scheduler
from minidl.utils.serialization import load_checkpoint, save_checkpoint
from test_optim import (STEPS, _minidl_step, _problem, assert_trajectories_close,
                        minidl_trajectory, torch_trajectory)

# torch warns when its schedules are stepped without an optimizer step in between, as here
pytestmark = pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")

CASES = [
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-4)),
    ("Adadelta", dict(lr=0.5, weight_decay=0.1)),
    ("Adadelta", dict(lr=0.5, rho=1.0, weight_decay=0.1, maximize=True)),
    ("Adamax", dict(lr=0.05)),
    ("Adamax", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-4)),
    ("Adamax", dict(lr=0.05, weight_decay=0.1)),
    ("Adamax", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.05)),
    ("NAdam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, momentum_decay=0.01)),
    ("NAdam", dict(lr=0.05, weight_decay=0.1)),
    ("NAdam", dict(lr=0.05, weight_decay=0.3, decoupled_weight_decay=True)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
]


@pytest.fixture
def torch_float64_steps():
    """torch keeps an optimizer's step count as a float32 tensor unless its default dtype is
    float64, so its NAdam computes mu_t = b1 (1 - 0.96^(t psi) / 2) in float32 (off by ~1e-9
    absolute in the parameters); minidl computes it in float64. Set for one test, then reset."""
    torch = pytest.importorskip("torch")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield torch
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("name,kwargs", CASES,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES])
def test_trajectory_matches_torch(name, kwargs, torch_float64_steps):
    torch = torch_float64_steps
    actual = minidl_trajectory(getattr(optim, name), kwargs)
    expected = torch_trajectory(torch, name, kwargs)
    _, _, w0, _ = _problem()
    assert np.abs(expected[-1][0] - w0).max() > 1e-3  # the parameters really moved
    assert_trajectories_close(actual, expected, what=name)


@pytest.mark.parametrize("name,kwargs", [CASES[2], CASES[6], CASES[11]])
def test_state_dict_round_trip_continues_trajectory(name, kwargs):
    x, y, w0, b0 = _problem()
    expected = minidl_trajectory(getattr(optim, name), kwargs)
    w, b = nn.Parameter(w0.copy()), nn.Parameter(b0.copy())
    opt = getattr(optim, name)([w, b], **kwargs)
    for _ in range(STEPS // 2):
        _minidl_step(opt, x, y, w, b)
    saved = opt.state_dict()
    w2, b2 = nn.Parameter(w.array.copy()), nn.Parameter(b.array.copy())
    fresh = getattr(optim, name)([w2, b2], lr=123.0)  # the saved lr must win
    fresh.load_state_dict(saved)
    rest = []
    for _ in range(STEPS - STEPS // 2):
        _minidl_step(fresh, x, y, w2, b2)
        rest.append((w2.array.copy(), b2.array.copy()))
    assert_trajectories_close(rest, expected[STEPS // 2:], rtol=1e-12, what=name)


def test_nadam_keeps_mu_product_as_a_number():
    w = nn.Parameter(np.ones(3))
    opt = optim.NAdam([w])
    w.grad = minidl.tensor(np.ones(3))
    opt.step()
    state = opt.state_dict()["state"][0]
    assert set(state) == {"step", "mu_product", "exp_avg", "exp_avg_sq"}
    assert state["mu_product"] == pytest.approx(0.9 * (1 - 0.5 * 0.96 ** 0.004))
    bad = opt.state_dict()
    bad["state"][0]["mu_product"] = "x"
    with pytest.raises(ValueError, match="mu_product"):
        opt.load_state_dict(bad)


# ---------------------------------------------------------------- LBFGS

def _rosenbrock_pairs(x0, x1):
    return (1 - x0) ** 2 + 100 * (x1 - x0 ** 2) ** 2


def _rosenbrock(a, b):
    """The 4-d chained Rosenbrock function of (a0, a1, b0, b1), two parameters of 2 entries."""
    return (_rosenbrock_pairs(a[0], a[1]) + _rosenbrock_pairs(a[1], b[0])
            + _rosenbrock_pairs(b[0], b[1]))


A0, B0 = np.array([-1.5, 2.0]), np.array([0.5, -0.3])


def _lbfgs_run(make_params, make_opt, steps):
    """[(a, b, returned loss)] after each step(closure)."""
    a, b = make_params()
    opt = make_opt([a, b])

    def closure():
        opt.zero_grad()
        loss = _rosenbrock(a, b)
        loss.backward()
        return loss

    out = []
    for _ in range(steps):
        loss = opt.step(closure)
        out.append((np.array(a.detach().numpy()), np.array(b.detach().numpy()),
                    float(loss.detach())))
    return out, opt, (a, b), closure


def _minidl_lbfgs(kwargs, steps):
    return _lbfgs_run(lambda: (nn.Parameter(A0.copy()), nn.Parameter(B0.copy())),
                      lambda p: optim.LBFGS(p, **kwargs), steps)


def _torch_lbfgs(torch, kwargs, steps):
    return _lbfgs_run(lambda: (torch.tensor(A0, requires_grad=True),
                               torch.tensor(B0, requires_grad=True)),
                      lambda p: torch.optim.LBFGS(p, **kwargs), steps)


LBFGS_CASES = [dict(lr=0.1), dict(lr=0.1, history_size=3, max_iter=7),
               dict(line_search_fn="strong_wolfe"),
               dict(line_search_fn="strong_wolfe", history_size=2, max_iter=10, max_eval=12),
               dict(lr=0.5, line_search_fn="strong_wolfe", tolerance_change=1e-5)]


@pytest.mark.parametrize("kwargs", LBFGS_CASES, ids=[str(k) for k in LBFGS_CASES])
def test_lbfgs_rosenbrock_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    actual, opt, _, _ = _minidl_lbfgs(kwargs, steps=6)
    expected, topt, _, _ = _torch_lbfgs(torch, kwargs, steps=6)
    assert np.abs(expected[-1][0] - A0).max() > 0.1  # it moved
    for k, ((a, b, loss), (ta, tb, tloss)) in enumerate(zip(actual, expected), 1):
        np.testing.assert_allclose(a, ta, rtol=1e-6, atol=1e-10, err_msg=f"a after step {k}")
        np.testing.assert_allclose(b, tb, rtol=1e-6, atol=1e-10, err_msg=f"b after step {k}")
        assert loss == pytest.approx(tloss, rel=1e-6)
    state, tstate = opt.state_dict()["state"][0], topt.state_dict()["state"][0]
    assert (state["func_evals"], state["n_iter"]) == (tstate["func_evals"], tstate["n_iter"])
    assert sum(k.startswith("ro_") for k in state) == len(tstate["ro"])


def test_lbfgs_strong_wolfe_reaches_a_stationary_point():
    """From A0, B0 it ends in the 4-d Rosenbrock function's local minimum near
    (-0.776, 0.613, 0.382, 0.146) (the global one is at 1): the gradient vanishes there."""
    _, opt, (a, b), closure = _minidl_lbfgs(dict(line_search_fn="strong_wolfe"), steps=5)
    closure()
    assert max(np.abs(a.grad.numpy()).max(), np.abs(b.grad.numpy()).max()) < 1e-3
    np.testing.assert_allclose(a.data, [-0.7757, 0.6131], atol=1e-3)


@pytest.mark.parametrize("kwargs", [LBFGS_CASES[1], LBFGS_CASES[3]])
def test_lbfgs_state_dict_round_trip_continues(kwargs, tmp_path):
    expected, *_ = _minidl_lbfgs(kwargs, steps=4)
    first, opt, (a, b), _ = _minidl_lbfgs(kwargs, steps=2)
    saved = opt.state_dict()
    assert all(isinstance(v, (np.ndarray, int, float)) for s in saved["state"].values()
               for v in s.values())
    # the second parameter holds its slices of the vectors, parameter 0 also the numbers
    assert {"d", "prev_flat_grad", "old_dirs_0", "old_stps_0"} <= set(saved["state"][1])
    assert "n_iter" not in saved["state"][1] and "ro_0" in saved["state"][0]

    class Pair(nn.Module):
        def __init__(self, a, b):
            super().__init__()
            self.a, self.b = a, b

    for how in ("state_dict", "checkpoint"):
        a2, b2 = nn.Parameter(a.array.copy()), nn.Parameter(b.array.copy())
        fresh = optim.LBFGS([a2, b2], **kwargs)
        if how == "state_dict":
            fresh.load_state_dict(saved)
        else:
            save_checkpoint(tmp_path / "lbfgs.npz", Pair(a, b), opt)
            load_checkpoint(tmp_path / "lbfgs.npz", Pair(a2, b2), fresh)

        def closure():
            fresh.zero_grad()
            loss = _rosenbrock(a2, b2)
            loss.backward()
            return loss

        for k in range(2, 4):
            fresh.step(closure)
            np.testing.assert_allclose(a2.data, expected[k][0], rtol=1e-12, err_msg=how)
            np.testing.assert_allclose(b2.data, expected[k][1], rtol=1e-12, err_msg=how)


def test_lbfgs_refuses_incomplete_state():
    _, opt, _, _ = _minidl_lbfgs(dict(lr=0.1), steps=1)
    saved = opt.state_dict()
    for entries in saved["state"].values():
        del entries["old_stps_0"]
    with pytest.raises(ValueError, match="history"):
        opt.load_state_dict(saved)
    saved = opt.state_dict()
    del saved["state"][1]["d"]
    with pytest.raises(ValueError, match="parameter 1"):
        opt.load_state_dict(saved)
    saved = opt.state_dict()
    saved["state"][0]["ro_0"] = np.ones(2)
    with pytest.raises(ValueError, match="ro_0"):
        opt.load_state_dict(saved)


def test_lbfgs_returns_at_once_when_already_optimal():
    a = nn.Parameter(np.ones(2))
    opt = optim.LBFGS([a])
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = _rosenbrock_pairs(a[0], a[1])
        loss.backward()
        return loss

    assert float(opt.step(closure)) == 0.0 and len(calls) == 1
    np.testing.assert_array_equal(a.data, 1.0)


def test_lbfgs_rejects_a_second_parameter_group():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [a]}, {"params": [b]}])


# ---------------------------------------------------------------- bad arguments

BAD = [
    (optim.Adadelta, dict(lr=-1.0), "lr"),
    (optim.Adadelta, dict(rho=1.5), "rho"),
    (optim.Adadelta, dict(eps=-1e-6), "eps"),
    (optim.Adadelta, dict(weight_decay=-0.1), "weight_decay"),
    (optim.Adamax, dict(lr=-1.0), "lr"),
    (optim.Adamax, dict(betas=(1.0, 0.9)), r"betas\[0\]"),
    (optim.Adamax, dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    (optim.Adamax, dict(eps=-1.0), "eps"),
    (optim.NAdam, dict(lr=float("nan")), "lr"),
    (optim.NAdam, dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    (optim.NAdam, dict(momentum_decay=-1.0), "momentum_decay"),
    (optim.NAdam, dict(weight_decay=-1.0), "weight_decay"),
    (optim.LBFGS, dict(lr=-1.0), "lr"),
    (optim.LBFGS, dict(max_iter=0), "max_iter"),
    (optim.LBFGS, dict(history_size=0), "history_size"),
    (optim.LBFGS, dict(tolerance_grad=-1.0), "tolerance_grad"),
    (optim.LBFGS, dict(line_search_fn="armijo"), "line_search_fn"),
]


@pytest.mark.parametrize("opt_cls,kwargs,argument", BAD,
                         ids=[f"{c.__name__}-{a}" for c, _, a in BAD])
def test_invalid_hyperparameter_named_in_value_error(opt_cls, kwargs, argument):
    with pytest.raises(ValueError, match=f"{opt_cls.__name__}.*{argument}"):
        opt_cls([nn.Parameter(np.ones(2))], **kwargs)


@pytest.mark.parametrize("opt_cls,kwargs,argument", [
    (optim.Adamax, dict(betas=0.9), "betas"), (optim.NAdam, dict(maximize=1), "maximize"),
    (optim.NAdam, dict(decoupled_weight_decay="yes"), "decoupled_weight_decay"),
    (optim.LBFGS, dict(max_iter=2.5), "max_iter")])
def test_hyperparameter_of_wrong_type_named_in_type_error(opt_cls, kwargs, argument):
    with pytest.raises(TypeError, match=argument):
        opt_cls([nn.Parameter(np.ones(2))], **kwargs)


SCHEDULER_BAD = [
    (lambda o: lr_scheduler.ExponentialLR(o, gamma=-0.5), "gamma"),
    (lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, -1]), r"milestones\[1\]"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=0.0), "start_factor"),
    (lambda o: lr_scheduler.LinearLR(o, start_factor=1.5), "start_factor"),
    (lambda o: lr_scheduler.LinearLR(o, end_factor=2.0), "end_factor"),
    (lambda o: lr_scheduler.LinearLR(o, total_iters=-1), "total_iters"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0), "total_steps"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=0), "total_steps"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, epochs=0, steps_per_epoch=3), "epochs"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=9, pct_start=1.5), "pct_start"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=9, anneal_strategy="exp"),
     "anneal_strategy"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=9), "max_lr"),
    (lambda o: lr_scheduler.OneCycleLR(o, max_lr=-1.0, total_steps=9), "max_lr"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, mode="maximum"), "mode"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, threshold_mode="relative"), "threshold_mode"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=1.0), "factor"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=-1), "patience"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, min_lr=[0.0, 0.1]), "min_lr"),
    (lambda o: lr_scheduler.ReduceLROnPlateau(o, cooldown=-2), "cooldown"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.ExponentialLR(o, 0.9)], [3]),
     "milestone"),
    (lambda o: lr_scheduler.SequentialLR(o, [], []), "at least one scheduler"),
    (lambda o: lr_scheduler.SequentialLR(o, [lr_scheduler.ReduceLROnPlateau(o)], []),
     "ReduceLROnPlateau"),
]


@pytest.mark.parametrize("make,argument", SCHEDULER_BAD,
                         ids=[f"{i}-{a}" for i, (_, a) in enumerate(SCHEDULER_BAD)])
def test_invalid_scheduler_argument_named_in_value_error(make, argument):
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match=argument):
        make(opt)


def test_one_cycle_without_momentum_needs_cycle_momentum_false():
    opt = optim.Adagrad([nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(ValueError, match="momentum"):
        lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)
    lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10, cycle_momentum=False)


# ---------------------------------------------------------------- schedules

GROUP_LRS = (0.1, 0.03)


def _optimizers(torch, name="SGD", **kwargs):
    """The same optimizer, two parameter groups, in minidl and in torch."""
    ours = getattr(optim, name)([{"params": [nn.Parameter(np.ones(2))], "lr": lr}
                                 for lr in GROUP_LRS], **kwargs)
    theirs = getattr(torch.optim, name)([{"params": [torch.ones(2, requires_grad=True)], "lr": lr}
                                         for lr in GROUP_LRS], **kwargs)
    return ours, theirs


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum", 0.0) for g in opt.param_groups]


def _run_schedule(opt, sched, steps, metrics=None):
    """[(lrs, momenta)] at construction and after each step."""
    out = [([g["lr"] for g in opt.param_groups], _momenta(opt))]
    for t in range(steps):
        if metrics is None:
            sched.step()
        else:
            sched.step(metrics[t])
        out.append(([g["lr"] for g in opt.param_groups], _momenta(opt)))
    return out


def _assert_schedules_equal(actual, expected):
    assert len(actual) == len(expected)
    for t, ((lrs, moms), (tlrs, tmoms)) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(lrs, tlrs, rtol=1e-6, atol=1e-15, err_msg=f"lr at step {t}")
        np.testing.assert_allclose(moms, tmoms, rtol=1e-6, atol=1e-15,
                                   err_msg=f"momentum at step {t}")


SCHEDULES = [
    ("MultiStepLR", dict(milestones=[3, 7, 7, 12], gamma=0.5), 16, "SGD", {}),
    ("ExponentialLR", dict(gamma=0.8), 12, "SGD", {}),
    ("LinearLR", dict(), 9, "SGD", {}),
    ("LinearLR", dict(start_factor=0.5, end_factor=0.1, total_iters=6), 10, "SGD", {}),
    ("LinearLR", dict(start_factor=0.25, total_iters=0), 4, "SGD", {}),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=20), 20, "SGD", dict(momentum=0.9)),
    ("OneCycleLR", dict(max_lr=[1.0, 0.5], epochs=4, steps_per_epoch=5, pct_start=0.25,
                        anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0),
     20, "Adam", {}),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=23, three_phase=True, base_momentum=0.8,
                        max_momentum=0.9), 23, "Adam", {}),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=10, cycle_momentum=False), 10, "Adagrad", {}),
]


@pytest.mark.parametrize("name,kwargs,steps,opt_name,opt_kwargs", SCHEDULES,
                         ids=[f"{s[0]}-{i}" for i, s in enumerate(SCHEDULES)])
def test_schedule_matches_torch(name, kwargs, steps, opt_name, opt_kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizers(torch, opt_name, **opt_kwargs)
    actual = _run_schedule(ours, getattr(lr_scheduler, name)(ours, **kwargs), steps)
    expected = _run_schedule(theirs, getattr(torch.optim.lr_scheduler, name)(theirs, **kwargs),
                             steps)
    _assert_schedules_equal(actual, expected)


def test_one_cycle_refuses_steps_past_total_steps():
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    sched = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=4)
    for _ in range(4):
        sched.step()
    with pytest.raises(ValueError, match="total steps is 4"):
        sched.step()


def _sequence(module, opt, which):
    """SequentialLR of ``which`` made in ``module`` (minidl's or torch's lr_scheduler)."""
    if which == "warmup-exponential":
        return module.SequentialLR(opt, [module.LinearLR(opt, start_factor=0.1, total_iters=4),
                                         module.ExponentialLR(opt, gamma=0.7)], milestones=[4])
    if which == "three":
        return module.SequentialLR(opt, [module.ExponentialLR(opt, gamma=0.5),
                                         module.MultiStepLR(opt, milestones=[2, 4], gamma=0.3),
                                         module.CosineAnnealingLR(opt, T_max=6, eta_min=0.001)],
                                   milestones=[3, 9])
    return module.SequentialLR(opt, [module.LinearLR(opt, start_factor=0.5, end_factor=0.25,
                                                     total_iters=3),
                                     module.StepLR(opt, step_size=2, gamma=0.5)], milestones=[0])


@pytest.mark.parametrize("which", ["warmup-exponential", "three", "milestone-0"])
def test_sequential_matches_torch(which):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizers(torch)
    actual = _run_schedule(ours, _sequence(lr_scheduler, ours, which), 18)
    expected = _run_schedule(theirs, _sequence(torch.optim.lr_scheduler, theirs, which), 18)
    _assert_schedules_equal(actual, expected)


PLATEAU_METRICS = [5.0, 4.0, 4.0, 3.9999, 4.1, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0, 2.0, 2.5, 2.5,
                   2.5, float("nan"), 2.5, 2.5, 2.5, 2.5, 2.5] + [1.0] * 14
PLATEAUS = [dict(), dict(patience=1), dict(patience=2, cooldown=2, factor=0.5),
            dict(patience=0, threshold=0.1, threshold_mode="abs", min_lr=[0.005, 0.01]),
            dict(mode="max", patience=1, threshold=0.01), dict(patience=0, min_lr=0.02, eps=0.0),
            dict(mode="max", patience=1, threshold_mode="abs", threshold=0.0, cooldown=1)]


@pytest.mark.parametrize("kwargs", PLATEAUS, ids=[str(k) for k in PLATEAUS])
def test_reduce_on_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizers(torch)
    metrics = PLATEAU_METRICS
    actual = _run_schedule(ours, lr_scheduler.ReduceLROnPlateau(ours, **kwargs),
                           len(metrics), metrics)
    expected = _run_schedule(theirs, torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kwargs),
                             len(metrics), metrics)
    _assert_schedules_equal(actual, expected)
    assert actual[-1][0] != actual[0][0]  # the lr did fall


SAVED_SCHEDULES = {
    "multistep": lambda o: lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.5),
    "linear": lambda o: lr_scheduler.LinearLR(o, start_factor=0.2, total_iters=6),
    "onecycle": lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=12, three_phase=True),
    "sequential": lambda o: _sequence(lr_scheduler, o, "three"),
    "plateau": lambda o: lr_scheduler.ReduceLROnPlateau(o, patience=1, cooldown=1),
}


@pytest.mark.parametrize("name", sorted(SAVED_SCHEDULES))
@pytest.mark.parametrize("how", ["state_dict", "checkpoint"])
def test_schedule_state_round_trip_continues(name, how, tmp_path):
    """Saved mid-way (with the optimizer) and restored into fresh objects, the rest of the
    schedule is the same; a checkpoint stores the scheduler's state as JSON."""
    metrics = [3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    plateau = name == "plateau"

    def make():
        model = nn.Linear(2, 1)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        return model, opt, SAVED_SCHEDULES[name](opt)

    def run(opt, sched, start, stop):
        lrs = []
        for t in range(start, stop):
            sched.step(metrics[t]) if plateau else sched.step()
            lrs.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        return lrs

    model, opt, sched = make()
    expected = run(opt, sched, 0, 12)
    model, opt, sched = make()
    run(opt, sched, 0, 5)
    if plateau:
        assert sched.state_dict()["best"] == 1.0
    model2, opt2, sched2 = make()
    if how == "state_dict":
        opt2.load_state_dict(opt.state_dict())
        sched2.load_state_dict(sched.state_dict())
    else:
        save_checkpoint(tmp_path / "ckpt.npz", model, opt, sched)
        load_checkpoint(tmp_path / "ckpt.npz", model2, opt2, sched2)
    np.testing.assert_allclose(run(opt2, sched2, 5, 12), expected[5:], rtol=1e-12)


def test_plateau_state_before_any_step_is_json_safe(tmp_path):
    model = nn.Linear(2, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = lr_scheduler.ReduceLROnPlateau(opt, mode="max")
    assert sched.state_dict()["best"] == "-inf"
    save_checkpoint(tmp_path / "ckpt.npz", model, opt, sched)
    fresh = lr_scheduler.ReduceLROnPlateau(opt, mode="max")
    fresh.best = 7.0
    load_checkpoint(tmp_path / "ckpt.npz", model, opt, fresh)
    assert fresh.best == -math.inf


@pytest.mark.parametrize("make,state,message", [
    (SAVED_SCHEDULES["plateau"], {"last_epoch": 1, "best": "big", "num_bad_epochs": 0,
                                  "cooldown_counter": 0}, "best"),
    (SAVED_SCHEDULES["plateau"], {"last_epoch": 1, "best": 1.0, "num_bad_epochs": -1,
                                  "cooldown_counter": 0}, "num_bad_epochs"),
    (SAVED_SCHEDULES["plateau"], {"last_epoch": 1}, "expected a dict"),
    (SAVED_SCHEDULES["sequential"], {"last_epoch": 1, "schedulers": []}, "schedulers"),
    (SAVED_SCHEDULES["sequential"],
     {"last_epoch": 1, "schedulers": [{"last_epoch": 0, "base_lrs": [0.1]},
                                      {"last_epoch": -3, "base_lrs": [0.1]},
                                      {"last_epoch": 0, "base_lrs": [0.1]}]},
     r"schedulers\[1\].*last_epoch"),
])
def test_schedule_load_state_dict_refuses_bad_state(make, state, message):
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    sched = make(opt)
    before = sched.state_dict()
    with pytest.raises(ValueError, match=message):
        sched.load_state_dict(state)
    assert sched.state_dict() == before


def test_lr_scheduler_module_path():
    import minidl.optim.lr_scheduler as module
    for name in ("ReduceLROnPlateau", "MultiStepLR", "ExponentialLR", "OneCycleLR", "LinearLR",
                 "SequentialLR"):
        assert getattr(module, name) is getattr(minidl.optim.lr_scheduler, name) \
            is getattr(optim, name)


# ---------------------------------------------------------------- cuda kernels

CUDA_OPTIMIZERS = [
    (optim.Adadelta, dict(lr=0.5, weight_decay=0.1)),
    (optim.Adadelta, dict(maximize=True)),
    (optim.Adamax, dict(lr=0.05, weight_decay=0.1)),
    (optim.Adamax, dict(lr=0.05, maximize=True)),
    (optim.NAdam, dict(lr=0.05, weight_decay=0.1)),
    (optim.NAdam, dict(lr=0.05, weight_decay=0.1, decoupled_weight_decay=True, maximize=True)),
]


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("opt_cls,kwargs", CUDA_OPTIMIZERS,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(CUDA_OPTIMIZERS)])
def test_cuda_step_matches_cpu(opt_cls, kwargs):
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5).astype(np.float32)
    grads = rng.standard_normal((3, 5)).astype(np.float32)
    results = {}
    for device in ("cpu", "cuda"):
        w = nn.Parameter(w0.copy()).to(device)
        opt = opt_cls([w], **kwargs)
        for g in grads:
            w.grad = minidl.tensor(g, device=device)
            opt.step()
        assert w.device == device
        results[device] = (w.detach().cpu().numpy(), opt.state_dict()["state"][0])
    np.testing.assert_allclose(results["cuda"][0], results["cpu"][0], rtol=1e-5, atol=1e-6)
    for key, value in results["cpu"][1].items():
        np.testing.assert_allclose(results["cuda"][1][key], value, rtol=1e-5, atol=1e-6,
                                   err_msg=key)


@pytest.mark.cuda
@pytest.mark.skipif(not minidl.cuda.is_available(), reason="CUDA is not available")
def test_lbfgs_on_cuda_parameters_matches_cpu():
    out = {}
    for device in ("cpu", "cuda"):
        a, b = nn.Parameter(A0.copy()).to(device), nn.Parameter(B0.copy()).to(device)
        opt = optim.LBFGS([a, b], lr=0.1, max_iter=3)

        def closure():
            opt.zero_grad()
            loss = _rosenbrock(a, b)
            loss.backward()
            return loss

        opt.step(closure)
        assert a.device == device
        out[device] = np.concatenate([a.detach().cpu().numpy(), b.detach().cpu().numpy()])
    np.testing.assert_allclose(out["cuda"], out["cpu"], rtol=1e-10)
