//! Live output while a run goes: reads snapshots only. STUB.
