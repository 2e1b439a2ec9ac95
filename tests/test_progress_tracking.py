"""Progress lines of the training loops and the experiment trackers behind them (TensorBoard offline)."""

from __future__ import annotations

import json
import logging
import re

import pytest
import torch

from langadapt.core import tracking
from langadapt.core.errors import ConfigError
from langadapt.core.progress import Progress, clock, log_items
from langadapt.core.tracking import TRACKERS, Tracker, check_installed, open_tracker, settings_of


class Recorder(Tracker):
    def __init__(self) -> None:
        super().__init__("rec", {})
        self.points: list[tuple[int, dict]] = []
        self.closed = False

    def log(self, metrics, step):
        self.points.append((step, dict(metrics)))

    def close(self):
        self.closed = True


def read_scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_clock():
    assert clock(0) == "0:00:00" and clock(3725.4) == "1:02:05" and clock(float("nan")) == "?"


def test_lines_every_n_steps_and_at_the_last_with_window_means(caplog):
    rec = Recorder()
    with caplog.at_level(logging.INFO, "langadapt.core.progress"):
        with Progress("fit", total=7, every=3, unit="ex", tracker=rec) as p:
            emitted = [p.update(step, 4, loss=float(step)) for step in range(1, 8)]
    # steps 3, 6 and the last (7); each the mean loss of the steps since the previous line
    assert [e for e in emitted if e] == [{"loss": 2.0}, {"loss": 5.0}, {"loss": 7.0}]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert re.fullmatch(r"fit step 3/7 \(43%\) \| loss 2\.0000 \| [\d,]+ ex/s \| elapsed 0:00:00 \| ETA 0:00:00",
                        lines[0]), lines[0]
    assert lines[2].startswith("fit step 7/7 (100%)")
    assert [s for s, _ in rec.points] == [3, 6, 7]
    assert rec.points[1][1]["loss"] == 5.0 and rec.points[1][1]["ex_per_s"] > 0
    assert rec.closed


def test_eta_extrapolates_the_mean_step_time_of_this_process(monkeypatch, caplog):
    now = [100.0]
    monkeypatch.setattr("langadapt.core.progress.time.monotonic", lambda: now[0])
    p = Progress("pretrain", total=100, every=10, start=40, tracker=Recorder())  # resumed at step 40
    with caplog.at_level(logging.INFO, "langadapt.core.progress"):
        for _ in range(41, 51):
            now[0] += 2.0
            p.advance(500)
        p.emit(50, loss=7.5, lr=1e-4)
    line = caplog.records[-1].getMessage()
    # 10 steps in 20 s since the resume: 50 steps left -> 100 s; 5,000 tokens in 20 s
    assert line == ("pretrain step 50/100 (50%) | loss 7.5000 | lr 1.00e-04 | 250 tok/s | elapsed 0:00:20 | "
                    "ETA 0:01:40")


def test_disabled_progress_writes_and_tracks_nothing(caplog):
    rec = Recorder()
    with caplog.at_level(logging.INFO, "langadapt.core.progress"):
        p = Progress("x", total=2, every=1, enabled=False, tracker=rec)
        p.update(1, 1, loss=1.0)
        p.update(2, 1, loss=1.0)
    assert not caplog.records and not rec.points


def test_data_job_item_lines(caplog):
    import time

    with caplog.at_level(logging.INFO, "langadapt.core.progress"):
        log_items("aligned", 2, 5, time.monotonic(), detail={"lang": "deu_Latn", "pairs": 10})
    assert re.fullmatch(r"aligned 2/5 \(lang deu_Latn, pairs 10\) \| elapsed 0:00:00 \| ETA 0:00:00",
                        caplog.records[-1].getMessage())


# ------------------------------------------------------------------------------------------ settings
def test_settings_accept_a_name_or_a_mapping_and_name_bad_values():
    assert settings_of(None)["backend"] == "none"
    assert settings_of("tensorboard") == {**tracking.DEFAULTS, "backend": "tensorboard"}
    assert settings_of({"backend": "mlflow", "uri": "file:/x"})["uri"] == "file:/x"
    with pytest.raises(ConfigError, match=r"unknown tracking backend 'comet'; known: mlflow, none, tensorboard"):
        settings_of("comet")
    with pytest.raises(ConfigError, match=r"config.yaml: tracking: unknown key\(s\) \['logdir'\]"):
        settings_of({"backend": "tensorboard", "logdir": "x"}, "config.yaml: tracking")
    assert TRACKERS.names() == ["mlflow", "none", "tensorboard", "trackio", "wandb"]


def test_a_backend_whose_package_is_missing_is_a_config_error_naming_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ConfigError, match=r"cfg.yaml: tracking: backend 'wandb' needs the `wandb` package"):
        check_installed(settings_of("wandb"), "cfg.yaml: tracking")
    check_installed(settings_of("tensorboard"))  # installed with the test requirements
    check_installed(settings_of("none"))


def test_schema_and_registry_list_the_same_backends():
    import yaml

    from langadapt.config import SCHEMA_PATH

    prop = yaml.safe_load(SCHEMA_PATH.read_text())["properties"]["tracking"]
    assert sorted(prop["oneOf"][0]["enum"]) == TRACKERS.names()
    assert set(prop["oneOf"][1]["properties"]) == set(tracking.DEFAULTS)


# ------------------------------------------------------------------------------------- tensorboard
def test_tensorboard_event_files_hold_the_logged_numbers(tmp_path, monkeypatch):
    monkeypatch.setenv(tracking.ENV, "")  # restored after the test (configure() sets it)
    assert type(open_tracker("x")) is Tracker  # no job configured: nothing tracked
    tracking.configure({"backend": "tensorboard", "dir": str(tmp_path / "tb")}, "pretrain/lapt")
    assert json.loads(__import__("os").environ[tracking.ENV])["run"] == "pretrain/lapt"
    with Progress("pretrain", total=4, every=2) as p:
        for step in (1, 2, 3, 4):
            p.update(step, 100, loss=10.0 - step)
    scalars = read_scalars(tmp_path / "tb" / "pretrain/lapt" / "pretrain")
    assert scalars["loss"] == [(2, 8.5), (4, 6.5)]
    assert [s for s, _ in scalars["tok_per_s"]] == [2, 4]


def test_a_backend_that_fails_to_start_tracks_nothing_and_training_goes_on(monkeypatch, caplog):
    class Broken(Tracker):
        def __init__(self, run, settings):
            raise OSError("server unreachable")

    monkeypatch.setitem(TRACKERS._items, "broken", Broken)
    monkeypatch.setenv(tracking.ENV, json.dumps({"backend": "broken", "run": "r"}))
    with caplog.at_level(logging.WARNING, "langadapt.core.tracking"):
        t = open_tracker("loop")
    assert type(t) is Tracker and "server unreachable" in caplog.text


def test_trainer_feeds_loss_csv_numbers_to_the_tracker(tmp_path, monkeypatch):
    """The Trainer's progress lines and tracker points are the rows of loss.csv."""
    from langadapt.train.loop import Trainer, make_optimizer, make_scheduler

    monkeypatch.setenv(tracking.ENV, "")
    tracking.configure({"backend": "tensorboard", "dir": str(tmp_path / "tb")}, "job")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = make_optimizer(model, 1e-2, (0.9, 0.999), 1e-8, 0.0)
    trainer = Trainer(run_dir=tmp_path / "run", model=model, optimizer=opt,
                      scheduler=make_scheduler(opt, 5, 0, "linear"), device=torch.device("cpu"), steps=5,
                      log_every=2, desc="toy")
    x, y = torch.randn(8, 3), torch.randn(8, 1)
    trainer.run(lambda: (torch.nn.functional.mse_loss(model(x), y), 8))
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()[1:]
    csv_loss = [(int(r.split(",")[0]), float(r.split(",")[1])) for r in rows]
    tb = read_scalars(tmp_path / "tb" / "job" / "toy")
    assert [s for s, _ in tb["loss"]] == [s for s, _ in csv_loss] == [2, 4, 5]
    for (_, a), (_, b) in zip(tb["loss"], csv_loss, strict=True):
        assert a == pytest.approx(b, rel=1e-6)
    assert tb["lr"][0][1] == pytest.approx(1e-2 * 4 / 5)  # lr of the step logged (linear decay)


@pytest.mark.parametrize("backend", ["wandb", "trackio", "mlflow"])
def test_the_other_backends_call_their_library_once_per_loop(backend, tmp_path, monkeypatch):
    """wandb, trackio and mlflow need accounts or servers: their adapters run against a stand-in module
    recording the calls (the library's documented init / log / finish)."""
    import sys
    import types

    calls = []
    fake = types.ModuleType(backend)
    if backend == "wandb":
        handle = types.SimpleNamespace(log=lambda m, step: calls.append(("log", dict(m), step)),
                                       finish=lambda: calls.append(("finish",)))
        fake.init = lambda **kw: calls.append(("init", kw)) or handle
    elif backend == "trackio":
        fake.init = lambda **kw: calls.append(("init", kw))
        fake.log = lambda m, step: calls.append(("log", dict(m), step))
        fake.finish = lambda: calls.append(("finish",))
    else:
        fake.set_experiment = lambda name: calls.append(("set_experiment", name))
        fake.start_run = lambda run_name: calls.append(("init", {"name": run_name}))
        fake.log_metrics = lambda m, step: calls.append(("log", dict(m), step))
        fake.end_run = lambda: calls.append(("finish",))
    monkeypatch.setitem(sys.modules, backend, fake)
    monkeypatch.setenv(tracking.ENV, "")
    tracking.configure({"backend": backend, "dir": str(tmp_path), "project": "p"}, "pretrain/lapt")
    with Progress("pretrain", total=2, every=1) as p:
        p.update(1, 10, loss=2.0)
        p.update(2, 10, loss=1.0)
    init = calls[0] if backend != "mlflow" else calls[1]
    assert init[0] == "init" and init[1]["name"] == "pretrain/lapt/pretrain"
    logs = [c for c in calls if c[0] == "log"]
    assert [(c[1]["loss"], c[2]) for c in logs] == [(2.0, 1), (1.0, 2)] and calls[-1] == ("finish",)
