"""The benchmarks: fast paths compute what the simple paths compute, the measurement
functions return sane numbers at tiny sizes (the full benchmark is benchmarks/run.py), and the
package's report of a stored measurement (omnigrok.report.speed) judges and tabulates it."""

import json
import math
from pathlib import Path

import measure  # benchmarks/measure.py: conftest puts benchmarks/ on the path
import pytest
import timing  # benchmarks/timing.py
import tomllib
import torch
import torch.nn.functional as F
import transformer_stack  # benchmarks/transformer_stack.py
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import omnigrok
from omnigrok.config import TaskSpec
from omnigrok.models import NandaTransformer, PlainMLP, forward, init_params, transformer_forward
from omnigrok.models.mlp import train_flops
from omnigrok.norms import scale_
from omnigrok.report import official, speed
from omnigrok.store import log_schedule
from omnigrok.task import make_task
from omnigrok.tasks import mnist_run, modadd_run
from omnigrok.train import _Batches, loss_per_run, train_ensemble


def test_stacked_transformer_equals_nanda_logits_and_gradients_float32():
    """The benchmarked shortcut (only the last position feeds the logits) is the same math."""
    cfg = modadd_run()
    data = make_task(cfg.task)
    tokens, labels = data.x_train[:256], data.y_train[:256]
    params = init_params(cfg.model, [3], dtype=torch.float32)
    model = NandaTransformer(cfg.model).load_run(params, 0)
    assert measure.transformer_logit_diff(params, model, tokens) <= 1e-5

    for p in params.values():
        p.requires_grad_(True)
    loss_per_run(transformer_forward(params, tokens), labels, "ce", cfg.task.p).sum().backward()
    F.cross_entropy(model(tokens), labels).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(params[name].grad[0], p.grad, atol=1e-5, rtol=1e-4, msg=name)


def test_plain_mnist_step_equals_trainer_step():
    """One step of the plain loop (nn.Sequential, AdamW, MSELoss) and of train_ensemble from
    the same init on the same batch: the same loss before and after."""
    cfg = mnist_run(task=TaskSpec("mnist", n_test=100), steps=1, n_log=2, seed=2, dtype="float64")
    data = make_task(cfg.task, "cpu", "float64")
    result = train_ensemble([cfg], device="cpu", progress=False, data=data)[0]

    params = init_params(cfg.model, [cfg.seed], dtype=torch.float64)
    scale_(params, torch.tensor([cfg.init_scale], dtype=torch.float64))
    model = PlainMLP(cfg.model).double().load_run(params, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    idx = _Batches([cfg.seed], data.n_train, cfg.batch_size, "cpu").indices(0)[0]

    def train_mse() -> float:
        with torch.no_grad():
            return F.mse_loss(model(data.x_train), F.one_hot(data.y_train, 10).double()).item()

    assert result["train_loss"][0] == pytest.approx(train_mse(), rel=1e-12)
    x, target = data.x_train[idx], F.one_hot(data.y_train[idx], 10).double()
    step_loss = measure.plain_train_step(model, optimizer, nn.MSELoss(), x, target)
    stacked_loss = loss_per_run(forward(cfg.model, params, x), data.y_train[idx], "mse", 10)
    assert step_loss.item() == pytest.approx(stacked_loss.item(), rel=1e-12)
    assert result["train_loss"][1] == pytest.approx(train_mse(), rel=1e-9)
    assert result["train_loss"][1] < result["train_loss"][0]


def test_mlp_train_flops_counts_the_paper_mlp():
    weights = 784 * 200 + 200 * 200 + 200 * 10
    assert train_flops((784, 200, 200, 10), 200) == 6 * 200 * weights
    exact = train_flops((784, 200, 200, 10), 200, exact=True)
    assert exact == 6 * 200 * weights - 2 * 200 * 784 * 200


def test_n_log_for_density_matches_the_paper_schedule():
    paper_points = len(log_schedule(100_000, 250))
    assert measure.n_log_for_density(100_000) == 250
    short = measure.n_log_for_density(2000)
    assert len(log_schedule(2000, short)) >= paper_points * 2000 / 100_000
    assert measure.n_log_for_density(50) == 2  # the fewest a schedule can have


def _check_timing(result: dict, timed_steps: int) -> None:
    assert result["timed_steps"] == timed_steps
    assert 0 < result["best_seconds_per_step"] <= result["seconds_per_step"] < 60
    assert result["run_steps_per_second"] == pytest.approx(result["k"] / result["seconds_per_step"])


def test_measurements_return_sane_structures_at_tiny_sizes():
    limit = timing.matmul_limit(64, "float32", repeats=2)
    assert limit["n"] == 64 and limit["gflops"] > 0 and limit["dtype"] == "float32"

    plain = measure.plain_mnist_loop("float32", steps=2, repeats=2, warmup=1)
    _check_timing(plain, 4)
    assert plain["k"] == 1 and plain["gflops"] > 0

    trainer = measure.trainer_mnist(3, steps=1, repeats=2, warmup=1, limit_gflops=limit["gflops"])
    _check_timing(trainer, 2)
    assert trainer["k"] == 3 and trainer["flops_per_step"] == 3 * plain["flops_per_step"]
    assert trainer["fraction_of_limit_exact"] < trainer["fraction_of_limit"]
    assert set(trainer["timing"]) == {"train_seconds", "eval_seconds"}

    _check_timing(measure.plain_teacher_student_loop(steps=2, repeats=2, warmup=1), 4)
    _check_timing(measure.trainer_teacher_student(4, steps=2, repeats=2, warmup=1), 4)
    graphnet = measure.graphnet_trainer(steps=2, repeats=2, warmup=1)
    _check_timing(graphnet, 4)  # steps x repeats
    assert graphnet["k"] == 9 and graphnet["run_steps_per_second"] > 0

    info = timing.machine()
    assert info["device"] == "cpu" and info["torch"] == torch.__version__ and info["cores"] >= 1


def test_transformer_step_is_timed_and_equal():
    result = measure.transformer_step(steps=1, repeats=1, warmup=0, with_trainer=False)
    assert result["max_abs_logit_diff"] <= 1e-5 and result["n_train"] == 3830
    _check_timing(result["plain"], 1)
    _check_timing(result["stacked"], 1)
    assert result["speedup"] > 0 and "trainer" not in result


def test_transformer_flop_count_is_what_autograd_multiplies():
    """The stack benchmark's FLOPs per run-step are the matrix products torch really runs in
    a forward and backward of K runs (FlopCounterMode counts every bmm and baddbmm)."""
    cfg = transformer_stack.paper_config()
    data = make_task(cfg.task)
    params = init_params(cfg.model, [0, 1])
    for p in params.values():
        p.requires_grad_(True)
    with FlopCounterMode(display=False) as counter:
        out = transformer_forward(params, data.x_train[:64])
        loss_per_run(out, data.y_train[:64], "ce", cfg.task.p).sum().backward()
    assert counter.get_total_flops() == 2 * transformer_stack.flops_per_run_step(cfg.model, 64)
    # The paper's step: ~7.0 GFLOP per run (3x the forward would say 7.4: the one-hot
    # embedding has no input gradient).
    assert transformer_stack.flops_per_run_step(cfg.model, 3830) == pytest.approx(7.03e9, rel=1e-3)


def test_transformer_stack_benchmark_runs_at_tiny_sizes(tmp_path):
    """The script end to end, one thread count in its subprocess: stacks, the control, the
    profile, and its key filed beside the others in --json."""
    out = tmp_path / "results.json"
    out.write_text('{"machine": "kept"}')
    args = ["--ks", "1", "2", "--threads", "1", "--steps", "1", "--warmup", "1", "--profile"]
    assert transformer_stack.main([*args, "--malloc", "keep", "--json", str(out)]) == 0
    stored = json.loads(out.read_text())
    assert stored["machine"] == "kept"
    result = stored["transformer_stack"]
    (one,) = result["measurements"]
    assert one["torch_threads"] == 1 and one["limit"]["shape"] == [3830, 128, 512]
    assert one["malloc"] == "keep" and one["malloc_environment"]["MALLOC_MMAP_MAX_"] == "0"
    assert set(one["stacks"]) == {"1", "2"} and set(one["controls"]) == {"2"}
    _check_timing(one["stacks"]["2"], 1)
    assert one["stacks"]["2"]["flops_per_step"] == 2 * result["flops_per_run_step"]
    assert one["controls"]["2"]["k"] == 1  # one run on the doubled training set
    assert one["stacks"]["2"]["fraction_of_limit"] > 0
    assert one["stacks"]["2"]["minor_faults_per_step"] >= 0
    assert any("bmm" in op for op in one["profile"]["2"])
    rows = speed.stack_rows(result)
    kinds = [(r["K"], r["runs"]) for r in rows]
    assert kinds == [(1, "stack"), (2, "stack"), (2, "1 run, batch x K")]
    assert rows[0]["vs K=1"] == 1.0
    assert transformer_stack.profile_rows(result)[-1]["op (ms per run-step)"] == "all ops"


def test_eval_share_measures_and_projects():
    result = measure.eval_share(k=2, steps=40)
    assert result["log_points"] == 3  # 0, 30 and 40
    assert 0 < result["share"] < 1 and 0 < result["paper_projected"] < result["share"]
    assert set(result["profiles"]) == {"smoke", "quick", "paper"}
    assert result["profiles"]["paper"] == pytest.approx(result["paper_projected"])


def _fake_results(trainer_speed: float, share: float) -> dict:
    def timed(k: int, speed: float, **kw) -> dict:
        return {"k": k, "run_steps_per_second": speed, "seconds_per_step": k / speed, **kw}

    trainer = timed(20, trainer_speed, gflops=90.0, fraction_of_limit=0.9)
    trainer["fraction_of_limit_exact"] = 0.7
    return {
        "matmul": {"gflops": 100.0},
        "plain_mnist": {"float64": timed(1, 10.0), "float32": timed(1, 20.0)},
        "trainer_mnist": {"1": timed(1, 5.0, fraction_of_limit=0.1), "20": trainer},
        "teacher_student": {
            "plain": timed(1, 100.0),
            "trainer": {"20": timed(20, 800.0), "100": timed(100, 1000.0)},
        },
        "transformer": {"speedup": 2.0, "max_abs_logit_diff": 0.0},
        "eval_share": {
            "share": share,
            "paper_projected": share / 2,
            "steps": 2000,
            "log_points": 5,
            "k": 5,
            "paper_steps": 100_000,
            "paper_log_points": 247,
        },
    }


def test_ratios_compare_with_the_targets():
    checks = {r["name"]: r for r in speed.ratios(_fake_results(trainer_speed=50.0, share=0.12))}
    assert set(checks) == set(speed.TARGETS)
    assert checks["mnist_k20_fraction_of_matmul_limit"]["passed"]
    assert checks["mnist_k20_per_run_vs_plain_float64"]["value"] == pytest.approx(5.0)
    assert checks["mnist_k20_per_run_vs_plain_float32"]["value"] == pytest.approx(2.5)
    assert not checks["teacher_student_per_run_vs_plain"]["passed"]  # 10x < 20x
    assert checks["teacher_student_per_run_vs_plain"]["note"].startswith("K=100;")
    assert checks["transformer_speedup"]["passed"]
    assert checks["transformer_max_abs_logit_diff"]["passed"]
    assert not checks["eval_share_measured"]["passed"]
    assert checks["eval_share_paper_projected"]["passed"]
    assert checks["eval_share_measured"]["target"] == "< 0.1"
    nan = speed.ratios(_fake_results(trainer_speed=math.nan, share=0.01))
    assert not next(r for r in nan if r["name"].endswith("float64"))["passed"]


def test_ceilings_bound_the_speedups_by_the_gemm_flops():
    """The ceiling is the plain step over the exact GEMM FLOPs at the limit: teacher-student's
    plain loop (100 steps/s) does 6.5 MFLOP per step; at 100 GFLOP/s those take 65 µs."""
    assert speed.gemm_ceiling(0.01, 1e9, 100.0) == pytest.approx(1.0)
    rows = {r["speedup"].split()[0]: r for r in speed.ceilings(_fake_results(50.0, 0.05))}
    flops = train_flops((5, 100, 100, 5), 100, exact=True)
    assert flops == 6 * 100 * 11_000 - 2 * 100 * 500
    ts = rows["teacher-student"]
    assert ts["ceiling"] == pytest.approx(0.01 / (flops / 100e9))
    assert ts["measured"] == pytest.approx(10.0)
    assert ts["share of ceiling"] == pytest.approx(10.0 / ts["ceiling"])
    assert rows["MNIST"]["measured"] == pytest.approx(2.5)


def test_the_performance_page_reads_a_stored_full_measurement(tmp_path):
    """The committed measurement is a full one the page can read, with its machine and date;
    a file that is not one is a clear error naming the command that writes it."""
    results = speed.load()
    assert results["quick"] is False and results["measured"] and results["machine"]["cpu"]
    assert speed.markdown_table(speed.rows(results))
    bad = tmp_path / "results.json"
    bad.write_text('{"machine": {}}')
    with pytest.raises(ValueError, match="lack matmul, quick, ratios, trainer_mnist"):
        speed.load(bad)
    with pytest.raises(ValueError, match="benchmarks/run.py --json"):
        speed.load(tmp_path / "absent.json")


def test_the_performance_page_shows_the_stored_transformer_stacks():
    """The page's table of the stored P = 113 stack measurement: every (malloc, threads, K)
    stack in seven columns (the book's column), K = 1 the unit of "vs K=1", no controls."""
    stack = speed.load()["transformer_stack"]
    rows = speed.stack_rows(stack, page=True)
    measured = [
        (m["malloc"], m["torch_threads"], int(k))
        for m in stack["measurements"]
        for k in m["stacks"]
    ]
    assert sorted((r["malloc"], r["threads"], r["K"]) for r in rows) == sorted(measured)
    assert all(tuple(r) == speed.STACK_PAGE_COLUMNS for r in rows)
    assert all(r["vs K=1"] == 1.0 for r in rows if r["K"] == 1)
    one = stack["measurements"][0]
    (k5,) = [
        r
        for r in rows
        if (r["malloc"], r["threads"], r["K"]) == (one["malloc"], one["torch_threads"], 5)
    ]
    assert k5["s/run-step"] == one["stacks"]["5"]["seconds_per_step"] / 5
    assert len(speed.markdown_table(rows).splitlines()[0].split("|")) == 9


def test_the_stored_measurements_ship_with_the_package():
    """The Performance and official-code pages read package data, which an installed package
    (Colab's) has: pyproject's package-data globs cover both files and every other file in
    ``_data``; and the pages' default paths are those files."""
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    globs = project["tool"]["setuptools"]["package-data"]["omnigrok"]
    data = Path(omnigrok.__file__).parent / "_data"
    shipped = {p for pattern in globs for p in data.parent.glob(pattern)}
    assert set(data.iterdir()) <= shipped, "a file in _data would be left out of the package"
    assert speed.STORED == data / "benchmarks.json" and official.RECORD == data / "official.json"
    assert speed.load() and official.load()


def test_the_performance_page_shows_the_stored_ray_scaling():
    """The Ray entry of benchmarks/results.json as the page's table: every measured number, and
    the scaling as the ratio of the two workers' times."""
    result = {
        "sweep": "4 stacks of 2 teacher-student runs, 5000 steps",
        "local_one_thread_s": 9.5,
        "workers_s": {"1": 9.6, "2": 4.8},
        "scaling_1_to_2_workers": 2.0,
        "overhead_per_task_s": 0.025,
        "empty_task_s": 0.0035,
    }
    table = speed.markdown_table(speed.ray_rows(result))
    for shown in ("9.5 s", "9.6 s", "4.8 s", "2.00x", "(4 tasks) | 0.025 s", "0.0035 s"):
        assert shown in table
