"""Exact and near-duplicate removal: one document kept per cluster, the first one read."""

import pytest
from prepare_helpers import prose

from pretrain.dedup import DedupConfig, DuplicateIndex, Fingerprinter


def run_dedup(texts, tmp_path, **config):
    config = DedupConfig(**config)
    fingerprint = Fingerprinter(config)
    index = DuplicateIndex(config, tmp_path / "signatures.bin")
    for text in texts:
        index.add(fingerprint(text))
    index.finish()
    verdicts = [index.verdict(i) for i in range(len(texts))]
    clusters = index.clusters()
    index.close()
    return verdicts, clusters


def with_changed_words(text: str, positions, word="changed") -> str:
    words = text.split(" ")
    for position in positions:
        words[position] = word
    return " ".join(words)


def test_exact_duplicate_after_normalisation(tmp_path):
    original = prose(seed=1)
    copy = original.upper().replace(" ", "   ").replace("\n", " \n ")
    verdicts, clusters = run_dedup([original, prose(seed=2), copy], tmp_path)
    assert [v.kept for v in verdicts] == [True, True, False]
    assert verdicts[2].reason == "exact_duplicate" and verdicts[2].matched == 0 and verdicts[2].kept_instead == 0
    assert clusters == 1


def test_near_duplicate_with_a_few_words_changed_is_removed(tmp_path):
    original = prose(seed=3)
    near = with_changed_words(original, (5, 60, 120))
    different = prose(seed=4)
    verdicts, _ = run_dedup([original, near, different], tmp_path, exact_dedup=False)
    assert verdicts[0].kept and verdicts[2].kept
    assert not verdicts[1].kept and verdicts[1].reason == "near_duplicate" and verdicts[1].matched == 0
    assert 0.7 < verdicts[1].similarity < 1.0


def test_documents_sharing_only_some_words_are_kept(tmp_path):
    # half the sentences shared: Jaccard ~1/3, far below the ~0.72 the 14x8 bands target
    first, second = prose(seed=5).splitlines(), prose(seed=6).splitlines()
    mixed = "\n".join(first[:6] + second[6:])
    verdicts, clusters = run_dedup(["\n".join(first), mixed], tmp_path)
    assert all(v.kept for v in verdicts) and clusters == 0


def test_chains_form_one_cluster_and_keep_the_first(tmp_path):
    base = prose(seed=7)
    one = with_changed_words(base, (10, 70))
    two = with_changed_words(one, (130, 170))
    verdicts, clusters = run_dedup([base, prose(seed=8), one, two], tmp_path)
    assert [v.kept for v in verdicts] == [True, True, False, False]
    assert verdicts[3].kept_instead == 0 and clusters == 1


def test_dedup_switches(tmp_path):
    text = prose(seed=9)
    verdicts, _ = run_dedup([text, text], tmp_path, exact_dedup=False, near_dedup=False)
    assert all(v.kept for v in verdicts)
    verdicts, _ = run_dedup([text, text], tmp_path, near_dedup=False)
    assert verdicts[1].reason == "exact_duplicate"


def test_fingerprints_are_deterministic_and_seeded():
    text = prose(seed=10)
    assert Fingerprinter(DedupConfig())(text).bands == Fingerprinter(DedupConfig())(text).bands
    assert Fingerprinter(DedupConfig())(text).bands != Fingerprinter(DedupConfig(minhash_seed=2))(text).bands
    config = DedupConfig()
    assert (config.minhash_bands, config.minhash_rows, config.shingle_size) == (14, 8, 5)
    assert config.similarity_threshold == pytest.approx(0.719, abs=1e-3)


def test_a_document_joined_through_a_later_one_is_compared_with_the_kept_one(tmp_path):
    """a and c share no bucket; b, read last, shares one with each: {a, b, c} is one cluster,
    a is kept, and c (which matched nothing when it was read) is removed as a's near duplicate."""
    import numpy as np

    from pretrain.dedup import Fingerprint

    config = DedupConfig(minhash_bands=3, minhash_rows=2)

    def fingerprint(bands, fill):
        return Fingerprint(None, np.full(config.num_perm, fill, dtype=np.uint32).tobytes(), bands)

    index = DuplicateIndex(config, tmp_path / "signatures.bin")
    index.add(fingerprint((1, 2, 3), 7))  # a
    index.add(fingerprint((10, 20, 30), 9))  # c
    index.add(fingerprint((1, 20, 99), 7))  # b
    index.finish()
    a, c, b = (index.verdict(i) for i in range(3))
    assert a.kept and not b.kept and not c.kept
    assert b.matched == 0 and b.kept_instead == 0
    assert c.matched == 0 and c.kept_instead == 0 and c.similarity == 0.0
    assert index.clusters() == 1
    index.close()
