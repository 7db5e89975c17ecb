"""The WSGI application: / (version, greeting), /up (health), /env/NAME."""
import os
import sys

import greet

from pyapp import __version__


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    # A form post, read as an app would (an unread body and a closed
    # connection make the proxy's write of it fail).
    environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    status, body = "200 OK", ""
    if path == "/up":
        if os.environ.get("FAIL_HEALTH") == "1":
            status, body = "503 Service Unavailable", "unhealthy on purpose\n"
        else:
            body = "ok\n"
    elif path.startswith("/env/"):
        body = os.environ.get(path[len("/env/"):], "")
    elif path == "/python":
        body = sys.executable + "\n"
    else:
        body = "pyapp %s: %s (%s)\n" % (__version__, os.environ.get("GREETING", ""), greet.greeting())
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))])
    return [data]
