"""What the REST API and the pages share over HTTP: the base application (state, error
answers, body limit, /healthz, /metrics), request dependencies, the session cookie and
the login limit, Secure cookies and Strict-Transport-Security for an HTTPS site.
``postdesk.api`` and ``postdesk.web`` build on it, independent of each other;
``postdesk.site`` mounts both."""
