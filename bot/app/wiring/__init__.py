"""The assembler: the one package that names concrete adapter classes. parts builds each
part from Settings; runtime holds what one process runs; surfaces builds Slack and the API on
it; process starts and stops them in the one order every command shares; tools holds the
adapters' commands and doctor checks."""
