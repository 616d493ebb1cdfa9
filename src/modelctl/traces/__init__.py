"""Traces: read spans in the formats OpenTelemetry tooling writes, and attribute each model
call to the registry entries and the binding that were live when it ran. The rules are
written down in docs/traces.md."""
