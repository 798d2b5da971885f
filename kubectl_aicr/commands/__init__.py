"""One module per ``kubectl aicr`` sub-command; each exposes ``command`` (a click command)."""
