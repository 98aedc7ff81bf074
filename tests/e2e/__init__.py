"""End-to-end tests with real processes: ``postdesk serve`` and its worker, crashed on purpose."""
