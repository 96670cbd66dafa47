"""Embedders: text in, L2-normalized float32 vectors out, plus what embedding the texts would cost.

`HashingEmbedder` is the default: deterministic, stateless (nothing to fit, so vectors embedded on
different days stay comparable and incremental embedding stays consistent), and it downloads
nothing. `SentenceTransformerEmbedder` uses a sentence-transformers model that is already on disk.
"""

import importlib.util
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from dagster_autopilot.vectors.matching import normalize_rows

# What `count_tokens` counts when the embedder has no tokenizer of its own: runs of letters or
# digits, and every other non-space character on its own ("c++" is three tokens).
_WORD_OR_SYMBOL = re.compile(r"\w+|[^\w\s]")


@runtime_checkable
class Embedder(Protocol):
    """What the embedding and matching components need from an embedder."""

    name: str
    """Identifies the model and its settings: vectors from embedders of different names are never
    compared, and a stored vector whose embedder name differs counts as stale."""
    dimensions: int
    """Width of every vector `embed` returns."""
    price_per_1k_tokens: float
    """US dollars per 1,000 tokens `count_tokens` counts; 0.0 for a local model."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The texts' vectors: float32, shape (len(texts), dimensions), rows L2-normalized."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> int:
        """How many tokens embedding `texts` bills, by this embedder's rule."""
        ...


@dataclass(frozen=True)
class CostEstimate:
    """What embedding a batch of texts costs."""

    records: int
    """Texts in the batch."""
    tokens: int
    """Tokens, as the embedder counts them."""
    characters: int
    """Characters (code points) of all texts."""
    estimated_cost_usd: float
    """tokens / 1000 * the embedder's price per 1,000 tokens."""


def estimate_cost(embedder: Embedder, texts: Sequence[str]) -> CostEstimate:
    """The size of `texts` and what embedding them with `embedder` would cost, without embedding."""
    tokens = embedder.count_tokens(texts)
    return CostEstimate(
        records=len(texts),
        tokens=tokens,
        characters=sum(len(text) for text in texts),
        estimated_cost_usd=tokens / 1000 * embedder.price_per_1k_tokens,
    )


class HashingEmbedder:
    """Hashed words and character n-grams within words, with sublinear counts; needs no download.

    Deterministic across processes and machines (scikit-learn's `HashingVectorizer`, a fixed
    murmurhash), and stateless: there is no vocabulary or IDF to fit, so a text's vector never
    depends on the other texts and vectors embedded on different days stay comparable. English stop
    words are dropped, since without IDF they would dominate every vector. Counts are scaled to
    1 + log(count), so a repeated word does not drown the others.

    Words carry the meaning; character 3- and 4-grams within words (weighted by `char_weight`, 0 to
    turn them off) let "engineer" meet "engineering" and survive typos. Measured on the synthetic
    talent data (`dagster_autopilot.samples.talent`, 3 seeds of 3,000 candidates x 1,000 jobs, 384
    dimensions), precision@5 of the occupation: words 0.9966, words + character n-grams at 0.5
    0.9972 (about 8x slower to embed: about 1 ms a text here), words + bigrams 0.9932 (bigrams
    double the features hashed into 384 dimensions, and the collisions cost more than they add).

    Tokens are counted as words and symbols (runs of letters or digits, and each other non-space
    character); the price is 0.0, as nothing is billed.
    """

    price_per_1k_tokens: float = 0.0

    def __init__(self, dimensions: int = 384, *, char_weight: float = 0.5) -> None:
        if dimensions < 1:
            raise ValueError(f"dimensions must be >= 1, got {dimensions}")
        if char_weight < 0:
            raise ValueError(f"char_weight must be >= 0, got {char_weight}")
        self.dimensions = dimensions
        self.char_weight = char_weight
        # The settings are in the name: vectors embedded under other settings count as stale.
        self.name = f"hashing-v1-d{dimensions}-c{char_weight:g}"
        # scikit-learn takes a second or more to import: only when something is embedded.
        self._vectorizers: list[tuple[Any, float]] | None = None

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """See `Embedder.embed`. An empty text gets a zero vector (it scores 0 against everything)."""
        total = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if not texts:
            return total
        for vectorizer, weight in self._feature_extractors():
            counts = vectorizer.transform(list(texts)).astype(np.float32)
            # Colliding features of opposite signs can cancel out to stored zeros.
            counts.eliminate_zeros()
            # Sublinear term frequency, keeping the hashing sign: sign(c) * (1 + log|c|).
            counts.data = np.sign(counts.data) * (1 + np.log(np.abs(counts.data)))
            total += weight * normalize_rows(counts.toarray())
        return normalize_rows(total)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """See `Embedder.count_tokens`: words and symbols, as the class docstring says."""
        return sum(len(_WORD_OR_SYMBOL.findall(text)) for text in texts)

    def _feature_extractors(self) -> list[tuple[Any, float]]:
        if self._vectorizers is None:
            from sklearn.feature_extraction.text import HashingVectorizer

            common = {"n_features": self.dimensions, "norm": None, "dtype": np.float32}
            self._vectorizers = [(HashingVectorizer(stop_words="english", **common), 1.0)]
            if self.char_weight > 0:
                chars = HashingVectorizer(analyzer="char_wb", ngram_range=(3, 4), **common)
                self._vectorizers.append((chars, self.char_weight))
        return self._vectorizers


class SentenceTransformerEmbedder:
    """A sentence-transformers model that is already on disk; nothing is ever downloaded.

    `model_path` is a directory holding a saved model, or the name of an installed Python package
    whose directory holds one. It needs the `sentence-transformers` extra
    (`pip install 'dagster-autopilot[sentence-transformers]'`). The model loads on first use, with
    the Hugging Face hub switched offline, and runs on the CPU unless `device` says otherwise.
    Tokens are counted with the model's own tokenizer.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        price_per_1k_tokens: float = 0.0,
        *,
        device: str = "cpu",
    ) -> None:
        self.model_dir = _local_model_dir(model_path)
        if importlib.util.find_spec("sentence_transformers") is None:
            raise ImportError(
                "SentenceTransformerEmbedder needs the sentence-transformers package: "
                "pip install 'dagster-autopilot[sentence-transformers]'"
            )
        self.price_per_1k_tokens = price_per_1k_tokens
        self.device = device
        self.name = f"sentence-transformers:{self.model_dir.name}"
        self._model: Any = None

    @property
    def dimensions(self) -> int:
        """See `Embedder.dimensions` (loads the model)."""
        return int(self._loaded().get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """See `Embedder.embed`."""
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        vectors = self._loaded().encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return normalize_rows(vectors)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """See `Embedder.count_tokens`: the model tokenizer's tokens, special tokens included."""
        if not texts:
            return 0
        encoded = self._loaded().tokenizer(list(texts), add_special_tokens=True)
        return sum(len(ids) for ids in encoded["input_ids"])

    def _loaded(self) -> Any:
        if self._model is None:
            # Belt and braces with local_files_only: even a model whose config names a hub
            # repository (a tokenizer, a remote module) stays offline.
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(self.model_dir), device=self.device, local_files_only=True
            )
        return self._model


def _local_model_dir(model_path: str | os.PathLike[str]) -> Path:
    """The directory of a saved model: `model_path` itself, or an installed package of that name."""
    path = Path(model_path).expanduser()
    if path.is_dir():
        return path
    name = str(model_path)
    if all(part.isidentifier() for part in name.split(".")):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.submodule_search_locations:
            return Path(next(iter(spec.submodule_search_locations)))
    raise FileNotFoundError(
        f"no sentence-transformers model at {str(model_path)!r}: give the directory of a saved "
        "model (SentenceTransformer.save) or the name of an installed package that ships one. "
        "Models are never downloaded."
    )
