"""Train the course's own GPT and write checkpoints/course-gpt/ (what `make pretrain` runs).

    python tools/pretrain.py                  # the full run: PRETRAIN_CONFIG of chapter 4 (about an hour)
    python tools/pretrain.py --fresh          # discard an interrupted run's state and start over
    python tools/pretrain.py --max-steps 100 --note "..."   # a short run (same format), for development

The training code is chapter 4's (`llmscratch.train.pretrain`, exported from lessons/04-pretraining.md).
An interrupted run keeps its state in _build/pretrain/ and continues when the command is rerun.
"""
import argparse
import os
import sys

# Passive OpenMP threads sleep instead of spinning while they wait. On a 2-core machine shared with
# other jobs this made training about 4x faster; on an idle one it cost about 5 % (bench/bench_train.py
# --wait-policy). It must be set before torch is imported; set OMP_WAIT_POLICY=ACTIVE to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    parser.add_argument("--max-steps", type=int, help="a shorter run than PRETRAIN_CONFIG.max_steps")
    parser.add_argument("--threads", type=int, help="PyTorch threads (default: PyTorch's choice)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the model (needs a C++ compiler). On an idle 2-core CPU it was "
                             "5%% slower than eager mode, on a busy shared one 1.2x faster: see bench/bench_train.py")
    parser.add_argument("--note", default="", help="a line for the model card (e.g. 'preliminary')")
    args = parser.parse_args()

    import dataclasses

    import torch

    from llmscratch import train

    if args.threads:
        torch.set_num_threads(args.threads)
    train_cfg, work_dir = train.PRETRAIN_CONFIG, train.PRETRAIN_WORK_DIR
    if args.max_steps:
        every = max(1, args.max_steps // 8)
        train_cfg = dataclasses.replace(train_cfg, max_steps=args.max_steps, eval_every=every, eval_windows=16,
                                        warmup_steps=min(train_cfg.warmup_steps, max(1, args.max_steps // 10)),
                                        sample_every=every * 4)
        work_dir = work_dir.with_name(f"{work_dir.name}-{args.max_steps}-steps")
    shown = [a for a in sys.argv[1:] if a not in (args.note, "--note")]  # the note goes into the card itself
    command = "make pretrain" if not shown else "python tools/pretrain.py " + " ".join(shown)
    note = f"\n**{args.note}**\n" if args.note else ""
    final_windows = 800 if args.max_steps is None else 128
    train.pretrain(train_cfg=train_cfg, work_dir=work_dir, fresh=args.fresh, final_windows=final_windows,
                   compile_model=args.compile,
                   checkpoint_every=min(200, train_cfg.eval_every), command=command, note=note)


if __name__ == "__main__":
    main()
