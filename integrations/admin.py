"""The integrations' admin: the SIEM sinks have no rows of their own (settings, and a cursor shown on the
console's SIEM page), so i1 registers nothing here."""
