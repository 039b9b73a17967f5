"""The HTTP layer: thin handlers that parse a request, call one domain method and serialise the result."""
