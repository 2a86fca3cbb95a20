class AgoraError(Exception):
    """A failure the user can act on: the CLI prints its message as one line and exits 1.

    `details` (for example the last lines of a failing service's log) follow that line.
    """

    def __init__(self, message: str, details: list[str] | None = None):
        super().__init__(message)
        self.details = details or []
