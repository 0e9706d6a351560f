"""batchflow's exceptions.

Every error a user can cause is a `BatchflowError`; the CLI prints it as one
line and exits non-zero.  Each leaf also subclasses the builtin it refines,
so callers can catch `PermissionError` or `FileNotFoundError` as usual.
"""


class BatchflowError(Exception):
    """Base class: a failure batchflow explains in one line."""
    exit_code = 2


class NotRootError(BatchflowError, PermissionError):
    """Tracing needs root (CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN)."""


class BPFUnavailableError(BatchflowError, OSError):
    """BPF, bcc or a required tracepoint is missing on this host."""


class HeadersMissingError(BatchflowError, FileNotFoundError):
    """No kernel headers bcc can compile against."""


class CommandNotFoundError(BatchflowError, FileNotFoundError):
    """The command to record does not exist or is not executable."""
    exit_code = 127


class OutputNotWritableError(BatchflowError, PermissionError):
    """The output path cannot be written."""


class NoSuchProcessError(BatchflowError, ProcessLookupError):
    """-p names a pid that does not exist."""


class InputFormatError(BatchflowError, ValueError):
    """An input file is not what the command expects."""


class UsageError(BatchflowError, ValueError):
    """An option's value is out of its range (checked before anything runs)."""


class ExtensionError(BatchflowError, OSError):
    """The C extension reported a failure (negative return plus errno).
    `errno` is the C side's errno (None when the failure had none)."""

    def __init__(self, message, errno=None):
        super().__init__(message)
        self.errno = errno


class ControlError(BatchflowError, ValueError):
    """A control message (DISCARD, FOCUS, ...) is malformed or cannot be applied."""


class SocketInUseError(ControlError):
    """The control socket's path is in use by a live server."""


class StraceSyntaxError(InputFormatError):
    """A piece of a strace line does not have the shape strace gives it
    (the importer counts the line as not understood and goes on)."""


class RulesError(BatchflowError, ValueError):
    """A rules configuration cannot be used.  Its four families below each
    have their own exit code, so a script can tell them apart."""


class RulesFileError(RulesError, OSError):
    """The rules configuration file cannot be read."""
    exit_code = 10


class RulesParseError(RulesError):
    """The rules configuration is not valid TOML."""
    exit_code = 11


class RulesValidationError(RulesError):
    """The rules configuration parses but breaks its JSON Schema (or a rule's)."""
    exit_code = 12


class RulesActivationError(RulesError):
    """A rule named by the configuration is not installed or fails at start."""
    exit_code = 13


class ConfigError(UsageError):
    """A configuration file, or an option's value it could also hold, is invalid."""
