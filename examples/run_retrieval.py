"""Cross-modal retrieval with TriBERT's representations (paper Sec. 4.2, Table 3), with accelerate.

    python examples/run_retrieval.py --dataset synthetic:small --model_name_or_path outputs/separation --output_dir out/
    accelerate launch examples/run_retrieval.py --dataset /path/to/prepared --model_name_or_path ckpt/ --variants all

For each retrieval variant (audio -> vision, vision -> audio, audio -> pose, pose -> audio, vision + audio -> pose)
and each kind of embedding (the transformer's hidden states, or the stream embeddings before the transformer: the
paper's baseline) a `TriBertForRetrieval` head is trained as n-way multiple choice on the train split: the query
streams of a clip against the candidate stream of the same clip (the positive) and of n - 1 other clips
(distractors). On the evaluation split every query is then ranked against the candidates of every clip of the
split, and top-1/5/10 accuracy (%) is reported in the layout of the paper's Table 3.

The encoder comes from `--model_name_or_path` (a `TriBertForPreTraining` folder written by `run_separation.py`, or
any TriBERT checkpoint) and is kept frozen by default; without a checkpoint a randomly initialised model of
`--model_size` is used (a smoke test: its numbers measure random features).

Writes `output_dir/retrieval_results.json`, `output_dir/retrieval_table.md` and one folder per trained model,
`output_dir/<variant>-<embeddings>/` (`save_pretrained` + the processor).

`--method embedding` trains instead one `TriBertForContrastiveRetrieval` per kind of embedding: an embedding per
clip and modality (the other streams blank), projected into a shared space and trained with InfoNCE over batches of
clips on the frozen encoder's cached features (plus, with `--hard_negative_weight`, the paper's n-way choice
against the nearest negatives of the batch). It reports both protocols for the five variants: full-collection
recall@1/5/10 and median rank, and n-way multiple choice (top-1/5/10, n = `--eval_num_choices`) with random and
with nearest-neighbour (hard) distractors. The model goes to `output_dir/embedding-<embeddings>/`, ready for
`tribert index build`.

The loop is the library's, `tribert_hf.training.retrieval` (`main`, `RetrievalTrainingArguments`).
"""

import sys

from tribert_hf.training.retrieval import main


if __name__ == "__main__":
    main(sys.argv[1:])
