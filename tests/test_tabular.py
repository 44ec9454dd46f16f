"""load_csv: column types, target choice, errors; a tree fitted on what it returns."""
import numpy as np
import pytest

from minidl.data import Table, load_csv
from minidl.tree import DecisionTreeClassifier

WEATHER = """\
Outlook,Temperature,Humidity,Windy,Play
Sunny,85,85,FALSE,no
Sunny,80,90,TRUE,no
Overcast,83,86,FALSE,yes
Rainy,70,96,FALSE,yes
Rainy,68,80,FALSE,yes
Rainy,65,70,TRUE,no
Overcast,64,65,TRUE,yes
Sunny,72,95,FALSE,no
Sunny,69,70,FALSE,yes
Rainy,75,80,FALSE,yes
Sunny,75,70,TRUE,yes
Overcast,72,90,TRUE,yes
Overcast,81,75,FALSE,yes
Rainy,71,91,TRUE,no
"""


@pytest.fixture
def weather(tmp_path):
    path = tmp_path / "weather.csv"
    path.write_text(WEATHER)
    return path


def test_columns_are_typed(weather):
    table = load_csv(weather, target="Play")
    assert isinstance(table, Table)
    X, y, names = table
    assert names == ["Outlook", "Temperature", "Humidity", "Windy"]
    assert table.target_name == "Play"
    assert X.dtype == object and X.shape == (14, 4)
    assert list(table.categorical) == [True, False, False, True]
    assert X[0, 0] == "Sunny" and X[0, 1] == 85.0 and isinstance(X[0, 1], float)
    assert list(y[:3]) == ["no", "no", "yes"]


def test_target_defaults_to_last_column_and_numeric_labels_become_ints(tmp_path):
    path = tmp_path / "numbers.csv"
    path.write_text("a,b,label\n1.5,2,0\n2.5,,1\n3.5,4,1\n")
    X, y, names = load_csv(path)
    assert X.dtype == np.float64 and names == ["a", "b"]
    assert np.isnan(X[1, 1])
    assert y.dtype == np.int64 and list(y) == [0, 1, 1]
    X, y, _ = load_csv(path, target="a", categorical=["b"])
    assert y.dtype == np.float64 and X.dtype == object and X[0, 0] == "2"


def test_errors_name_the_problem(tmp_path, weather):
    with pytest.raises(ValueError, match="'Rain' is not in the header"):
        load_csv(weather, target="Rain")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValueError, match="line 3 has 1 fields, the header has 2"):
        load_csv(ragged)


def test_tree_fits_the_table(weather):
    X, y, names = load_csv(weather, target="Play")
    tree = DecisionTreeClassifier(criterion="entropy").fit(X, y)
    assert tree.score(X, y) == 1.0
    assert names[tree.tree_.feature[0]] == "Outlook"  # categorical root, as in ID3
    assert tree.tree_.branch_start[0] >= 0
