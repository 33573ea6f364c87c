"""The Korean documents of the retrieval benchmark.

- `load_seeds`: the seed documents in `shared/seeds/` beside the repository (a Supabase and
  pgvector blog post, a Django + pgvector tutorial, a 60 KB report on vector embeddings in
  Supabase); ids are the file names without `.txt`.
- `load_konlpy`: where the PyPI package konlpy is installed, the Korean texts it ships: the
  Constitution of the Republic of Korea (`kolaw/constitution`) and ten National Assembly bills
  of 2010 (`kobill/1809890` ...). They are read as files; konlpy itself, which starts a JVM,
  is never imported.

Both raise `CorpusMissing`, with a message saying what to do, when their texts are absent.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEEDS_DIR = REPO.parent / "shared" / "seeds"
KONLPY_CORPORA = ("kolaw", "kobill")


class CorpusMissing(Exception):
    """The texts of a corpus are not on this machine; the message says where they were looked for."""


@dataclass(frozen=True)
class Document:
    """One text of the corpus: `id` is unique across corpora, `corpus` names where it came from."""

    id: str
    corpus: str
    text: str


def load_seeds(directory: Path = SEEDS_DIR) -> list[Document]:
    """The seed documents (`*.txt` in `directory`), sorted by file name."""
    files = sorted(directory.glob("*.txt")) if directory.is_dir() else []
    if not files:
        raise CorpusMissing(
            f"no seed documents in {directory}: the Korean benchmark reads the *.txt files of "
            "shared/seeds/ next to the repository"
        )
    return [Document(path.stem, "seeds", path.read_text(encoding="utf-8")) for path in files]


def load_konlpy() -> list[Document]:
    """konlpy's Korean texts (constitution and bills), sorted by id."""
    spec = importlib.util.find_spec("konlpy")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise CorpusMissing("konlpy is not installed (pip install konlpy): its constitution and bills are skipped")
    root = Path(next(iter(spec.submodule_search_locations))) / "data" / "corpus"
    documents = [
        Document(f"{name}/{path.stem}", "konlpy", path.read_text(encoding="utf-8"))
        for name in KONLPY_CORPORA
        for path in sorted((root / name).glob("*.txt"))
    ]
    if not documents:
        raise CorpusMissing(f"konlpy is installed but ships no texts under {root}")
    return documents
