"""The two vocabularies of a pair verdict, and the one mapping between them.

Human labels name the *item's* responses in lower case: ``a`` is ``response_a``, ``b`` is
``response_b``, ``tie`` neither (labelled sets, audits, reviewer exchanges). The judge's winner
names them in upper case, ``A`` / ``B`` / ``tie``, in the item's own order (a verdict read from the
swapped order is already mapped back). Everything that compares the two goes through
:func:`human_label` and :func:`judge_winner`, so a new spelling cannot creep in on one side only.
"""

from __future__ import annotations

from typing import Literal

__all__ = ["HUMAN_LABELS", "HumanLabel", "JUDGE_WINNERS", "JudgeWinner", "human_label", "judge_winner"]

HumanLabel = Literal["a", "b", "tie"]
JudgeWinner = Literal["A", "B", "tie"]

#: Human labels in their canonical order (rows of a confusion matrix).
HUMAN_LABELS: tuple[HumanLabel, ...] = ("a", "b", "tie")
#: Judge winners in the same order.
JUDGE_WINNERS: tuple[JudgeWinner, ...] = ("A", "B", "tie")

_TO_HUMAN: dict[str, HumanLabel] = dict(zip(JUDGE_WINNERS, HUMAN_LABELS))
_TO_JUDGE: dict[str, JudgeWinner] = dict(zip(HUMAN_LABELS, JUDGE_WINNERS))


def human_label(winner: str) -> HumanLabel:
    """The human label that says the same as the judge's ``winner`` (``A`` -> ``a``).

    Raises:
        ValueError: ``winner`` is not ``A``, ``B`` or ``tie``.
    """
    try:
        return _TO_HUMAN[winner]
    except KeyError:
        raise ValueError(f"a judge winner must be one of {list(JUDGE_WINNERS)}, got {winner!r}") from None


def judge_winner(label: str) -> JudgeWinner:
    """The judge winner that says the same as the human ``label`` (``a`` -> ``A``).

    Raises:
        ValueError: ``label`` is not ``a``, ``b`` or ``tie``.
    """
    try:
        return _TO_JUDGE[label]
    except KeyError:
        raise ValueError(f"a human label must be one of {list(HUMAN_LABELS)}, got {label!r}") from None
