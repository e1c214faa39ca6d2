//! Opens, holds and closes connections. STUB.
