"""Errors of the validation layer, importable without its heavy dependencies."""


class ContractError(RuntimeError):
    """A manifest broke its data contract; the message names each failed expectation."""
