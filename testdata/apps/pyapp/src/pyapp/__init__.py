"""pyapp: the sample Python web app raijin's tests deploy (standard library only)."""
from pyapp._version import __version__  # noqa: F401 (written by build_wheel.py)
