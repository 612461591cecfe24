"""Local accounts: registration, password login, sessions (device + tokens), devices,
password changes and deactivation (spec: Client-Server API "Client Authentication",
"Device Management", "Account management").

Each module does one thing and takes its collaborators as constructor arguments; the
composition root (``homeserver.app``) wires them, the servlets in
``homeserver.client_api.account`` / ``.devices`` call them:

- :mod:`.usernames`     localpart rules (``M_INVALID_USERNAME``), user ID building
- :mod:`.passwords`     hashing off the reactor thread, new-password checks, changing it
- :mod:`.sessions`      issuing a login: device, access token, refresh token, ``/refresh``
- :mod:`.login`         ``m.login.password``: identifier → user, rate limits, checks
- :mod:`.registration`  creating accounts (users, guests, generated localparts)
- :mod:`.devices`       listing, renaming and deleting devices, logout
- :mod:`.deactivation`  deactivating an account and parting its rooms
"""
