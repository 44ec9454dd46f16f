'''PyTorch programs run on minidl with only their imports changed (issue 12).

Each program below is written as a PyTorch user writes one (in the style of pytorch/examples
mnist and regression and of the beginner quickstart tutorial), with ``import torch`` lines.
``rewrite_imports`` makes the mechanical import rewrite, and the result runs on a tiny synthetic
data set written here as IDX files; the loss must fall. Then torch.save / torch.load.
'''
import io
import re
import sys

import numpy as np
import pytest

import minidl
from minidl.data import write_idx


def rewrite_imports(source):
    """``import torch`` -> ``import minidl as torch``; ``torch.X`` and ``torchvision.X`` module
    paths in import lines -> ``minidl.X`` and ``minidl.vision.X``. Nothing else changes."""
    def module(name):
        return re.sub(r"^torchvision\b", "minidl.vision", re.sub(r"^torch\b", "minidl", name))

    lines = []
    for line in source.splitlines(keepends=True):
        found = re.match(r"(\s*)from\s+((?:torch|torchvision)(?:\.\w+)*)\s+import\s+(.*\n?)", line)
        if found:
            indent, name, rest = found.groups()
            line = f"{indent}from {module(name)} import {rest}"
        found = re.match(r"(\s*)import\s+((?:torch|torchvision)(?:\.\w+)*)(\s+as\s+\w+)?(\s*)$",
                         line)
        if found:
            indent, name, alias, end = found.groups()
            top = name.split(".")[0]
            if alias:
                line = f"{indent}import {module(name)}{alias}{end}"
            elif name == top:
                line = f"{indent}import {module(name)} as {top}{end}"
            else:
                line = f"{indent}import {module(name)}, {module(top)} as {top}{end}"
        lines.append(line)
    return "".join(lines)


def test_rewrite_imports():
    source = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
              "from torch import nn\nfrom torch.utils.data import DataLoader, Dataset\n"
              "from torchvision import datasets, transforms\n"
              "from torchvision.transforms import ToTensor\nimport torchvision\n"
              "import torch.optim\nx = torch.tensor([1])  # import torch stays in code\n")
    assert rewrite_imports(source) == (
        "import minidl as torch\nimport minidl.nn as nn\nimport minidl.nn.functional as F\n"
        "from minidl import nn\nfrom minidl.utils.data import DataLoader, Dataset\n"
        "from minidl.vision import datasets, transforms\n"
        "from minidl.vision.transforms import ToTensor\nimport minidl.vision as torchvision\n"
        "import minidl.optim, minidl as torch\nx = torch.tensor([1])  # import torch stays in code\n")


def write_digits(directory, n_train=320, n_test=64, seed=0):
    """Learnable 28x28 images: class k has a bright bar at rows 2k+3..2k+5, plus noise."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for image, k in zip(images, labels):
            image[2 * k + 3:2 * k + 6, 4:24] = 230
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)


def run_program(source, name, argv, tmp_path, monkeypatch, capsys):
    """exec the rewritten program as __main__ in tmp_path; its printed output."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name] + argv)
    exec(compile(rewrite_imports(source), name, "exec"), {"__name__": "__main__"})
    return capsys.readouterr().out


def numbers_after(label, text):
    return [float(v) for v in re.findall(label + r"\s*([-+0-9.e]+)", text)]


MNIST_PROGRAM = '''
import argparse
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torchvision import datasets, transforms
from torch.optim.lr_scheduler import StepLR


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, 1)
        self.conv2 = nn.Conv2d(8, 16, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(2304, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)
        loss.backward()
        optimizer.step()
        if batch_idx % args.log_interval == 0:
            print('Train Epoch: {} [{}/{} ({:.0f}%)]\\tLoss: {:.6f}'.format(
                epoch, batch_idx * len(data), len(train_loader.dataset),
                100. * batch_idx / len(train_loader), loss.item()))


def test(model, device, test_loader):
    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction='sum').item()
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    test_loss /= len(test_loader.dataset)
    print('Test set: Average loss: {:.4f}, Accuracy: {}/{} ({:.0f}%)'.format(
        test_loss, correct, len(test_loader.dataset), 100. * correct / len(test_loader.dataset)))


def main():
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch-size', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=14)
    parser.add_argument('--lr', type=float, default=1.0)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--no-accel', action='store_true')
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--log-interval', type=int, default=10)
    parser.add_argument('--save-model', action='store_true')
    args = parser.parse_args()

    use_accel = not args.no_accel and torch.accelerator.is_available()
    torch.manual_seed(args.seed)
    device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")

    train_kwargs = {'batch_size': args.batch_size}
    test_kwargs = {'batch_size': args.test_batch_size}
    if use_accel:
        accel_kwargs = {'num_workers': 1, 'pin_memory': True, 'shuffle': True}
        train_kwargs.update(accel_kwargs)
        test_kwargs.update(accel_kwargs)
    train_kwargs['shuffle'] = True

    transform = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize((0.1307,), (0.3081,))
    ])
    dataset1 = datasets.MNIST('../data', train=True, download=True, transform=transform)
    dataset2 = datasets.MNIST('../data', train=False, transform=transform)
    train_loader = torch.utils.data.DataLoader(dataset1, **train_kwargs)
    test_loader = torch.utils.data.DataLoader(dataset2, **test_kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(model, device, test_loader)
        scheduler.step()

    if args.save_model:
        torch.save(model.state_dict(), "mnist_cnn.pt")


if __name__ == '__main__':
    main()
'''


def test_mnist_example(tmp_path, monkeypatch, capsys):
    write_digits(tmp_path / "data" / "MNIST" / "raw")
    (tmp_path / "run").mkdir()
    out = run_program(MNIST_PROGRAM, "mnist_main.py",
                      ["--epochs", "3", "--batch-size", "32", "--log-interval", "3", "--no-accel",
                       "--save-model"], tmp_path / "run", monkeypatch, capsys)
    losses = numbers_after(r"Average loss:", out)
    assert len(losses) == 3 and losses[-1] < 0.5 * losses[0], out
    accuracy = numbers_after(r"Accuracy: \d+/64 \(", out)
    assert accuracy[-1] >= 80, out
    state = minidl.load(tmp_path / "run" / "mnist_cnn.pt")
    assert state["conv1.weight"].shape == (8, 1, 3, 3)


QUICKSTART_PROGRAM = '''
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision import datasets
from torchvision.transforms import ToTensor

training_data = datasets.FashionMNIST(root="data", train=True, download=True, transform=ToTensor())
test_data = datasets.FashionMNIST(root="data", train=False, download=True, transform=ToTensor())

batch_size = 32
train_dataloader = DataLoader(training_data, batch_size=batch_size, shuffle=True)
test_dataloader = DataLoader(test_data, batch_size=batch_size)

for X, y in test_dataloader:
    print(f"Shape of X [N, C, H, W]: {X.shape}")
    print(f"Shape of y: {y.shape} {y.dtype}")
    break

device = torch.accelerator.current_accelerator().type if torch.accelerator.is_available() else "cpu"
device = "cpu"  # the CUDA simulator would be too slow for this test
print(f"Using {device} device")


class NeuralNetwork(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(
            nn.Linear(28 * 28, 64),
            nn.ReLU(),
            nn.Linear(64, 64),
            nn.ReLU(),
            nn.Linear(64, 10),
        )

    def forward(self, x):
        x = self.flatten(x)
        logits = self.linear_relu_stack(x)
        return logits


model = NeuralNetwork().to(device)
print(model)

loss_fn = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=2e-1)


def train(dataloader, model, loss_fn, optimizer):
    size = len(dataloader.dataset)
    model.train()
    for batch, (X, y) in enumerate(dataloader):
        X, y = X.to(device), y.to(device)
        pred = model(X)
        loss = loss_fn(pred, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if batch % 5 == 0:
            loss, current = loss.item(), (batch + 1) * len(X)
            print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")


def test(dataloader, model, loss_fn):
    size = len(dataloader.dataset)
    num_batches = len(dataloader)
    model.eval()
    test_loss, correct = 0, 0
    with torch.no_grad():
        for X, y in dataloader:
            X, y = X.to(device), y.to(device)
            pred = model(X)
            test_loss += loss_fn(pred, y).item()
            correct += (pred.argmax(1) == y).type(torch.float).sum().item()
    test_loss /= num_batches
    correct /= size
    print(f"Test Error: \\n Accuracy: {(100*correct):>0.1f}%, Avg loss: {test_loss:>8f} \\n")


epochs = 4
for t in range(epochs):
    print(f"Epoch {t+1}\\n-------------------------------")
    train(train_dataloader, model, loss_fn, optimizer)
    test(test_dataloader, model, loss_fn)
print("Done!")

torch.save(model.state_dict(), "model.pth")
model = NeuralNetwork().to(device)
model.load_state_dict(torch.load("model.pth", weights_only=True))

classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
model.eval()
x, y = test_data[0][0], test_data[0][1]
with torch.no_grad():
    x = x.to(device)
    pred = model(x)
    predicted, actual = classes[pred[0].argmax(0)], classes[y]
    print(f'Predicted: "{predicted}", Actual: "{actual}"')
'''


def test_quickstart_tutorial(tmp_path, monkeypatch, capsys):
    write_digits(tmp_path / "data" / "FashionMNIST" / "raw", seed=1)
    out = run_program(QUICKSTART_PROGRAM, "quickstart_tutorial.py", [], tmp_path, monkeypatch,
                      capsys)
    assert "Shape of X [N, C, H, W]: (32, 1, 28, 28)" in out, out
    losses = numbers_after(r"Avg loss:", out)
    assert len(losses) == 4 and losses[-1] < 0.5 * losses[0], out
    assert numbers_after(r"Accuracy:", out)[-1] >= 80
    assert re.search(r'Predicted: "[^"]+", Actual: "[^"]+"', out), out


REGRESSION_PROGRAM = '''
from itertools import count

import torch
import torch.nn.functional as F

POLY_DEGREE = 3
W_target = torch.randn(POLY_DEGREE, 1) * 2
b_target = torch.randn(1) * 2


def make_features(x):
    """A matrix with columns [x, x^2, x^3]."""
    x = x.unsqueeze(1)
    return torch.cat([x ** i for i in range(1, POLY_DEGREE + 1)], 1)


def f(x):
    return x.mm(W_target) + b_target.item()


def poly_desc(W, b):
    result = 'y = '
    for i, w in enumerate(W):
        result += '{:+.2f} x^{} '.format(w, i + 1)
    result += '{:+.2f}'.format(b[0])
    return result


def get_batch(batch_size=32):
    random = torch.randn(batch_size)
    x = make_features(random)
    return x, f(x)


fc = torch.nn.Linear(W_target.size(0), 1)

for batch_idx in count(1):
    batch_x, batch_y = get_batch()
    fc.zero_grad()
    output = F.smooth_l1_loss(fc(batch_x), batch_y)
    loss = output.item()
    if batch_idx == 1:
        print('First loss: {:.6f}'.format(loss))
    output.backward()
    with torch.no_grad():
        for param in fc.parameters():
            param.add_(-0.02 * param.grad)
    if loss < 1e-2 or batch_idx == 2000:
        break

print('Loss: {:.6f} after {} batches'.format(loss, batch_idx))
print('==> Learned function:\\t' + poly_desc(fc.weight.view(-1), fc.bias))
print('==> Actual function:\\t' + poly_desc(W_target.view(-1), b_target))
'''


def test_regression_example(tmp_path, monkeypatch, capsys):
    minidl.manual_seed(0)
    out = run_program(REGRESSION_PROGRAM, "regression_main.py", [], tmp_path, monkeypatch, capsys)
    first, last = numbers_after("First loss:", out)[0], numbers_after(r"Loss:", out)[0]
    assert last < 0.2 * first, out
    assert "==> Learned function:\ty = " in out


# ------------------------------------------------------------ torch.save / torch.load

def _trained():
    model = minidl.nn.Sequential(minidl.nn.Linear(3, 4), minidl.nn.ReLU(), minidl.nn.Linear(4, 2))
    optimizer = minidl.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(2):
        optimizer.zero_grad()
        model(minidl.randn(5, 3)).sum().backward()
        optimizer.step()
    return model, optimizer


@pytest.mark.parametrize("to_buffer", [False, True])
def test_save_load_nested_checkpoint(tmp_path, to_buffer):
    model, optimizer = _trained()
    checkpoint = {"epoch": 7, "model_state_dict": model.state_dict(),
                  "optimizer_state_dict": optimizer.state_dict(), "loss": 0.25,
                  "best": float("inf"), "tag": "run-1", "note": None,
                  "history": [1.5, (2, 3)], "lengths": {3: np.int64(4)}, "w": minidl.ones(2)}
    if to_buffer:
        target = io.BytesIO()
        minidl.save(checkpoint, target)
        target.seek(0)
    else:
        target = tmp_path / "checkpoint.tar"
        minidl.save(checkpoint, target)
    back = minidl.load(target, weights_only=True)
    assert back["epoch"] == 7 and back["loss"] == 0.25 and back["best"] == float("inf")
    assert back["tag"] == "run-1" and back["note"] is None
    assert back["history"] == [1.5, (2, 3)]
    assert back["lengths"] == {3: 4} and isinstance(back["lengths"][3], np.int64)
    assert isinstance(back["w"], minidl.Tensor) and back["w"].tolist() == [1.0, 1.0]
    fresh, fresh_optimizer = _trained()
    fresh.load_state_dict(back["model_state_dict"])
    fresh_optimizer.load_state_dict(back["optimizer_state_dict"])
    x = minidl.randn(4, 3)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)
    for a, b in ((fresh, fresh_optimizer), (model, optimizer)):   # both take the same step
        b.zero_grad()
        a(x).sum().backward()
        b.step()
    for p, q in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_save_refuses_whole_modules_and_objects(tmp_path):
    model, optimizer = _trained()
    with pytest.raises(TypeError, match=r"never pickles.*state_dict\(\)"):
        minidl.save(model, tmp_path / "model.pt")
    with pytest.raises(TypeError, match=r"\['opt'\] is a Adam.*state_dict"):
        minidl.save({"opt": optimizer}, tmp_path / "x.pt")
    with pytest.raises(TypeError, match="set"):
        minidl.save({"a": {1, 2}}, tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_load_refuses_a_structure_pointing_nowhere(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, __structure__=np.array('{"dict": [["w", {"tensor": "array9"}]]}'))
    with pytest.raises(ValueError, match="__structure__"):
        minidl.load(path)
    np.savez(path, __structure__=np.array('{"list": []}'), extra=np.ones(2))
    with pytest.raises(ValueError, match="extra"):
        minidl.load(path)
