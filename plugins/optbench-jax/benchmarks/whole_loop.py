"""The compiled whole loop against the tutorial's hand-written torch loop, cold and warm.

The task is `optbench run --backend jax --compile` with its defaults: the tutorial's
regression (x²+2x+3, 20 points, mean squared error), NAdam, lr 0.01, 1000 steps, same data and
start for both. For each dtype it prints:

Cold: the first run in a fresh process (`--cold` processes, medians), each process running,
in this order: `import jax` (timed and reported apart, not counted), one `api.execute` of the
compiled run (the first JAX work of the process: backend initialisation, data conversion,
tracing, lowering and XLA compilation of value_and_grad and of the loop, the priming call —
all in `setup_s` — then the loop, `time_s`), then the tutorial's loop (50 warm-up steps, then
the timed steps). End to end is `setup_s + time_s`; the execute() wall time adds the record's
final f and gradient. Targets: end to end <= 1.0x the tutorial loop, loop <= 0.1x.
The split of `setup_s` comes from JAX's own compile events (jax.monitoring).

Warm: medians over `--repeats` runs in this process after a warm-up (each a full
`api.execute`): the compiled loop's `time_s` and `setup_s`, the step-by-step jax loop (eager
optimizer between jit-compiled value_and_grad calls) and the tutorial's loop.

    python plugins/optbench-jax/benchmarks/whole_loop.py [--steps 1000] [--repeats 7]
        [--cold 5] [--dtype float64 float32] [--cache DIR]

`--cache DIR` runs the cold processes with JAX's persistent compilation cache in DIR
(JAX_COMPILATION_CACHE_DIR, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0): an opt-in; the
first process that compiles fills it, and the figures are then no longer cold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def tutorial_loop(x: np.ndarray, y: np.ndarray, w0: np.ndarray, steps: int,
                  dtype: torch.dtype) -> tuple[float, np.ndarray]:
    """The tutorial as written: torch.optim.NAdam over y_pred = a·x² + b·x + c (a copy of
    benchmarks/overhead.py's, so that this plugin's benchmark stands alone)."""
    xt = torch.as_tensor(x, dtype=dtype)
    yt = torch.as_tensor(y, dtype=dtype)
    w = torch.tensor(w0, dtype=dtype, requires_grad=True)
    opt = torch.optim.NAdam([w], lr=0.01)
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        y_pred = w[0] * xt**2 + w[1] * xt + w[2]
        loss = torch.mean((y_pred - yt) ** 2)
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    return elapsed, w.detach().numpy().astype(np.float64)


def tutorial_inputs(plan):
    data, w0 = plan.instance.data, plan.instance.x0
    return np.asarray(data["V"])[:, -2], np.asarray(data["y"]), w0  # x: the design's x column


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:9.3f} ms"


def cold_child(dtype: str, steps: int) -> None:
    """One cold measurement, printed as a JSON line (run in a fresh process)."""
    torch.set_num_threads(1)  # as benchmarks/overhead.py: tiny tensors gain nothing
    t0 = time.perf_counter()
    import jax
    import_jax = time.perf_counter() - t0

    from optbench import api

    events: dict[str, float] = {}

    def listen(name: str, seconds: float, **kw) -> None:
        stage = {"jaxpr_trace_duration": "trace", "jaxpr_to_mlir_module_duration": "lower",
                 "backend_compile_duration": "compile"}.get(name.rsplit("/", 1)[-1])
        if stage:
            fun = kw.get("fun_name", "?").removeprefix("jit(").removesuffix(")")
            events[f"{fun}.{stage}"] = events.get(f"{fun}.{stage}", 0.0) + seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    plan = api.plan("regression", "jax", "nadam", lr=0.01, steps=steps, dtype=dtype,
                    compile=True)
    start = time.perf_counter()
    record = api.execute(plan, plan.backends[0])
    wall = time.perf_counter() - start
    assert record.status == "max_steps" and record.dtype == dtype, record.message

    x, y, w0 = tutorial_inputs(plan)
    tutorial_loop(x, y, w0, 50, getattr(torch, dtype))  # warm-up: first calls allocate
    tutorial, _ = tutorial_loop(x, y, w0, steps, getattr(torch, dtype))
    print(json.dumps({"import_jax": import_jax, "setup_s": record.setup_s,
                      "time_s": record.time_s, "wall": wall, "tutorial": tutorial,
                      "events": events}))


def cold(dtype: str, steps: int, processes: int, cache: str | None) -> None:
    env = dict(os.environ)
    if cache:
        env.update(JAX_COMPILATION_CACHE_DIR=cache,
                   JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    runs = []
    for _ in range(processes):
        out = subprocess.run([sys.executable, __file__, "--child", dtype, "--steps", str(steps)],
                             env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            sys.exit(f"cold process failed:\n{out.stderr}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))

    def med(key: str, rows=runs) -> float:
        return statistics.median(r[key] for r in rows)

    for r in runs:
        r["e2e"] = r["setup_s"] + r["time_s"]
        r["ratio"] = r["e2e"] / r["tutorial"]
        r["loop_ratio"] = r["time_s"] / r["tutorial"]
    split = {k: statistics.median(r["events"].get(k, 0.0) for r in runs)
             for k in sorted({k for r in runs for k in r["events"]})}
    rest = med("setup_s") - sum(split.values())
    label = (f"with the persistent compilation cache in {cache} (opt-in; NOT cold once filled)"
             if cache else "cold: the first run in a fresh process")
    print(f"  {label}, median of {processes} processes")
    print(f"    import jax (not counted)          : {ms(med('import_jax'))}")
    print(f"    setup_s (init, convert, compile)  : {ms(med('setup_s'))}")
    for key, seconds in split.items():
        print(f"      {key:32s}: {ms(seconds)}")
    print(f"      {'rest (backend init, data, prime)':32s}: {ms(rest)}")
    print(f"    time_s (the loop)                 : {ms(med('time_s'))}")
    every = ", ".join(f"{r['e2e'] * 1e3:.0f}" for r in runs)
    print(f"    end to end, setup_s + time_s      : {ms(med('e2e'))}  (all: {every} ms)")
    print(f"    execute() wall (+ final f, g)     : {ms(med('wall'))}")
    print(f"    tutorial loop, same processes     : {ms(med('tutorial'))}")
    print(f"    ratio end to end / tutorial       : {med('ratio'):9.3f}x  (target <= 1.0; "
          f"worst {max(r['ratio'] for r in runs):.3f}x)")
    print(f"    ratio loop / tutorial             : {med('loop_ratio'):9.4f}x  (target <= 0.1)")
    if cache:
        first = runs[0]
        print(f"    first process (fills the cache)   : end to end {ms(first['e2e']).strip()}, "
              f"ratio {first['ratio']:.3f}x")


def warm(dtype: str, steps: int, repeats: int) -> None:
    from optbench import api

    compiled = api.plan("regression", "jax", "nadam", lr=0.01, steps=steps, dtype=dtype,
                        compile=True)
    stepwise = api.plan("regression", "jax", "nadam", lr=0.01, steps=steps, dtype=dtype)
    backend = compiled.backends[0]
    x, y, w0 = tutorial_inputs(compiled)
    tdtype = getattr(torch, dtype)

    tutorial_loop(x, y, w0, 50, tdtype)  # warm-ups: first calls allocate and compile
    api.execute(compiled, backend)
    api.execute(stepwise, backend)
    loop, setup, step_by_step, tutorial = [], [], [], []
    for _ in range(repeats):
        record = api.execute(compiled, backend)
        loop.append(record.time_s)
        setup.append(record.setup_s)
        t, w_tutorial = tutorial_loop(x, y, w0, steps, tdtype)
        tutorial.append(t)
    for _ in range(max(1, repeats // 3)):  # slow: ~0.2 ms a step
        step_by_step.append(api.execute(stepwise, backend).time_s)
    assert record.status == "max_steps" and record.dtype == dtype, record.message

    t_loop, t_tut = statistics.median(loop), statistics.median(tutorial)
    gap = float(np.max(np.abs(np.asarray(record.x) - w_tutorial)))
    print(f"  warm: in one process after a warm-up, medians of {repeats}")
    print(f"    jax compiled loop, time_s         : {ms(t_loop)}  "
          f"(min {ms(min(loop)).strip()}, {t_loop / steps * 1e6:.2f} us/step)")
    print(f"    jax set-up, setup_s               : {ms(statistics.median(setup))}")
    print(f"    jax step by step, time_s          : {ms(statistics.median(step_by_step))}")
    print(f"    tutorial loop, torch.optim.NAdam  : {ms(t_tut)}  "
          f"({t_tut / steps * 1e6:.1f} us/step)")
    print(f"    ratio compiled loop / tutorial    : {t_loop / t_tut:9.4f}x")
    print(f"    max |x_jax - x_tutorial|          : {gap:.2e}")


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{model}, {os.cpu_count()} CPUs, load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cold", type=int, default=5, metavar="N",
                        help="fresh processes for the cold figures (0: none)")
    parser.add_argument("--dtype", nargs="+", default=["float64", "float32"],
                        choices=["float64", "float32"])
    parser.add_argument("--cache", metavar="DIR",
                        help="run the cold processes with JAX's persistent compilation cache")
    parser.add_argument("--child", choices=["float64", "float32"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        cold_child(args.child, args.steps)
        return
    torch.set_num_threads(1)  # as benchmarks/overhead.py: tiny tensors gain nothing

    print(f"machine: {machine()}")
    for dtype in args.dtype:
        print(f"{dtype}, regression, NAdam lr 0.01, {args.steps} steps")
        if args.cold:
            cold(dtype, args.steps, args.cold, args.cache)
        if args.repeats:
            warm(dtype, args.steps, args.repeats)
    print(f"load average at the end: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
