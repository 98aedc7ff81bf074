"""Use cases, one sub-package each; they own the transaction and raise postdesk errors.

``runtime`` holds what every use case receives (settings, database, secret box, clock).
``access`` (administrators, sessions, API tokens, callers), ``senders`` (sender accounts,
the default sender, test mail), ``messages`` (submission, verification codes),
``delivery`` (claiming, sending, outcomes, rate limits, queue health) and ``records``
(the mail sending record: search, views, CSV, retention) sit on it.
"""
