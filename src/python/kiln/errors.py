"""kiln's status codes as Python exceptions: one class per status, all KilnError.

Each class also derives from the built-in exception a Python user would expect
(ValueError for shapes, TypeError for dtypes, LookupError for unknown names, ...), so
generic ``except ValueError`` handlers keep working.
"""


class KilnError(Exception):
    """Base of every kiln error. ``status`` is the kiln_status code (None for compile
    errors), ``status_name`` its C name, ``message`` kiln's message."""

    status = None
    status_name = None

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class InvalidArgumentError(KilnError, ValueError):
    status, status_name = 1, "KILN_ERR_INVALID_ARGUMENT"


class ShapeMismatchError(KilnError, ValueError):
    status, status_name = 2, "KILN_ERR_SHAPE_MISMATCH"


class DtypeMismatchError(KilnError, TypeError):
    status, status_name = 3, "KILN_ERR_DTYPE_MISMATCH"


class DeviceError(KilnError):
    status, status_name = 4, "KILN_ERR_DEVICE"


class OutOfMemoryError(KilnError, MemoryError):
    status, status_name = 5, "KILN_ERR_OUT_OF_MEMORY"


class VersionMismatchError(KilnError):
    status, status_name = 6, "KILN_ERR_VERSION_MISMATCH"


class NotFoundError(KilnError, LookupError):
    status, status_name = 7, "KILN_ERR_NOT_FOUND"


class UnsupportedError(KilnError):
    status, status_name = 8, "KILN_ERR_UNSUPPORTED"


class InternalError(KilnError):
    status, status_name = 9, "KILN_ERR_INTERNAL"


class InvalidStateError(KilnError):
    status, status_name = 10, "KILN_ERR_INVALID_STATE"


class CompileError(KilnError):
    """`kiln compile` failed (bad model, unsupported op, ...); the message is its output."""


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, ShapeMismatchError, DtypeMismatchError, DeviceError,
    OutOfMemoryError, VersionMismatchError, NotFoundError, UnsupportedError, InternalError,
    InvalidStateError)}


class UnknownStatusError(KilnError):
    """A status this package does not know (a newer runtime)."""


def _from_status(status, message):
    """The exception for a kiln_status (used by the extension module)."""
    cls = _BY_STATUS.get(status)
    if cls is None:
        error = UnknownStatusError(f"{message} (kiln status {status})")
        error.status = status
        return error
    return cls(message)
