"""Korean retrieval benchmark: documents, a question set with answer spans, and metrics.

`corpus` loads the documents, `questions` the question set with its answers as character
spans, `paragraphs` a simple paragraph split, `metrics` recall@k and MRR@k;
`retrieval_probe.py` measures models with them, `../retrieval_korean.py` autoembed itself.
"""
