"""OpenNebula action functions: ``ActionContext`` in, a result from ``output`` out."""
