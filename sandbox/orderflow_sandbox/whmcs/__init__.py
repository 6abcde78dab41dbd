"""A local emulator of the WHMCS admin API (``/includes/api.php``).

``state`` holds the SQLite-backed billing data, credentials and seeding API; ``actions``
implements the API actions on it; ``app`` is the ASGI app that does transport, auth, response
formats and fault injection.
"""
