"""Recurrent layers against PyTorch on the CPU: forward + backward, same process, interleaved.

    python scripts/bench_rnn.py            # median of 20 runs each
    python scripts/bench_rnn.py --quick

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
from bench_common import print_table, time_interleaved  # noqa: E402


def bench_rnn(repeats=20, seq_len=50, batch=64, input_size=64, hidden_size=128):
    """Rows (name, minidl_s, torch_s, ratio) for RNN, LSTM and GRU forward + backward."""
    import torch
    from minidl import nn

    torch.set_num_threads(numba.get_num_threads())
    x = np.random.default_rng(0).standard_normal((seq_len, batch, input_size)).astype(np.float32)
    rows = []
    for name, layer, reference in (("RNN tanh", nn.RNN, torch.nn.RNN), ("LSTM", nn.LSTM, torch.nn.LSTM),
                                   ("GRU", nn.GRU, torch.nn.GRU)):
        t_model = reference(input_size, hidden_size)
        model = layer(input_size, hidden_size)
        model.load_state_dict({k: v.detach().numpy() for k, v in t_model.state_dict().items()})
        m_input = minidl.tensor(x, requires_grad=True)
        t_input = torch.tensor(x, requires_grad=True)

        def minidl_step():
            output, _ = model(m_input)
            output.sum().backward()

        def torch_step():
            output, _ = t_model(t_input)
            output.sum().backward()

        medians = time_interleaved({"minidl": minidl_step, "torch": torch_step}, repeats, warmup=2)
        rows.append((f"{name} fwd+bwd (T={seq_len}, N={batch}, I={input_size}, H={hidden_size})",
                     medians["minidl"], medians["torch"], medians["minidl"] / medians["torch"]))
    return rows


def main_section(quick=False):
    rows = bench_rnn(repeats=7 if quick else 20)
    print_table([dict(benchmark=name, minidl_s=m, torch_s=t, ratio=r) for name, m, t, r in rows],
                "Recurrent layers, forward + backward")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    print(f"minidl {minidl.__version__}, numba {numba.__version__} ({numba.get_num_threads()} threads)")
    main_section(args.quick)
