"""The administrator's web pages: login, Mailbox and Mail Sending Record.

Server-rendered with Jinja2 on the same services as the REST API, usable without
JavaScript; a little plain JavaScript (``static/``) opens dialogs, sends test mails
inline and shows times in the browser's time zone.
"""
