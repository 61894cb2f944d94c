"""SPF (RFC 7208) for MAIL FROM and HELO (docs/spf.md).

Modules:

* ``filter``        — :class:`SpfFilter`: findings, actions, Authentication-Results and Received-SPF
* ``received_spf``  — the Received-SPF field (RFC 7208 §9.1), built from typed parts and quoted
* ``pyspf_adapter`` — the one place pyspf is called, through our resolver (its module global is
  confined here)
"""
