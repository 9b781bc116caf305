"""Local stand-ins for remote model services, for tests and benchmarks (never used by the main job)."""

from tests.support.standins.server import FAULTS, Call, Fault, FaultCycle, StandIn, reply_for_schema

__all__ = ["FAULTS", "Call", "Fault", "FaultCycle", "StandIn", "reply_for_schema"]
