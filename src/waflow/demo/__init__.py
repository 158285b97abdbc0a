"""`waflow demo` and `waflow chat`: a whole local deployment (emulator + `waflow serve`) on real sockets.

- `run_demo()` — four simulated users talk to the `demo_shop` flow at once; transcript with status ticks.
- `run_exchange()` — the scripted exchange of every message type (`waflow demo --exchange`).
- `run_chat(flow)` — a person talks to a flow in the terminal.
- `local_stack()` — the emulator and `waflow serve` in this event loop, for tests and benchmarks.
"""

from waflow.demo.chat import run_chat
from waflow.demo.exchange import run_exchange
from waflow.demo.phone import Choice, Phone, render
from waflow.demo.shop import run_demo
from waflow.demo.stack import LocalStack, local_stack

__all__ = ["Choice", "LocalStack", "Phone", "local_stack", "render", "run_chat", "run_demo", "run_exchange"]
