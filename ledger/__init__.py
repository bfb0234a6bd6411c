"""PicoGrid ledger layer."""
