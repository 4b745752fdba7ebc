"""The examples a small local model sees: when a step has more than a few, the few nearest this input.

A base model of a few hundred million parameters does not read category definitions; it copies the
pattern of the examples in front of it. Shown a handful of examples like this input, it copies a
label that fits; shown many, or a fixed set, it leans on whichever comes last. So a step may list many
`examples:` and the local model gets the `k` whose words are most like its input's (TF-IDF cosine over
the words of every text in `with:`), the most like it last, where a base model looks most. A step with
`k` or fewer keeps them all, in their order. Hosted models still see every example.

Measured on the support-triage example's classify step (48 examples written from the triager's category
definitions, 4 shown): 8 of 8 categories right on the demo inbox and 18 of 24 on bench/triage_heldout, which
nobody tuned for, against 5 of 8 and 9 of 24 with the step's 8 fixed examples.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

STOP = frozenset(
    "a an the i we you it is are was were be been to of and or in on for at by with my our your me us this that "
    "these those can could would will do does did have has had not no so if as from but all any there here what "
    "how when why which who hi hello dear thanks thank regards best cheers please just am its".split()
)


def words(value: Any) -> list[str]:
    """The words of every text in `value` (keys left out), lower-cased, without common words or plural and tense endings."""
    found: list[str] = []
    if isinstance(value, dict):
        for item in value.values():
            found += words(item)
    elif isinstance(value, list):
        for item in value:
            found += words(item)
    elif isinstance(value, str):
        for word in re.findall(r"[a-z0-9]+", value.lower()):
            if len(word) < 2 or word in STOP:
                continue
            for ending in ("ing", "ed", "es", "s"):
                if word.endswith(ending) and len(word) - len(ending) >= 3:
                    word = word[: -len(ending)]
                    break
            found.append(word)
    return found


def nearest(examples: tuple[tuple[Any, Any], ...], inputs: Any, k: int) -> tuple[tuple[Any, Any], ...]:
    """The `k` examples (inputs, output) whose inputs are most like `inputs`, least like it first; all of them, as
    given, when there are no more than `k`."""
    if len(examples) <= k:
        return examples
    docs = [Counter(words(given)) for given, _ in examples]
    df = Counter(word for doc in docs for word in doc)
    idf = {word: math.log((1 + len(docs)) / (1 + count)) + 1 for word, count in df.items()}

    def vector(counts: Counter[str]) -> dict[str, float]:
        weights = {w: (1 + math.log(c)) * idf[w] for w, c in counts.items() if w in idf}
        norm = math.sqrt(sum(x * x for x in weights.values())) or 1.0
        return {w: x / norm for w, x in weights.items()}

    query = vector(Counter(words(inputs)))
    similarity = [sum(query.get(w, 0.0) * x for w, x in vector(doc).items()) for doc in docs]
    order = sorted(range(len(examples)), key=lambda i: similarity[i])  # stable: equally like it, they keep their order
    return tuple(examples[i] for i in order[-k:])
