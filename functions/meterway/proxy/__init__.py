"""The proxy (ProxyFunction, ``/v1``): the front doors clients speak, the model catalog and its
prices, the provider modules behind one protocol, and the streaming core that settles every
request exactly once."""
