"""The gold judge for the pipeline's own pairs: what simulated annotators prefer, and why it is fair.

The pipeline's policy continues prompts cut from Python's documentation. A careful human judge
of such continuations rewards, in this order: staying on the prompt's topic, not repeating
itself, saying something (length, up to a point), and ending cleanly rather than mid-word.
`gold_score` is a fixed, hand-written rubric of exactly those four things. It is a fair stand-in
for the human because (1) the policy never sees it — DPO only sees which response of a pair
the annotators chose, through their noise (AlpacaFarm's 25% flips, Bradley–Terry choice noise);
(2) it is deterministic and independent of every model in the run, so a higher gold win rate is
a real change in the text, not a model grading itself.

Caveat reported with every benchmark: the `stats` reward-model features measure some of the same
surface quantities (length, repetition, prompt overlap), so a feature gain from `stats` on these
pairs is optimistic; strategy comparisons use identical features and are unaffected.
"""

from __future__ import annotations

import math
import re

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STOP = frozenset(
    "the a an and or of to in is are be for on with as by that this it its from at was were not can "
    "if then else which who when what into will may also has have had but you your their there these those".split()
)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _STOP]


def gold_components(prompt: str, response: str) -> dict[str, float]:
    """The rubric's four terms, weighted as `gold_score` adds them (so they sum to it).

    Reported apart because a policy may learn some terms (length, a clean ending) far more easily
    than others (staying on topic): the mean score alone does not say which moved.
    """
    words = _WORD.findall(response.lower())
    if not words:  # the rubric's floor, charged to substance: nothing was said
        return {"topicality": 0.0, "substance": -2.0, "clean_end": 0.0, "repetition": 0.0}
    topic = set(_content_words(prompt))
    content = _content_words(response)
    # Topicality: share of the response's content words that the prompt's topic licenses (with a floor
    # of credit for some new words: a continuation must add something).
    on_topic = sum(w in topic for w in content) / len(content) if content else 0.0
    topicality = 2.0 * min(on_topic / 0.3, 1.0) if topic else 1.0
    trigrams = list(zip(words, words[1:], words[2:]))
    repetition = 1.0 - len(set(trigrams)) / len(trigrams) if trigrams else 0.0
    substance = min(math.log1p(len(words)) / math.log1p(30), 1.0)
    clean_end = 0.5 if response.rstrip().endswith((".", ":", ")", "!", "?")) else 0.0
    return {
        "topicality": topicality,
        "substance": 1.5 * substance,
        "clean_end": clean_end,
        "repetition": -3.0 * repetition,
    }


def gold_score(prompt: str, response: str) -> float:
    """A reward in roughly [-2, 5]: topicality + non-repetition + substance + a clean ending."""
    return round(sum(gold_components(prompt, response).values()), 6)


def gold_preference(prompt: str, response_a: str, response_b: str) -> str:
    """'a' or 'b' by gold score ('tie' when equal): the noise-free verdict."""
    a, b = gold_score(prompt, response_a), gold_score(prompt, response_b)
    return "a" if a > b else "b" if b > a else "tie"
