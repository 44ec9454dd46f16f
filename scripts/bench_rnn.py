"""Recurrent layers against PyTorch on the CPU: forward + backward, interleaved in one process (and
--alone: each library in a process of its own).

    python scripts/bench_rnn.py            # median of 20 runs each
    python scripts/bench_rnn.py --quick [--alone]

One layer, sequence 50, batch 64, input 64, hidden 128, float32, loss = output.sum(); both
libraries get the same weights and input and the same thread count. ratio = minidl / torch.
"""
import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import numba  # noqa: E402
import numpy as np  # noqa: E402

import minidl  # noqa: E402
from bench_common import measuring_ways, print_table, time_contestants  # noqa: E402


LAYERS = {"RNN tanh": "RNN", "LSTM": "LSTM", "GRU": "GRU"}


def rnn_steps(layer, seq_len=50, batch=64, input_size=64, hidden_size=128, only=None):
    """{contestant: step}: forward + backward of one ``layer`` (a key of LAYERS) in minidl and in
    PyTorch, with the same weights and input (``only``: that contestant alone)."""
    import torch
    from minidl import nn

    torch.set_num_threads(numba.get_num_threads())
    x = np.random.default_rng(0).standard_normal((seq_len, batch, input_size)).astype(np.float32)
    torch.manual_seed(0)
    t_model = getattr(torch.nn, LAYERS[layer])(input_size, hidden_size)
    model = getattr(nn, LAYERS[layer])(input_size, hidden_size)
    model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
    m_input = minidl.tensor(x, requires_grad=True)
    t_input = torch.tensor(x, requires_grad=True)

    def minidl_step():
        output, _ = model(m_input)
        output.sum().backward()

    def torch_step():
        output, _ = t_model(t_input)
        output.sum().backward()

    steps = {"minidl": minidl_step, "torch": torch_step}
    return steps if only is None else {only: steps[only]}


# calls before the timed ones: in a fresh process both libraries' LSTM steps 2-6 took 1.1-1.3x
# their steady time (minidl 7.5-8.4 ms against 6.3-6.6; PyTorch 7.5-9.5 against 6.3-6.9)
WARMUP = 6


def bench_rnn(repeats=20, seq_len=50, batch=64, input_size=64, hidden_size=128, alone=False):
    """Rows (name, minidl_s, torch_s, ratio) for RNN, LSTM and GRU forward + backward; ``alone``:
    each library timed in a process of its own."""
    rows = []
    for layer in LAYERS:
        medians = time_contestants(rnn_steps, (layer, seq_len, batch, input_size, hidden_size),
                                   ("minidl", "torch"), repeats, alone, warmup=WARMUP)
        rows.append((f"{layer} fwd+bwd (T={seq_len}, N={batch}, I={input_size}, H={hidden_size})",
                     medians["minidl"], medians["torch"], medians["minidl"] / medians["torch"]))
    return rows


def main_section(quick=False, alone=False):
    for how, apart in measuring_ways(alone):
        rows = bench_rnn(repeats=15 if quick else 30, alone=apart)
        print_table([dict(benchmark=name, minidl_s=m, torch_s=t, ratio=r) for name, m, t, r in rows],
                    f"Recurrent layers, forward + backward, {how}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--alone", action="store_true", help="also time each library in its own process")
    args = parser.parse_args()
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads)")
    main_section(args.quick, args.alone)
