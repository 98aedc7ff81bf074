"""Workers that drain the queue: the embedded one runs inside ``postdesk serve``."""

from postdesk.worker.embedded import EmbeddedWorker

__all__ = ["EmbeddedWorker"]
