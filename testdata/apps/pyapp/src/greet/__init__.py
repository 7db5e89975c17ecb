"""greet: a tiny local dependency of pyapp, shipped as its own wheel."""
__version__ = "1.0"


def greeting():
    return "greet %s" % __version__
