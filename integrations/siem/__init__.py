"""The SIEM stream: every ledger entry, mapped to OCSF, to syslog (RFC 5424 over TLS) and Splunk HEC (docs/siem.md)."""
