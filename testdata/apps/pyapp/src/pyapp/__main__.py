"""pyapp's console script: `pyapp` (or `pyapp serve`) serves the WSGI app on
$PORT, or on the socket systemd passes (socket activation); `pyapp migrate`
is a release command that records that it ran."""
import os
import signal
import socket
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from pyapp import __version__
from pyapp.wsgi import application


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def migrate():
    # The app's state directory is the only place it may write.
    path = os.path.join(os.environ.get("STATE_DIRECTORY", "."), "migrations.log")
    with open(path, "a") as f:
        f.write("migrated to %s\n" % __version__)
    if os.environ.get("FAIL_MIGRATE") == "1":
        print("migration failed on purpose (FAIL_MIGRATE=1)", file=sys.stderr)
        return 3
    return 0


class TCPServer(WSGIServer):
    # socketserver listens with a backlog of 5: under load, connections
    # beyond it are dropped and the client retries after a second or more.
    request_queue_size = 128


class SocketServer(WSGIServer):
    """A WSGI server on the listening socket systemd passes (fd 3)."""

    def __init__(self, sock):
        super().__init__(("localhost", 0), QuietHandler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_name, self.server_port = "localhost", 80
        self.setup_environ()

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)  # a unix-socket peer has no address


def serve():
    if os.environ.get("FAIL_START") == "1":
        print("refusing to start (FAIL_START=1)", file=sys.stderr)
        return 1
    delay = os.environ.get("START_DELAY", "")
    if delay.endswith("s") and delay[:-1].replace(".", "", 1).isdigit():
        # A slow start (imports, warming caches): nothing listens meanwhile.
        time.sleep(float(delay[:-1]))
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and os.environ.get("LISTEN_FDS") == "1":
        # systemd socket activation: the socket outlives this process.
        sock = socket.socket(fileno=3)
        httpd, where = SocketServer(sock), sock.getsockname()
    else:
        port = int(os.environ.get("PORT", "8000"))
        httpd = make_server("127.0.0.1", port, application, server_class=TCPServer, handler_class=QuietHandler)
        where = "127.0.0.1:%d" % port
    httpd.set_app(application)
    # Graceful stop on SIGTERM: finish the request being served, then exit.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    print("pyapp %s listening on %s" % (__version__, where), flush=True)
    httpd.serve_forever(poll_interval=0.1)
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
