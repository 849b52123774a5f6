"""The line reader: lines and fields of digits read whole, without cutting them into digits.

``field`` prepares an image for the reader, ``synth`` and ``strings`` generate the strings
it learns from, ``training`` fits it, ``infer`` reads many inputs at once and ``decode``
turns its outputs into digits with their places and doubt.
"""
