"""Mail handed to postdesk: request checks, durable submission, status, verification codes."""
