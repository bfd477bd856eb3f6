"""One module per ``adrbench`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``."""
