"""Sender accounts, the system default sender and test mail ("test before OK")."""
