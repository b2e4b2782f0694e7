import json

import pytest

from annotation.errors import InvalidPairError, PairsFileError
from annotation.pairs import PreferencePair, read_pairs_jsonl, write_pairs_jsonl


def test_pair_id_is_content_digest_and_stable():
    one = PreferencePair("p", "x", "y")
    assert len(one.pair_id) == 16 and one.pair_id == PreferencePair("p", "x", "y").pair_id
    assert one.pair_id != PreferencePair("p", "y", "x").pair_id
    assert PreferencePair("p", "x", "y", pair_id="mine").pair_id == "mine"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predicted": "c"}, "predicted"),
        ({"predicted": "a", "confidence": 0.2}, "confidence"),
        ({"predicted": "a", "confidence": "high"}, "confidence"),
        ({"confidence": 0.7}, "without 'predicted'"),
        ({"metadata": [1]}, "metadata"),
    ],
)
def test_bad_fields_are_refused(kwargs, message):
    with pytest.raises(InvalidPairError, match=message):
        PreferencePair("p", "x", "y", **kwargs)


def test_round_trip_and_trl_rows(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = [PreferencePair("p1", "x", "y", model="m", predicted="b", confidence=0.8, metadata={"round": 1})]
    write_pairs_jsonl(path, pairs)
    assert read_pairs_jsonl(path) == pairs

    trl = tmp_path / "trl.jsonl"
    trl.write_text(json.dumps({"prompt": "q", "chosen": "good", "rejected": "bad", "source": "hh"}) + "\n\n")
    (pair,) = read_pairs_jsonl(trl)
    assert (pair.response_a, pair.response_b) == ("good", "bad")
    assert pair.metadata == {"source": "hh", "trl_chosen": "a"}


def test_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"prompt": "q", "response_a": "x", "response_b": "y"}) + "\n{oops\n")
    with pytest.raises(PairsFileError, match=r"bad.jsonl line 2: not valid JSON"):
        read_pairs_jsonl(path)
    path.write_text(json.dumps({"prompt": "q", "response_a": "x"}) + "\n")
    with pytest.raises(PairsFileError, match=r"line 1: missing field 'response_b'"):
        read_pairs_jsonl(path)
    path.write_text(
        "\n".join(json.dumps({"prompt": "q", "response_a": a, "response_b": "y", "pair_id": "same"}) for a in "xz")
    )
    with pytest.raises(PairsFileError, match=r"line 2: pair_id 'same' already names a different pair on line 1"):
        read_pairs_jsonl(path)
    with pytest.raises(PairsFileError, match="no such pairs file"):
        read_pairs_jsonl(tmp_path / "missing.jsonl")


def test_repeated_identical_pair_is_read_once(tmp_path):
    path = tmp_path / "dup.jsonl"
    row = json.dumps({"prompt": "q", "response_a": "x", "response_b": "y"})
    path.write_text(f"{row}\n{row}\n")
    assert len(read_pairs_jsonl(path)) == 1
