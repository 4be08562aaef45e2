"""The ``liver-cds`` sub-commands, one module each."""
