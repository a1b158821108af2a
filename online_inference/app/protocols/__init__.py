"""The protocols: each decodes its wire format into the data plane's rows and encodes its answers; none holds a rule of its own."""
