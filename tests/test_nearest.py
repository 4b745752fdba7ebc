"""The few examples a small local model sees of a step's many: those nearest its input (models/nearest.py)."""

from __future__ import annotations

from lane.models.base import ModelRequest, Task
from lane.models.local import EXAMPLES_SHOWN, render_prompt
from lane.models.nearest import nearest, words

EXAMPLES = tuple(
    ({"email": {"from": f"x{i}@shop.example", "subject": subject, "body": body}}, {"category": category})
    for i, (subject, body, category) in enumerate([
        ("Refund", "I was charged twice this month, please refund one payment.", "billing"),
        ("Invoice", "Can you send the invoice for October?", "billing"),
        ("Broken", "The board shows an error and nothing loads.", "bug"),
        ("Crash", "The app crashes when I open a report.", "bug"),
        ("Idea", "Please add a calendar view for tasks.", "feature_request"),
        ("Idea", "Could you add keyboard shortcuts?", "feature_request"),
        ("Question", "Do you have an office in Berlin?", "other"),
        ("Login", "How do I change the email I sign in with?", "other"),
    ])
)


def subjects(chosen: tuple) -> list[str]:
    return [given["email"]["body"] for given, _ in chosen]


def test_the_examples_with_the_most_words_in_common_are_chosen_the_nearest_last() -> None:
    email = {"email": {"from": "dana@north.example", "subject": "Charged twice", "body": "We were charged twice, please refund the second payment."}}
    chosen = nearest(EXAMPLES, email, 2)
    assert len(chosen) == 2
    assert chosen[-1] == EXAMPLES[0], subjects(chosen)
    crash = nearest(EXAMPLES, {"email": {"subject": "Crashes", "body": "Each time I open a report the app crashes."}}, 3)
    assert crash[-1][1] == {"category": "bug"} and crash[-1] == EXAMPLES[3], subjects(crash)


def test_no_more_examples_than_shown_are_kept_as_they_are() -> None:
    assert nearest(EXAMPLES[:3], {"email": "anything at all"}, 3) == EXAMPLES[:3]
    assert nearest((), {"email": "x"}, 4) == ()


def test_words_leave_out_keys_common_words_and_endings() -> None:
    assert words({"subject": "The exports failed", "n": 3, "tags": ["Charges"]}) == ["export", "fail", "charg"]


def test_the_local_prompt_shows_only_the_examples_nearest_the_input() -> None:
    email = {"email": {"subject": "Add a calendar", "body": "Please add a calendar view, and tasks by week."}}
    task = Task("You triage email.", "Classify it.", email, EXAMPLES)
    prompt = render_prompt(ModelRequest(messages=[], task=task), {"type": "object"})
    shown = [e for e in EXAMPLES if e[0]["email"]["body"] in prompt]
    assert len(shown) == EXAMPLES_SHOWN < len(EXAMPLES)
    last = prompt.rindex("Please add a calendar view for tasks.")
    assert all(prompt.index(given["email"]["body"]) <= last for given, _ in shown), "the nearest comes last"
    assert prompt.index("Please add a calendar view, and tasks by week.") > last, "then this input"
