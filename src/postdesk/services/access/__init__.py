"""Who may do what: administrators, their sessions and setup link, API tokens, callers."""
