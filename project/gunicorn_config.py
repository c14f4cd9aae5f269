"""gunicorn's settings for the Procfile's `web`: `gunicorn -c python:project.gunicorn_config`.

The bind, workers and threads stay on the Procfile's command line (WEB_HOST, PORT,
WEB_CONCURRENCY, WEB_THREADS). What is here are the limits on a request's head, which
gunicorn checks before Django sees the request. gunicorn answers a request over them (and
a malformed one: a NUL byte or a bad name in a header, a bad request line) by itself, with
a short HTML page and `Connection: close`; it has no setting for that body, so those few
answers are the only ones under /api/ that are not JSON (docs/api.md, "Errors").
"""

#: The request line (method, path with its query, version): longer is `414 URI Too Long`.
limit_request_line = 4094
#: Header fields per request: more is `431 Request Header Fields Too Large`.
limit_request_fields = 100
#: One header field, name and value: longer is `431`. A bearer token is under 100 bytes;
#: an admin session's cookies a few hundred.
limit_request_field_size = 8190
