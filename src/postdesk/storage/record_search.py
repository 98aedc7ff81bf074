"""The record search's plan: how each filter stays fast at a million records.

The indexes are migration 0003's. By filter:

- sender, result, since / until, and no filter: B-tree indexes ending in
  ``created_at, id`` yield the matching records already in order, so a page reads about
  ``limit`` index entries, and one bound per side keeps the planner on them.
- recipient, template (three characters or more), in up to three steps:
  1. read the newest SCAN_WINDOW candidates (the records the other filters let through)
     in order, stopping when the page is full: a common substring ends here;
  2. if that window found some matches, read on in order up to SCAN_BUDGET more
     candidates, where the window's rate of matches says the page should fill;
  3. otherwise, or if still short, a trigram index finds the candidates (PostgreSQL:
     ``pg_trgm`` GIN indexes; SQLite: an FTS5 ``trigram`` table), asked for the two or
     three trigrams of the substring that are rarest among the window's texts, so that
     it reads short posting lists; each candidate is then checked exactly.
  Neither planner can make these choices: SQLite keeps no statistics, and PostgreSQL
  underrates a trigram index that must read long posting lists.
- recipient, template of one or two characters: no trigram index can help; records are
  read newest first until the page is full: quick for a common substring, a scan of
  every candidate for one that (almost) never occurs (about a second at a million).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Text,
    column,
    func,
    select,
    table,
    text,
    true,
    tuple_,
)
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session
from sqlalchemy.sql import operators
from sqlalchemy.sql.expression import UnaryExpression

from postdesk.domain.records import STATUSES_OF_RESULT, RecordFilter, RecordKey
from postdesk.storage.models import Message
from postdesk.storage.records import RECORD_COLUMNS

# A substring search first reads this many of the newest candidates (and samples their texts).
SCAN_WINDOW = 2000
# It reads on in order up to this many more when the window suggests that fills the page.
SCAN_BUDGET = 20_000
# Trigram indexes need a substring of at least this many characters.
TRIGRAM = 3
# SQLite's trigram index over the searched texts (migration 0003); rowid = messages.id.
_FTS = table(
    "search_messages_fts",
    column("rowid", Integer),
    column("recipients_search", Text),
    column("template_name", Text),
)


_ORDER = (Message.created_at.desc(), Message.id.desc())
# PostgreSQL planner settings for the search's own transaction (set_config(..., true) is
# SET LOCAL):
# - plan_cache_mode: psycopg prepares statements that run often, and PostgreSQL may then
#   plan one once for all values; but trigram index or ordered scan depends on the values.
# - random_page_cost at most 1.1 (the usual value for SSDs and cached tables): with the
#   default 4.0 (spinning disks) the planner prefers reading a hundred thousand records in
#   created_at order to fetching two thousand through the sender index (measured at a
#   million records: 77 ms against 3 ms). A lower value the server has is kept.
_POSTGRES_SEARCH_SETTINGS = text(
    "SELECT set_config('plan_cache_mode', 'force_custom_plan', true), "
    "set_config('random_page_cost', "
    "least(current_setting('random_page_cost')::float8, 1.1)::text, true)"
)
_Wrap = Callable[[Any], Any]


def _as_is(column: Any) -> Any:
    return column


def _unindexed(column: Any) -> Any:
    """``+column``: the same value, which SQLite's planner will not look up in an index."""
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


@dataclass(frozen=True)
class _Span:
    """A stretch of the listing: below ``after`` (excluded) down to ``end`` (included)."""

    after: RecordKey | None = None
    end: RecordKey | None = None


class RecordSearch:
    """One search on one session: the filter as conditions, and the plan of the module doc."""

    def __init__(self, session: Session, flt: RecordFilter) -> None:
        # Plain Core execution: the ORM's row handling costs milliseconds on a window.
        self.db = session.connection()
        self.flt = flt
        self.sqlite = self.db.dialect.name == "sqlite"
        self.needles = _Needles.of(flt)
        self.checks = self.needles.checks(postgresql=not self.sqlite)
        if not self.sqlite:
            self.db.execute(_POSTGRES_SEARCH_SETTINGS)

    def rows(self, after: RecordKey | None, count: int) -> list[Row[Any]]:
        """Up to ``count`` matching rows after ``after``, newest first.

        Each step reads a stretch of the listing between explicit keys, right below the
        last: no record is read twice or skipped, even while records arrive meanwhile.
        """
        if not self.needles.indexable:
            # Nothing for a trigram index to do: read in order until the page is full.
            return self._fetch(_Span(after), count)
        # 1. The newest SCAN_WINDOW candidates, read in order: a common substring ends here.
        rows = self._scan(_Span(after), SCAN_WINDOW, count)
        if len(rows) >= count:
            return rows
        window = self._window(after)
        if window.end is None:
            return rows  # the window held every candidate
        rows = self._between(_Span(after, window.end), SCAN_WINDOW, count)  # to a fixed end
        after = window.end
        # 2. Common enough that reading on in order should fill the page within SCAN_BUDGET
        #    (a cost no planner can judge: SQLite keeps no statistics, and PostgreSQL
        #    underrates a trigram index that must read long posting lists).
        if (count - len(rows)) * SCAN_WINDOW <= len(rows) * SCAN_BUDGET:
            end = self._nth_key(_Span(after), SCAN_BUDGET)
            rows += self._between(_Span(after, end), SCAN_BUDGET, count - len(rows))
            if len(rows) >= count or end is None:
                return rows
            after = end
        # 3. Rare: the trigram index finds the candidates; only the page is read whole.
        ids = self._rare_ids(_Span(after), window, count - len(rows))
        return rows + self._fetch_ids(ids)

    def _between(self, span: _Span, budget: int, count: int) -> list[Row[Any]]:
        """The first ``count`` matches in a stretch of at most ``budget`` candidates.

        On PostgreSQL through _scan: planned with the substring checks in the query, an
        ordered scan of created_at (whose estimate assumes the checks pass a third of all
        records) can look cheaper than the index of the other filters and then read a
        hundred times more. SQLite has no such estimates: the bounds keep it on the index.
        """
        if self.sqlite:
            return self._fetch(span, count)
        return self._scan(span, budget, count)

    def _scan(self, span: _Span, budget: int, count: int) -> list[Row[Any]]:
        """Matches among the first ``budget`` candidates of ``span``, read in order.

        The reading stops as soon as ``count`` matches are found (the subquery's LIMIT
        bounds the work, the outer LIMIT ends it early). Where it stopped is not known:
        use the rows only if there are ``count`` of them.
        """
        columns = [*RECORD_COLUMNS, Message.recipients_search]
        candidates = (
            select(*columns)
            .where(*self._conditions(span))
            .order_by(*_ORDER)
            .limit(budget)
            .subquery()
        )
        checks = self.needles.checks(postgresql=not self.sqlite, source=candidates)
        query = (
            select(*(candidates.c[column.key] for column in RECORD_COLUMNS))
            .where(*checks)
            .order_by(candidates.c.created_at.desc(), candidates.c.id.desc())
            .limit(count)
        )
        return list(self.db.execute(query).all())

    def _conditions(self, span: _Span, wrap: _Wrap = _as_is) -> list[ColumnElement[bool]]:
        """The filters an index ending in ``created_at, id`` answers in order, and the span.

        One bound on each side: two upper bounds on created_at (``until`` and the cursor)
        make SQLite pick one of them for the index range, not always the tighter.
        """
        flt = self.flt
        conditions: list[ColumnElement[bool]] = []
        if flt.sender is not None:
            conditions.append(wrap(func.lower(Message.sender_address)) == func.lower(flt.sender))
        if flt.result is not None:
            statuses = STATUSES_OF_RESULT[flt.result]
            status = wrap(Message.status)
            conditions.append(status == statuses[0] if len(statuses) == 1 else status.in_(statuses))
        key = tuple_(wrap(Message.created_at), wrap(Message.id))
        if span.after is not None and (flt.until is None or span.after[0] <= flt.until):
            conditions.append(key < span.after)
        elif flt.until is not None:
            conditions.append(wrap(Message.created_at) <= flt.until)
        if span.end is not None and (flt.since is None or span.end[0] >= flt.since):
            conditions.append(key >= span.end)
        elif flt.since is not None:
            conditions.append(wrap(Message.created_at) >= flt.since)
        return conditions

    def _fetch(self, span: _Span, count: int) -> list[Row[Any]]:
        query = (
            select(*RECORD_COLUMNS)
            .where(*self._conditions(span), *self.checks)
            .order_by(*_ORDER)
            .limit(count)
        )
        return list(self.db.execute(query).all())

    def _fetch_ids(self, ids: Sequence[int]) -> list[Row[Any]]:
        if not ids:
            return []
        query = select(*RECORD_COLUMNS).where(Message.id.in_(ids)).order_by(*_ORDER)
        return list(self.db.execute(query).all())

    def _window(self, after: RecordKey | None) -> _Window:
        query = (
            select(Message.id, Message.recipients_search, Message.template_name)
            .where(*self._conditions(_Span(after)))
            .order_by(*_ORDER)
            .limit(SCAN_WINDOW)
        )
        rows = self.db.execute(query).all()
        end = None
        if len(rows) == SCAN_WINDOW:
            # Only the last creation time is needed: converting them all costs milliseconds.
            last = rows[-1][0]
            created_at = self.db.scalar(select(Message.created_at).where(Message.id == last))
            end = None if created_at is None else (created_at, last)
        return _Window([row[1] for row in rows], [row[2].lower() for row in rows], end)

    def _nth_key(self, span: _Span, n: int) -> RecordKey | None:
        """The key of the ``n``-th candidate in ``span``, or ``None`` if there are fewer."""
        query = (
            select(Message.created_at, Message.id)
            .where(*self._conditions(span))
            .order_by(*_ORDER)
            .offset(n - 1)
            .limit(1)
        )
        row = self.db.execute(query).first()
        return None if row is None else (row[0], row[1])

    def _rare_ids(self, span: _Span, window: _Window, count: int) -> list[int]:
        """The ids of the newest matches in ``span``, found through the trigram index."""
        if self.sqlite:
            # An index on created_at (say) would give the order but read every record: make
            # SQLite start from the FTS5 candidates (unary + keeps a term off the indexes).
            conditions = [*self._conditions(span, _unindexed), self.needles.fts5_match(window)]
        else:
            conditions = [*self._conditions(span), *self.needles.trigram_like(window)]
        query = select(Message.id).where(*conditions, *self.checks).order_by(*_ORDER).limit(count)
        return list(self.db.scalars(query).all())


@dataclass(frozen=True)
class _Window:
    """The texts of the newest candidates (lower-case), and the key of the oldest of them.

    ``end`` is ``None`` when the window holds every candidate there is.
    """

    recipients: list[str]
    templates: list[str]
    end: RecordKey | None


@dataclass(frozen=True)
class _Needles:
    """The recipient (lower-cased, as stored) and template substrings of a filter."""

    recipient: str | None
    template: str | None

    @classmethod
    def of(cls, flt: RecordFilter) -> _Needles:
        recipient = flt.recipient.lower() if flt.recipient is not None else None
        return cls(recipient=recipient, template=flt.template)

    @property
    def indexable(self) -> bool:
        """Whether a trigram index can narrow the search (a substring of 3+ characters)."""
        return any(len(s) >= TRIGRAM for s in (self.recipient, self.template) if s)

    def checks(
        self, *, postgresql: bool, source: Any = Message.__table__
    ) -> list[ColumnElement[bool]]:
        """The exact conditions, checked against each candidate record of ``source``.

        Plain string positions, not LIKE: on PostgreSQL a LIKE of fewer than three
        characters would send the planner to a whole trigram index (seconds).
        """
        position = func.strpos if postgresql else func.instr
        conditions: list[ColumnElement[bool]] = []
        if self.recipient is not None:
            conditions.append(position(source.c.recipients_search, self.recipient) > 0)
        if self.template is not None:
            template = func.lower(source.c.template_name)
            conditions.append(position(template, func.lower(self.template)) > 0)
        return conditions

    def trigram_like(self, window: _Window) -> list[ColumnElement[bool]]:
        """PostgreSQL: a LIKE the pg_trgm index answers for each rare trigram.

        pg_trgm keeps only letters and digits in its trigrams, so only such pieces serve;
        a substring without one gets no index condition (it is found by reading on).
        """
        conditions: list[ColumnElement[bool]] = []
        if self.recipient is not None:
            for piece in rarest_trigrams(self.recipient, window.recipients, usable=str.isalnum):
                conditions.append(Message.recipients_search.like(_contains(piece), escape="\\"))
        if self.template is not None:
            lowered = func.lower(Message.template_name)
            for piece in rarest_trigrams(self.template, window.templates, usable=str.isalnum):
                conditions.append(lowered.like(func.lower(_contains(piece)), escape="\\"))
        return conditions

    def fts5_match(self, window: _Window) -> ColumnElement[bool]:
        """SQLite: the records whose FTS5 trigram index holds every rare trigram.

        The FTS5 table keeps no column detail, so a trigram may come from the other text:
        the candidates are a superset, which the checks narrow.
        """
        pieces: list[str] = []
        if self.recipient is not None:
            pieces += rarest_trigrams(self.recipient, window.recipients)
        if self.template is not None:
            pieces += rarest_trigrams(self.template, window.templates)
        if not pieces:
            return true()  # pragma: no cover - some substring has three characters or more
        query = " AND ".join('"' + piece.replace('"', '""') + '"' for piece in pieces)
        match = text(f"{_FTS.name} MATCH :fts_query").bindparams(fts_query=query)
        return Message.id.in_(select(_FTS.c.rowid).where(match))


def rarest_trigrams(
    needle: str,
    texts: Sequence[str],
    *,
    usable: Callable[[str], bool] = lambda _piece: True,
    most: int = 3,
) -> list[str]:
    """Up to ``most`` three-character pieces of ``needle`` that few of ``texts`` contain.

    Greedy: each piece is the one that the fewest texts still in play contain, and only
    those texts stay in play. It stops at a piece that would rule out no text, or once two
    pieces leave no text at all. ``texts`` are lower-case; the pieces keep the case of
    ``needle``. An empty list when ``needle`` has no usable trigram.
    """
    pieces = {needle[i : i + TRIGRAM] for i in range(len(needle) - TRIGRAM + 1)}
    candidates = sorted(piece for piece in pieces if usable(piece))
    chosen: list[str] = []
    remaining = list(texts)
    while candidates and len(chosen) < most:
        blob = "\n".join(remaining)
        best = min(candidates, key=lambda piece: blob.count(piece.lower()))
        kept = [t for t in remaining if best.lower() in t]
        if chosen and len(kept) == len(remaining):
            break
        chosen.append(best)
        candidates.remove(best)
        remaining = kept
        if not remaining and len(chosen) >= 2:
            break
    return chosen


def _contains(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
