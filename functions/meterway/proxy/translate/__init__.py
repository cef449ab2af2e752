"""Translations between wire formats, one package per pair (a client's format over the format a
provider speaks): the request one way, the answer and the stream the other."""
