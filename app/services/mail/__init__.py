"""The platform's mail: `delivery` composes and sends once, `batch_sending` is the worker side of a
fan-out, `enqueueing` the request side (addresses checked, fan-outs cut into batches)."""
