"""Local stand-ins for remote model services, for tests and benchmarks (never used by the main job).

The names below are read from ``tests.support.standins.server`` on first use, so that ``python -m
tests.support.standins.server`` does not import its own module twice (runpy warns when it does).
"""

__all__ = ["FAULTS", "Call", "Fault", "FaultCycle", "StandIn", "reply_for_schema"]


def __getattr__(name: str):
    if name in __all__:
        from tests.support.standins import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
