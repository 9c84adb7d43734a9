"""Train TriBERT with the paper's joint objective (classification + mix-and-separate) with accelerate.

    accelerate launch examples/run_separation.py --dataset synthetic:small --model_size small --output_dir out/
    python examples/run_separation.py --dataset /path/to/prepared --output_dir out/ --model_size paper

`--dataset` is `synthetic:tiny`, `synthetic:small` (the built-in synthetic music dataset) or a folder written by
`tribert prepare`. Every `--eval_steps` the model separates the validation mixtures (pairs of clips, centre crops)
and SDR/SIR/SAR are measured with the fast BSS Eval, next to the mixture floor; the best model by SDR is kept in
`output_dir/best`. Checkpoints (`accelerator.save_state`) are written to a temporary folder and renamed into
`output_dir/checkpoints/step-N`; `--resume` continues from the latest one with the same data order.

A run writes its arguments to `output_dir/run_args.json`. A non-empty `--output_dir` is refused unless `--resume`
(continue the run there: refused when its arguments differ, apart from the operational ones, or when its latest
checkpoint lies past `--max_steps`) or `--overwrite_output_dir` (start over: the old run's checkpoints, best model,
logs and run_args.json are deleted first; other files are left alone).

The training loop is the library's, `tribert_hf.training.separation` (`main`, `SeparationTrainingArguments`).
"""

import sys

from tribert_hf.training.separation import RunArgumentsError, main


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except RunArgumentsError as error:
        print(f"run_separation.py: error: {error}", file=sys.stderr)
        sys.exit(2)
