"""Embedders: vector shape and norm, determinism, similarity, token counts, cost, clear errors."""

import sys

import numpy as np
import pytest

from dagster_autopilot.vectors import (
    Embedder,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    estimate_cost,
)

TEXTS = [
    "Senior Data Engineer. skills: python, sql, spark, airflow. Building batch pipelines.",
    "Data engineer with Python and SQL; builds Airflow and Spark pipelines for the warehouse.",
    "Registered Nurse. skills: patient care, triage, wound care. Caring for critical patients.",
    "",
]


@pytest.fixture(scope="module")
def embedder() -> HashingEmbedder:
    return HashingEmbedder()


def test_vectors_are_float32_unit_rows_of_the_declared_width(embedder):
    vectors = embedder.embed(TEXTS)
    assert isinstance(embedder, Embedder)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, rtol=1e-5)
    assert not vectors[3].any()  # an empty text is a zero vector
    assert embedder.embed([]).shape == (0, 384)
    assert HashingEmbedder(dimensions=64, char_weight=0).embed(TEXTS[:1]).shape == (1, 64)


def test_similar_texts_score_higher_than_unrelated_ones(embedder):
    engineer, other_engineer, nurse, _ = embedder.embed(TEXTS)
    assert engineer @ other_engineer > 0.5
    assert engineer @ other_engineer > 2 * abs(engineer @ nurse)


def test_character_ngrams_let_word_forms_meet():
    texts = ["engineering", "engineer", "nurse", "senior data engineering", "senior data engineer"]
    words_only = HashingEmbedder(char_weight=0).embed(texts)
    with_chars = HashingEmbedder().embed(texts)
    assert words_only[0] @ words_only[1] == 0.0  # different words, nothing in common
    assert with_chars[0] @ with_chars[1] > 0.05 > abs(with_chars[0] @ with_chars[2])
    assert with_chars[3] @ with_chars[4] > words_only[3] @ words_only[4] + 0.03


def test_the_same_text_gets_the_same_vector_in_any_instance_and_batch(embedder):
    alone = HashingEmbedder().embed(TEXTS[1:2])
    np.testing.assert_array_equal(embedder.embed(TEXTS)[1], alone[0])
    np.testing.assert_array_equal(embedder.embed(TEXTS), HashingEmbedder().embed(TEXTS))


def test_the_name_follows_the_settings():
    names = {HashingEmbedder().name, HashingEmbedder(128).name, HashingEmbedder(char_weight=0).name}
    assert len(names) == 3
    assert HashingEmbedder().name == HashingEmbedder().name


def test_tokens_are_words_and_symbols(embedder):
    assert embedder.count_tokens(["C++ and SQL, 5 years"]) == 8
    assert embedder.count_tokens(["two words", ""]) == 2


class PricedEmbedder(HashingEmbedder):
    price_per_1k_tokens = 0.02


def test_estimate_cost_counts_records_tokens_characters_and_dollars():
    cost = estimate_cost(PricedEmbedder(), ["one two three", "four"] * 500)
    assert (cost.records, cost.tokens, cost.characters) == (1000, 2000, 8500)
    assert cost.estimated_cost_usd == pytest.approx(0.04)
    assert estimate_cost(HashingEmbedder(), ["one two"]).estimated_cost_usd == 0.0


def test_sentence_transformer_refuses_a_missing_model_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        SentenceTransformerEmbedder(tmp_path / "no-such-model")
    with pytest.raises(FileNotFoundError, match="no sentence-transformers model"):
        SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")


def test_sentence_transformer_without_the_package_says_which_extra_to_install(tmp_path, monkeypatch):
    # As if the optional package were not installed, whether or not it is on this machine.
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"dagster-autopilot\[sentence-transformers\]"):
        SentenceTransformerEmbedder(tmp_path)
    # An installed package's directory is found too (json stands in for a model package).
    with pytest.raises(ImportError, match="needs the sentence-transformers package"):
        SentenceTransformerEmbedder("json")
