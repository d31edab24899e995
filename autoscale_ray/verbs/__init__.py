"""Command-line verbs. Each module has a Python function (the API) and `register(subparsers)`,
which adds its sub-command with `func(args) -> (json_object, human_text)`."""
