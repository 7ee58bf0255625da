"""Grouping values: one candidate group (:class:`Candidate`) and the rules that derive a group's value
from an affinity matrix (CONTRACT.md, ``group_value``): ``tag``, ``hoa`` (:func:`task_value`) and
``pairwise_mean_by_size`` (:func:`pairwise_mean_value`)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

MODES = ("cover", "partition")
RULES = ("tag", "hoa", "pairwise_mean_by_size")
CONVENTIONS = ("onto", "from")
DIAGONAL = ("ignore", "include")


@dataclass(frozen=True)
class Candidate:
    """One candidate group (network). ``values`` holds the per-member values aligned with ``members``;
    ``group_value`` a scalar value of the whole group (partition mode only). Exactly one is set."""

    id: str
    members: tuple[str, ...]
    values: tuple[float, ...] | None
    group_value: float | None
    resources: tuple[tuple[str, float], ...]

    @property
    def total(self) -> float:
        """The group's value in partition mode: its scalar value or the sum of its members' values."""
        if self.group_value is not None:
            return self.group_value
        return float(sum(self.values or ()))

    def value_of(self, task: str) -> float:
        assert self.values is not None
        return self.values[self.members.index(task)]

    def resource(self, name: str) -> float:
        for key, amount in self.resources:
            if key == name:
                return amount
        return 0.0


def task_value(M, index: Mapping[str, int], rule: str | None, diagonal: str, task: str, members: Sequence[str]) -> float | None:
    """Per-task value of ``task`` in the group ``members`` (CONTRACT.md, group_value):

    * ``tag``: mean over b in G, b != a, of M[a][b]; singletons are not candidates.
    * ``hoa``: M[a][a] if G = {a}, else the mean over b in G, b != a, of M[a][b].

    With ``diagonal: include`` the mean runs over every b in G, a itself included (so ``tag``
    singletons become candidates worth M[a][a]).
    """
    a = index[task]
    others = [index[b] for b in members if b != task]
    if diagonal == "include":
        cols = others + [a]
        return sum(M[a][b] for b in cols) / len(cols)
    if not others:
        if rule == "hoa":
            return float(M[a][a])
        return None
    return sum(M[a][b] for b in others) / len(others)


def pairwise_mean_value(M, idx: Sequence[int], include_diagonal: bool = False) -> float:
    """Principled-grouping value (1/|G|) * sum_{i != k in G} M[i][k] (+ M[i][i] with the diagonal)."""
    s = 0.0
    for i in idx:
        row = M[i]
        for k in idx:
            if i != k or include_diagonal:
                s += row[k]
    return s / len(idx)
