'''PyTorch programs run on minidl with only their imports changed (issue 12).

Each program below is written as a PyTorch user writes one (in the style of pytorch/examples
mnist, regression, vae, mnist_rnn and word_language_model and of the beginner quickstart and blitz
neural-network tutorials), with ``import torch`` lines.
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
    for param in fc.parameters():
        param.data.add_(-0.02 * param.grad)
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


VAE_PROGRAM = '''
import argparse
import torch
import torch.utils.data
from torch import nn, optim
from torch.nn import functional as F
from torchvision import datasets, transforms
from torchvision.utils import save_image

parser = argparse.ArgumentParser(description='VAE MNIST Example')
parser.add_argument('--batch-size', type=int, default=128)
parser.add_argument('--epochs', type=int, default=10)
parser.add_argument('--no-accel', action='store_true')
parser.add_argument('--seed', type=int, default=1)
args = parser.parse_args()

use_accel = not args.no_accel and torch.accelerator.is_available()
torch.manual_seed(args.seed)
device = torch.accelerator.current_accelerator() if use_accel else torch.device("cpu")

train_loader = torch.utils.data.DataLoader(
    datasets.MNIST('../data', train=True, download=True, transform=transforms.ToTensor()),
    batch_size=args.batch_size, shuffle=True)
test_loader = torch.utils.data.DataLoader(
    datasets.MNIST('../data', train=False, transform=transforms.ToTensor()),
    batch_size=args.batch_size, shuffle=False)


class VAE(nn.Module):
    def __init__(self):
        super(VAE, self).__init__()
        self.fc1 = nn.Linear(784, 64)
        self.fc21 = nn.Linear(64, 8)
        self.fc22 = nn.Linear(64, 8)
        self.fc3 = nn.Linear(8, 64)
        self.fc4 = nn.Linear(64, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


model = VAE().to(device)
optimizer = optim.Adam(model.parameters(), lr=3e-3)


def loss_function(recon_x, x, mu, logvar):
    BCE = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    KLD = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return BCE + KLD


def train(epoch):
    model.train()
    train_loss = 0
    for batch_idx, (data, _) in enumerate(train_loader):
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        loss = loss_function(recon_batch, data, mu, logvar)
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    print('====> Epoch: {} Average loss: {:.4f}'.format(epoch, train_loss / len(train_loader.dataset)))


def test(epoch):
    model.eval()
    test_loss = 0
    with torch.no_grad():
        for i, (data, _) in enumerate(test_loader):
            data = data.to(device)
            recon_batch, mu, logvar = model(data)
            test_loss += loss_function(recon_batch, data, mu, logvar).item()
            if i == 0:
                n = min(data.size(0), 8)
                comparison = torch.cat([data[:n], recon_batch.view(args.batch_size, 1, 28, 28)[:n]])
                save_image(comparison.cpu(), 'results/reconstruction_' + str(epoch) + '.png', nrow=n)
    test_loss /= len(test_loader.dataset)
    print('====> Test set loss: {:.4f}'.format(test_loss))


if __name__ == "__main__":
    for epoch in range(1, args.epochs + 1):
        train(epoch)
        test(epoch)
        with torch.no_grad():
            sample = model.decode(torch.randn(16, 8).to(device)).cpu()
            save_image(sample.view(16, 1, 28, 28), 'results/sample_' + str(epoch) + '.png')
'''


def test_vae_example(tmp_path, monkeypatch, capsys):
    write_digits(tmp_path / "data" / "MNIST" / "raw", n_train=256, n_test=64, seed=2)
    (tmp_path / "run" / "results").mkdir(parents=True)
    out = run_program(VAE_PROGRAM, "vae_main.py", ["--epochs", "3", "--batch-size", "32", "--no-accel"],
                      tmp_path / "run", monkeypatch, capsys)
    losses = numbers_after(r"Test set loss:", out)
    assert len(losses) == 3 and losses[-1] < 0.9 * losses[0] and losses[1] < losses[0], out
    png = (tmp_path / "run" / "results" / "reconstruction_3.png").read_bytes()
    assert png.startswith(b"\x89PNG") and (tmp_path / "run" / "results" / "sample_3.png").exists()


MNIST_RNN_PROGRAM = '''
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.optim.lr_scheduler import StepLR
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.rnn = nn.LSTM(input_size=28, hidden_size=32, batch_first=True)
        self.batchnorm = nn.BatchNorm1d(32)
        self.dropout1 = nn.Dropout2d(0.25)
        self.dropout2 = nn.Dropout2d(0.5)
        self.fc1 = nn.Linear(32, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, input):
        input = input.reshape(-1, 28, 28)
        output, hidden = self.rnn(input)
        output = output[:, -1, :]
        output = self.batchnorm(output)
        output = self.dropout1(output)
        output = F.relu(self.fc1(output))
        output = self.dropout2(output)
        return F.log_softmax(self.fc2(output), dim=1)


def train(args, model, device, train_loader, optimizer, epoch):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        loss = F.nll_loss(model(data), target)
        loss.backward()
        optimizer.step()


def test(args, model, device, test_loader):
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
    parser = argparse.ArgumentParser(description='PyTorch MNIST Example using RNN')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--test-batch-size', type=int, default=1000)
    parser.add_argument('--epochs', type=int, default=14)
    parser.add_argument('--lr', type=float, default=0.1)
    parser.add_argument('--gamma', type=float, default=0.7)
    parser.add_argument('--accel', action='store_true')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()

    device = torch.accelerator.current_accelerator() if args.accel else torch.device("cpu")
    torch.manual_seed(args.seed)
    kwargs = {'num_workers': 1, 'pin_memory': True} if args.accel else {}
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_loader = torch.utils.data.DataLoader(
        datasets.MNIST('../data', train=True, download=True, transform=transform),
        batch_size=args.batch_size, shuffle=True, **kwargs)
    test_loader = torch.utils.data.DataLoader(
        datasets.MNIST('../data', train=False, transform=transform),
        batch_size=args.test_batch_size, shuffle=True, **kwargs)

    model = Net().to(device)
    optimizer = optim.Adadelta(model.parameters(), lr=args.lr)
    scheduler = StepLR(optimizer, step_size=1, gamma=args.gamma)
    for epoch in range(1, args.epochs + 1):
        train(args, model, device, train_loader, optimizer, epoch)
        test(args, model, device, test_loader)
        scheduler.step()
    torch.save(model.state_dict(), "mnist_rnn.pt")


if __name__ == '__main__':
    main()
'''


def test_mnist_rnn_example(tmp_path, monkeypatch, capsys):
    write_digits(tmp_path / "data" / "MNIST" / "raw", n_train=256, n_test=64, seed=3)
    (tmp_path / "run").mkdir()
    with pytest.warns(UserWarning, match="2-D input to dropout2d"):   # as on PyTorch
        out = run_program(MNIST_RNN_PROGRAM, "mnist_rnn_main.py",
                          ["--epochs", "3", "--batch-size", "32", "--lr", "1.0", "--gamma", "0.9"],
                          tmp_path / "run", monkeypatch, capsys)
    losses = numbers_after(r"Average loss:", out)
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.1, out
    assert minidl.load(tmp_path / "run" / "mnist_rnn.pt")["rnn.weight_ih_l0"].shape == (128, 28)


NEURAL_NETWORKS_TUTORIAL = '''
import torch
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super(Net, self).__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.view(-1, self.num_flat_features(x))
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)

    def num_flat_features(self, x):
        num_features = 1
        for s in x.size()[1:]:
            num_features *= s
        return num_features


net = Net()
print(net)
params = list(net.parameters())
print(len(params), params[0].size())

input = torch.randn(1, 1, 32, 32)
out = net(input)
net.zero_grad()
out.backward(torch.randn(1, 10))

target = torch.arange(1, 11).view(1, -1)
criterion = nn.MSELoss()
loss = criterion(net(input), target)
print(loss.grad_fn)
print(loss.grad_fn.next_functions[0][0])
print(loss.grad_fn.next_functions[0][0].next_functions[0][0])

net.zero_grad()
print('conv1.bias.grad before backward', net.conv1.bias.grad)
loss.backward()
print('conv1.bias.grad after backward', net.conv1.bias.grad.size())

import torch.optim as optim

optimizer = optim.SGD(net.parameters(), lr=0.005)
for step in range(30):
    optimizer.zero_grad()
    output = net(input)
    loss = criterion(output, target)
    loss.backward()
    optimizer.step()
    print('step', step, 'loss', loss.item())
'''


def test_neural_networks_tutorial(tmp_path, monkeypatch, capsys):
    minidl.manual_seed(0)
    out = run_program(NEURAL_NETWORKS_TUTORIAL, "neural_networks_tutorial.py", [], tmp_path,
                      monkeypatch, capsys)
    assert "10 minidl.Size([6, 1, 5, 5])" in out and "before backward None" in out, out
    assert "after backward minidl.Size([6])" in out, out
    losses = numbers_after("loss", out)
    assert len(losses) == 30 and min(losses[-5:]) < 0.5 * losses[0], out


WORD_LM_DATA = '''
import os
import torch


class Dictionary(object):
    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word):
        if word not in self.word2idx:
            self.idx2word.append(word)
            self.word2idx[word] = len(self.idx2word) - 1
        return self.word2idx[word]

    def __len__(self):
        return len(self.idx2word)


class Corpus(object):
    def __init__(self, path):
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(path, 'train.txt'))
        self.valid = self.tokenize(os.path.join(path, 'valid.txt'))

    def tokenize(self, path):
        with open(path, 'r', encoding="utf8") as f:
            idss = []
            for line in f:
                ids = [self.dictionary.add_word(word) for word in line.split() + ['<eos>']]
                idss.append(torch.tensor(ids).type(torch.int64))
        return torch.cat(idss)
'''

WORD_LM_MODEL = '''
import math
import torch
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.5):
        super(RNNModel, self).__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.decoder.out_features)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == 'LSTM':
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


class PositionalEncoding(nn.Module):
    def __init__(self, d_model, dropout=0.1, max_len=500):
        super(PositionalEncoding, self).__init__()
        self.dropout = nn.Dropout(p=dropout)
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len, dtype=torch.float).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe.unsqueeze(0).transpose(0, 1))

    def forward(self, x):
        return self.dropout(x + self.pe[:x.size(0), :])


class TransformerModel(nn.Transformer):
    def __init__(self, ntoken, ninp, nhead, nhid, nlayers, dropout=0.5):
        super(TransformerModel, self).__init__(d_model=ninp, nhead=nhead, dim_feedforward=nhid,
                                               num_encoder_layers=nlayers)
        self.src_mask = None
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        self.input_emb = nn.Embedding(ntoken, ninp)
        self.ninp = ninp
        self.decoder = nn.Linear(ninp, ntoken)

    def forward(self, src):
        if self.src_mask is None or self.src_mask.size(0) != len(src):
            self.src_mask = torch.log(torch.tril(torch.ones(len(src), len(src)))).to(src.device)
        src = self.pos_encoder(self.input_emb(src) * math.sqrt(self.ninp))
        output = self.decoder(self.encoder(src, mask=self.src_mask))
        return F.log_softmax(output, dim=-1)
'''

WORD_LM_MAIN = '''
import argparse
import math
import torch
import torch.nn as nn

import data
import model

parser = argparse.ArgumentParser(description='PyTorch RNN/Transformer Language Model')
parser.add_argument('--data', type=str, default='./data')
parser.add_argument('--model', type=str, default='LSTM')
parser.add_argument('--emsize', type=int, default=200)
parser.add_argument('--nhid', type=int, default=200)
parser.add_argument('--nlayers', type=int, default=2)
parser.add_argument('--lr', type=float, default=20)
parser.add_argument('--clip', type=float, default=0.25)
parser.add_argument('--epochs', type=int, default=40)
parser.add_argument('--batch_size', type=int, default=20)
parser.add_argument('--bptt', type=int, default=35)
parser.add_argument('--dropout', type=float, default=0.2)
parser.add_argument('--nhead', type=int, default=2)
parser.add_argument('--seed', type=int, default=1111)
parser.add_argument('--use-optimizer', action='store_true')
args = parser.parse_args()
torch.manual_seed(args.seed)
device = torch.device("cpu")

corpus = data.Corpus(args.data)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous().to(device)


eval_batch_size = 10
train_data = batchify(corpus.train, args.batch_size)
val_data = batchify(corpus.valid, eval_batch_size)
ntokens = len(corpus.dictionary)
if args.model == 'Transformer':
    model = model.TransformerModel(ntokens, args.emsize, args.nhead, args.nhid, args.nlayers,
                                   args.dropout).to(device)
else:
    model = model.RNNModel(args.model, ntokens, args.emsize, args.nhid, args.nlayers, args.dropout).to(device)
print('parameters:', sum(p.numel() for p in model.parameters()))
criterion = nn.NLLLoss()
if args.use_optimizer:
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].view(-1)


def evaluate(data_source):
    model.eval()
    total_loss = 0.
    if args.model != 'Transformer':
        hidden = model.init_hidden(eval_batch_size)
    with torch.no_grad():
        for i in range(0, data_source.size(0) - 1, args.bptt):
            data, targets = get_batch(data_source, i)
            if args.model == 'Transformer':
                output = model(data).view(-1, ntokens)
            else:
                output, hidden = model(data, hidden)
                hidden = repackage_hidden(hidden)
            total_loss += len(data) * criterion(output, targets).item()
    return total_loss / (len(data_source) - 1)


def train():
    model.train()
    if args.model != 'Transformer':
        hidden = model.init_hidden(args.batch_size)
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        if args.use_optimizer:
            optimizer.zero_grad()
        else:
            model.zero_grad()
        if args.model == 'Transformer':
            output = model(data).view(-1, ntokens)
        else:
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        if args.use_optimizer:
            optimizer.step()
        else:
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)


lr = args.lr
best_val_loss = None
for epoch in range(1, args.epochs + 1):
    train()
    val_loss = evaluate(val_data)
    print('| end of epoch {:3d} | valid loss {:5.2f} | valid ppl {:8.2f}'.format(
        epoch, val_loss, math.exp(val_loss)))
    if not best_val_loss or val_loss < best_val_loss:
        torch.save(model.state_dict(), 'model.pt')
        best_val_loss = val_loss
    else:
        lr /= 4.0
'''


def write_corpus(directory, n_words=16, seed=0):
    """Lines of words from a first-order Markov chain (two likely successors per word)."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{i}" for i in range(n_words)]
    successors = rng.integers(0, n_words, (n_words, 2))
    directory.mkdir(parents=True)
    word = 0
    for split, lines in (("train", 500), ("valid", 40)):
        text = []
        for _ in range(lines):
            words = []
            for _ in range(10):
                word = successors[word, rng.integers(2)] if rng.random() < 0.9 else rng.integers(n_words)
                words.append(vocabulary[word])
            text.append(" ".join(words))
        (directory / f"{split}.txt").write_text("\n".join(text) + "\n")


@pytest.mark.parametrize("flags", [["--model", "LSTM", "--lr", "5"],
                                   ["--model", "GRU", "--use-optimizer", "--lr", "0.01"],
                                   ["--model", "Transformer", "--use-optimizer", "--lr", "0.005", "--nlayers", "1"]])
def test_word_language_model(tmp_path, monkeypatch, capsys, flags):
    write_corpus(tmp_path / "data")
    for name, source in (("data.py", WORD_LM_DATA), ("model.py", WORD_LM_MODEL)):
        (tmp_path / name).write_text(rewrite_imports(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("data", "model"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    out = run_program(WORD_LM_MAIN, "word_language_model.py",
                      ["--data", "data", "--emsize", "16", "--nhid", "32", "--nlayers", "2", "--bptt", "12",
                       "--batch_size", "8", "--epochs", "4", "--dropout", "0.1"] + flags,
                      tmp_path, monkeypatch, capsys)
    losses = numbers_after(r"valid loss", out)
    assert len(losses) == 4 and losses[-1] < losses[0] and losses[-1] < 0.65 * np.log(16), out  # uniform: log 16
    assert "decoder.weight" in minidl.load(tmp_path / "model.pt")


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
