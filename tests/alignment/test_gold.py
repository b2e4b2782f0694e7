import pytest

from alignment.gold import gold_components, gold_preference, gold_score

PROMPT = "The json module encodes Python objects as JSON text and decodes JSON documents"


def test_terms_add_up_to_the_score():
    for response in [
        "",
        "json objects decode",
        "The encoder writes JSON text for Python objects.",
        "the the the the the the the the",
        "weather is nice today and cats sleep a lot",
    ]:
        assert sum(gold_components(PROMPT, response).values()) == pytest.approx(gold_score(PROMPT, response), abs=1e-6)


def test_each_term_rewards_what_it_names():
    on_topic = gold_components(PROMPT, "JSON text decodes into Python objects")
    off_topic = gold_components(PROMPT, "weather today looks rather pleasant outside")
    assert on_topic["topicality"] > off_topic["topicality"]
    assert gold_components(PROMPT, "JSON objects.")["clean_end"] > gold_components(PROMPT, "JSON objects")["clean_end"]
    repeated = gold_components(PROMPT, "json text json text json text json text json text")
    assert repeated["repetition"] < 0
    assert gold_components(PROMPT, "json text decodes objects")["repetition"] == 0
    longer = gold_components(PROMPT, "json text decodes into objects with every field kept in order")
    assert longer["substance"] > gold_components(PROMPT, "json text")["substance"]


def test_preference_follows_the_score():
    assert gold_preference(PROMPT, "JSON text decodes into Python objects.", "weather") == "a"
    assert gold_preference(PROMPT, "same", "same") == "tie"
