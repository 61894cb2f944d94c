"""Small built-in filters.

Modules:

* ``gtube`` — :class:`GtubeFilter`: the GTUBE test string, to test a deployment end to end
* ``size``  — :class:`SizeFilter`: refuses messages over a size limit
"""
