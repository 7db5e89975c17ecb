"""pyapp's console script: `pyapp` (or `pyapp serve`) serves the WSGI app on
$PORT; `pyapp migrate` is a release command that records that it ran."""
import os
import signal
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

from pyapp import __version__
from pyapp.wsgi import application


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def migrate():
    with open("migrations.log", "a") as f:
        f.write("migrated to %s\n" % __version__)
    if os.environ.get("FAIL_MIGRATE") == "1":
        print("migration failed on purpose (FAIL_MIGRATE=1)", file=sys.stderr)
        return 3
    return 0


def serve():
    if os.environ.get("FAIL_START") == "1":
        print("refusing to start (FAIL_START=1)", file=sys.stderr)
        return 1
    port = int(os.environ.get("PORT", "8000"))
    httpd = make_server("127.0.0.1", port, application, handler_class=QuietHandler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("pyapp %s listening on 127.0.0.1:%d" % (__version__, port), flush=True)
    httpd.serve_forever()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cmd = argv[0] if argv else "serve"
    if cmd == "migrate":
        return migrate()
    if cmd == "serve":
        return serve()
    print("usage: pyapp [serve|migrate]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
