"""Config input that must be refused: NaN and infinity in any float field, lists and objects in text fields, config
files that are missing or not UTF-8, and datasets that do not exist: in the form, the config file and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import jobs.train
from core.problems import ProblemsError
from core.store.registry import Registry
from core.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FLOAT_FIELDS = [f.name for f in TrainConfig.fields() if f.type in (float, "float")]
TEXT_FIELDS = [f.name for f in TrainConfig.fields() if f.type in (str, "str")]
NOT_FINITE = [float("nan"), float("inf"), float("-inf"), "NaN", "nan", "Infinity", "-inf", "1e999"]


def test_there_are_float_and_text_fields_to_check() -> None:
    assert {"learning_rate", "projector_lr", "lora_dropout", "num_epochs"} <= set(FLOAT_FIELDS)
    assert {"run_name", "model", "dataset", "method"} <= set(TEXT_FIELDS)


@pytest.mark.parametrize("name", FLOAT_FIELDS)
@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_nan_and_infinity_are_refused_for_every_float_field(name: str, value: object) -> None:
    config, problems = TrainConfig.parse({name: value})
    mine = [p for p in problems if p.field == name]
    assert mine and "finite number" in mine[0].message, problems
    assert getattr(config, name) == getattr(TrainConfig(), name)  # the bad value is not kept


@pytest.mark.parametrize("name", FLOAT_FIELDS)
def test_validate_refuses_a_nan_set_directly(name: str) -> None:
    config = TrainConfig()
    setattr(config, name, float("nan"))
    assert any(p.field == name and "finite" in p.message for p in config.validate(cuda_available=False))


@pytest.mark.parametrize("name", TEXT_FIELDS)
@pytest.mark.parametrize("value", [["a", "b"], {"x": 1}, []], ids=repr)
def test_text_fields_refuse_lists_and_objects(name: str, value: object) -> None:
    _, problems = TrainConfig.parse({name: value})
    assert any(p.field == name and "expected text" in p.message for p in problems), problems


def test_the_forms_check_refuses_nan(studio) -> None:
    values = {f.name: f.default for f in TrainConfig.fields()}
    values.update(learning_rate="NaN", projector_lr=float("nan"), run_name=["x"])
    _, problems = studio.check_config(values)
    by_field = {p.field: p.message for p in problems}
    assert "finite number" in by_field["learning_rate"] and "finite number" in by_field["projector_lr"]
    assert "expected text" in by_field["run_name"]
    with pytest.raises(ProblemsError):
        studio.start_run(values)
    assert studio.registry.list_runs() == []


@pytest.mark.parametrize("name", ["learning_rate", "projector_lr"])
def test_a_config_file_with_nan_names_the_file_and_field(tmp_path: Path, name: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(f'{{"{name}": NaN}}')  # Python's json reads the NaN literal
    with pytest.raises(ProblemsError) as err:
        TrainConfig.load(path)
    (problem,) = err.value.problems
    assert problem.file == str(path) and problem.field == name and "finite" in problem.message


def test_a_missing_or_non_utf8_config_file_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    with pytest.raises(ProblemsError, match="no such file") as err:
        TrainConfig.load(tmp_path / "absent.json")
    assert err.value.problems[0].file == str(tmp_path / "absent.json")
    latin = tmp_path / "latin1.json"
    latin.write_bytes('{\n  "run_name": "caf\u00e9"\n}\n'.encode("latin-1"))
    with pytest.raises(ProblemsError, match="not UTF-8") as err:
        TrainConfig.load(latin)
    assert err.value.problems[0].line == 2 and "0xe9" in err.value.problems[0].message
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps({"lora_r": 4}).encode())
    assert TrainConfig.load(bom).lora_r == 4


def headless(data_dir: Path, capsys, *args: str) -> tuple[int, list[str]]:
    code = jobs.train.main([*args, "--data-dir", str(data_dir)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("content", [
    b'{"learning_rate": NaN}', b'{"projector_lr": NaN}', b'{"max_grad_norm": Infinity}', b'{"run_name": ["a"]}',
    '{"run_name": "caf\u00e9"}'.encode("latin-1"), b'{"dataset": "no-such-dataset"}', None,
], ids=["lr-nan", "projector-nan", "inf", "list", "latin-1", "no-dataset", "missing-file"])
def test_headless_bad_input_is_one_line_exit_2_and_registers_nothing(data_dir: Path, tmp_path: Path, capsys,
                                                                     content: bytes | None) -> None:
    path = tmp_path / "config.json"
    if content is not None:
        path.write_bytes(content)
    code, lines = headless(data_dir, capsys, "--config", str(path))
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and (str(path) in lines[0] or "no-such-dataset" in lines[0]), lines
    assert Registry(data_dir / "studio.db").list_runs() == []


def test_headless_unknown_run_id_is_one_line_exit_2(data_dir: Path, capsys) -> None:
    code, lines = headless(data_dir, capsys, "--resume", "--run-id", "42")
    assert code == 2 and lines == [f"error: no run 42 in {data_dir.resolve() / 'studio.db'}; the Runs tab lists the "
                                   "runs and their ids"]
    code, lines = headless(data_dir, capsys, "--resume")
    assert code == 2 and len(lines) == 1 and "--run-id" in lines[0]


def test_the_real_cli_exits_2_on_a_nan_learning_rate(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"learning_rate": NaN, "max_steps": 2}')
    result = subprocess.run([sys.executable, "-m", "jobs.train", "--config", str(path), "--data-dir", str(data_dir)],
                            cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {path}, field 'learning_rate': expected a finite number, got nan: NaN and infinity are not allowed"]
    assert Registry(data_dir / "studio.db").list_runs() == []
