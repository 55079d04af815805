"""Endpoint templates and concrete paths: tokenising, validating and resolving them.

Resolution sits on the ingest hot path, so `EndpointTree` precomputes, for every level and
literal token, the bit set of mappings accepting that token there; resolving a path is then one
dictionary lookup and one integer AND per level, however many mappings the interface has.
The same bit sets answer the overlap check in time linear in the number of mappings.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from astraea.core.interface import Mapping

_FORBIDDEN_IN_PATH = re.compile("[+#\x00]")
# The removal Astarte applies before hashing endpoint ids: placeholders with `_` survive it.
_ID_PLACEHOLDER = re.compile(r"%\{[a-zA-Z0-9]*\}")


class InvalidPathError(ValueError):
    """A concrete path that no endpoint could ever accept (Astarte `invalid_path`)."""


def endpoint_tokens(endpoint: str) -> tuple[str, ...]:
    """Levels of a validated endpoint template: `/%{id}/value` → (`%{id}`, `value`)."""
    return tuple(endpoint[1:].split("/"))


def is_placeholder(token: str) -> bool:
    return token.startswith("%{")


def object_key(mapping: Mapping) -> str:
    """The key naming a mapping inside an object aggregate value: its last endpoint level."""
    return mapping.endpoint.rsplit("/", 1)[1]


def endpoint_identity(endpoint: str) -> str:
    """The string Astarte hashes into an endpoint id; mappings keep their id across minor
    updates only if this string is unchanged."""
    return _ID_PLACEHOLDER.sub("", endpoint)


def path_tokens(path: str) -> tuple[str, ...]:
    """Levels of a concrete path (`/` is the root, with no levels).

    Parameter values must be non-empty, valid UTF-8 and free of `/`, `+`, `#` (MQTT wildcards)
    and NUL (forbidden in MQTT topics), as the documentation requires.
    """
    if not path.startswith("/"):
        raise InvalidPathError(f"path must start with '/': {path!r}")
    if path == "/":
        return ()
    if _FORBIDDEN_IN_PATH.search(path):
        raise InvalidPathError(f"path contains '+', '#' or NUL: {path!r}")
    if not path.isascii():
        try:
            path.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidPathError(f"path is not valid UTF-8: {path!r}") from None
    tokens = tuple(path[1:].split("/"))
    if "" in tokens:
        raise InvalidPathError(f"path has an empty level: {path!r}")
    return tokens


def _bits(mask: int) -> Iterator[int]:
    """Indexes of the set bits, lowest first (that is, in declaration order)."""
    while mask:
        lowest = mask & -mask
        yield lowest.bit_length() - 1
        mask ^= lowest


class EndpointTree:
    """Path resolution over one interface's mappings, built once and shared by every lookup.

    Lookups raise `InvalidPathError` for malformed paths and return nothing for paths that are
    well formed but match no endpoint.
    """

    __slots__ = (
        "_accepting",
        "_at_least_depth",
        "_exact_depth",
        "_max_depth",
        "_placeholders",
        "_tokens",
        "mappings",
        "object_prefix_depth",
    )

    def __init__(self, mappings: Iterable[Mapping]) -> None:
        self.mappings = tuple(mappings)
        self._tokens = tuple(endpoint_tokens(m.endpoint) for m in self.mappings)
        self._max_depth = max((len(tokens) for tokens in self._tokens), default=0)
        self._exact_depth = [0] * (self._max_depth + 2)
        self._placeholders = [0] * self._max_depth
        literals: list[dict[str, int]] = [{} for _ in range(self._max_depth)]
        for index, tokens in enumerate(self._tokens):
            bit = 1 << index
            self._exact_depth[len(tokens)] |= bit
            for level, token in enumerate(tokens):
                if is_placeholder(token):
                    self._placeholders[level] |= bit
                else:
                    literals[level][token] = literals[level].get(token, 0) | bit
        # Mappings accepting a literal token at a level: those spelling it plus all placeholders.
        self._accepting = [
            {token: mask | wildcard for token, mask in level.items()}
            for level, wildcard in zip(literals, self._placeholders, strict=True)
        ]
        self._at_least_depth = self._exact_depth.copy()
        for depth in range(self._max_depth, -1, -1):
            self._at_least_depth[depth] |= self._at_least_depth[depth + 1]
        depths = {len(tokens) for tokens in self._tokens}
        # Objects are published one level above their endpoints (Astarte ingestion rule).
        self.object_prefix_depth: int | None = depths.pop() - 1 if len(depths) == 1 else None

    def resolve(self, path: str) -> Mapping | None:
        """The mapping owning exactly this path, if exactly one does (writes and ingestion)."""
        tokens = path_tokens(path)
        if len(tokens) > self._max_depth:
            return None
        mask = self._match(tokens, self._exact_depth[len(tokens)])
        if mask and not mask & (mask - 1):
            return self.mappings[mask.bit_length() - 1]
        return None

    def resolve_partial(self, path: str) -> list[Mapping]:
        """Mappings that own this path or paths below it, in declaration order (reads)."""
        tokens = path_tokens(path)
        if len(tokens) > self._max_depth:
            return []
        mask = self._match(tokens, self._at_least_depth[len(tokens)])
        return [self.mappings[index] for index in _bits(mask)]

    def resolve_object(self, path: str) -> dict[str, Mapping] | None:
        """For an object aggregate published at `path`, its mappings keyed by `object_key`."""
        tokens = path_tokens(path)
        if len(tokens) >= self._max_depth:
            return None
        mask = self._match(tokens, self._exact_depth[len(tokens) + 1])
        if not mask:
            return None
        return {self._tokens[index][-1]: self.mappings[index] for index in _bits(mask)}

    def find_overlap(self) -> tuple[Mapping, Mapping] | None:
        """Two mappings one concrete path could reach both of, counting a path that is a prefix
        of another endpoint's paths (Astraea is stricter than Astarte here, as its
        documentation asks). None when every path resolves to at most one mapping."""
        all_mappings = (1 << len(self.mappings)) - 1
        for index, tokens in enumerate(self._tokens):
            others = all_mappings & ~(1 << index)
            for level, token in enumerate(tokens):
                if not is_placeholder(token):
                    # Endpoints ending above this level already matched a prefix of ours.
                    others &= self._accepting[level][token] | ~self._at_least_depth[level + 1]
                if not others:
                    break
            if others:
                return self.mappings[index], self.mappings[next(_bits(others))]
        return None

    def _match(self, tokens: tuple[str, ...], candidates: int) -> int:
        accepting = self._accepting
        placeholders = self._placeholders
        for level, token in enumerate(tokens):
            if not candidates:
                break
            candidates &= accepting[level].get(token, placeholders[level])
        return candidates
