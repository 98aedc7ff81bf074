"""``python -m postdesk`` runs the CLI."""

from postdesk.cli.app import main

main()
