"""The mail sending record: filters, search, views of records and attempts, CSV, retention."""
