"""What can end a command, each with its own exit code, so that a script can tell a
refusal it must not repeat from an outage it may wait out."""

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNAVAILABLE = 4
EXIT_JOIN_FAILED = 5
EXIT_WAIT_TIMED_OUT = 6
EXIT_INTERRUPTED = 130  # as a shell reports a command stopped by Ctrl-C (128 + SIGINT)


class UploaderError(Exception):
    """Base of the errors the command line reports as one line and an exit code."""

    exit_code = 1


class UsageError(UploaderError):
    """The command cannot run as given (a bad option, a missing file or token, a state file
    that belongs to another file): nothing was sent, or nothing more will be."""

    exit_code = EXIT_USAGE


class ApiRefused(UploaderError):
    """The API answered with a 4xx (or a presigned S3 URL refused the piece): sending the
    same request again would get the same answer."""

    exit_code = EXIT_REFUSED

    def __init__(self, message: str, status: int, code: str | None = None,
                 details: dict | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details or {}
        self.headers = headers or {}

    @property
    def offset(self) -> int | None:
        """Where the API says the recording ends (a 409 carries it as Upload-Offset, and as
        committed_bytes in its JSON), or None."""
        for raw in (self.headers.get("Upload-Offset"), self.details.get("committed_bytes")):
            if raw is not None and str(raw).isdigit():
                return int(raw)
        return None


class RangeConflict(ApiRefused):
    """A 409 RangeConflict or a 416: the chunk does not start where the API's copy of the
    recording ends. Not fatal to an upload, which continues from the API's offset."""


class ApiUnavailable(UploaderError):
    """The API could not be reached, or kept answering 5xx/429, through every retry."""

    exit_code = EXIT_UNAVAILABLE


class _VideoOutcome(UploaderError):
    """How a video ended up, with its last status (the result still printed)."""

    def __init__(self, message: str, status: dict | None = None):
        super().__init__(message)
        self.status = status


class JoinFailed(_VideoOutcome):
    """The chunks were uploaded but the API could not join them into a playable video."""

    exit_code = EXIT_JOIN_FAILED


class WaitTimedOut(_VideoOutcome):
    """The video was still being joined when the wait ran out; it may be ready later."""

    exit_code = EXIT_WAIT_TIMED_OUT
