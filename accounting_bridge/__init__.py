"""accounting_bridge — see ARCHITECTURE.md; built by later issues."""
