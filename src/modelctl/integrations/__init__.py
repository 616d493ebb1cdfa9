"""What talks to other tools: exports for gateways, importers from other registries, the demo."""
