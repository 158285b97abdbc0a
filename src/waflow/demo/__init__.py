"""`waflow demo`: the emulator and waflow talking over real sockets, printed as a transcript."""

from waflow.demo.exchange import run_exchange

__all__ = ["run_exchange"]
