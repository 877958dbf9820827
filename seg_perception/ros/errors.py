"""The one error type raised by the message <-> numpy conversions.

Bad messages come from the outside world (drivers, bags, other nodes), so the conversions
check them up front and raise a :class:`ConversionError` that names the offending field,
instead of letting numpy or OpenCV fail later with an unrelated message. It subclasses
``ValueError`` so callers that already catch ``ValueError`` keep working.
"""


class ConversionError(ValueError):
    """A message or array cannot be converted: the text says which field and why."""
