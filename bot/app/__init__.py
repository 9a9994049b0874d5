"""The process side: settings, the one assembler of adapters, the server, doctor and logs."""
