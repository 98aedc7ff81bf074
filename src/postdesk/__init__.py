"""postdesk: the outgoing-mail desk of a reporting platform."""

__version__ = "0.1.0"
