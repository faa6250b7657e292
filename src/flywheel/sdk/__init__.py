"""Logging an application's OpenAI chat completions into flywheel, from inside the application.

::

    import flywheel
    from openai import OpenAI

    client = flywheel.instrument(OpenAI(), workload_id="support-agent", client_id="web",
                                 server_url="http://flywheel:8000", api_key="…")
    client.chat.completions.create(model="…", messages=[…])   # logged in the background

:func:`instrument` wraps one client instance; records go to a flywheel server (:class:`HttpSink`), straight into a
store (:class:`StoreSink`) or any :class:`LogSink`. Logging never breaks the caller's request. ``openai`` is imported
only when :func:`instrument` is called.
"""

from flywheel.sdk._instrument import (
    Instrumentation,
    InstrumentationStats,
    flush,
    instrument,
    instrumentation,
    request_to_json,
    uninstrument,
)
from flywheel.sdk._sinks import (
    BackgroundSink,
    Delivery,
    DeliveryError,
    HttpSink,
    LogSink,
    SinkStats,
    StoreSink,
)
from flywheel.sdk._stream import StreamAccumulator

__all__ = [
    "BackgroundSink",
    "Delivery",
    "DeliveryError",
    "HttpSink",
    "Instrumentation",
    "InstrumentationStats",
    "LogSink",
    "SinkStats",
    "StoreSink",
    "StreamAccumulator",
    "flush",
    "instrument",
    "instrumentation",
    "request_to_json",
    "uninstrument",
]
